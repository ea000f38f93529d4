"""Training checkpoints that survive ``kill -9``: written to a temporary folder, then renamed, and
``latest`` is switched atomically, so the newest *complete* checkpoint is always found.

A checkpoint holds the trainable tensors (safetensors), the optimizer state (``torch.save``,
read back with ``weights_only=True``), the EMA tensors if any, and ``state.json`` (step, data
position, the torch RNG state as a list of bytes).

Runs whose optimizer state is sharded over the processes (FSDP, DeepSpeed ZeRO; ``state.json``
names it in ``sharding``) write the same folder with the same full ``trainable.safetensors``, but
their optimizer state in accelerate's / DeepSpeed's own format in a subfolder (``fsdp/`` or
``deepspeed/``, :func:`save_sharded_state`) instead of ``optimizer.pt``; every process takes part
in writing it (:func:`begin_checkpoint` before, :func:`finish_checkpoint` after, both on the main
process only).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from ..errors import TrainError

LATEST = "latest"
SHARDINGS = ("fsdp", "deepspeed")
DEEPSPEED_TAG = "pytorch_model"  # the folder accelerate's save_state gives DeepSpeed's checkpoint (its MODEL_NAME)


def save_checkpoint(out_dir: str | Path, step: int, trainable: dict[str, torch.Tensor], optimizer_state: dict,
                    state: dict, ema: dict[str, torch.Tensor] | None = None, keep: int = 2) -> Path:
    begin_checkpoint(out_dir, step)
    return finish_checkpoint(out_dir, step, trainable, optimizer_state, state, ema, keep)


def partial_path(out_dir: str | Path, step: int) -> Path:
    """The temporary folder a checkpoint is written to before it is renamed into place."""
    return Path(out_dir) / f".{_name(step)}.partial"


def begin_checkpoint(out_dir: str | Path, step: int) -> Path:
    """A fresh, empty temporary folder for the checkpoint of ``step`` (a leftover of a crash is removed)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(out_dir, step)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def finish_checkpoint(out_dir: str | Path, step: int, trainable: dict[str, torch.Tensor], optimizer_state: dict | None,
                      state: dict, ema: dict[str, torch.Tensor] | None = None, keep: int = 2) -> Path:
    """Write the tensors, the optimizer state (None: a sharded run wrote its own into the folder
    already) and ``state.json`` into the temporary folder, rename it into place, point ``latest``
    at it and keep the newest ``keep`` checkpoints."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    tmp = partial_path(out_dir, step)
    save_file({k: v.detach().cpu().contiguous() for k, v in trainable.items()}, str(tmp / "trainable.safetensors"))
    if ema:
        save_file({k: v.detach().cpu().contiguous() for k, v in ema.items()}, str(tmp / "ema.safetensors"))
    if optimizer_state is not None:
        torch.save(optimizer_state, tmp / "optimizer.pt")
    full_state = dict(state, step=step, torch_rng=torch.get_rng_state().tolist())
    (tmp / "state.json").write_text(json.dumps(full_state))
    final = out_dir / _name(step)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    pointer = out_dir / f".{LATEST}.tmp"
    pointer.write_text(final.name)
    os.replace(pointer, out_dir / LATEST)
    _prune(out_dir, keep)
    return final


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    out_dir = Path(out_dir)
    pointer = out_dir / LATEST
    if not pointer.is_file():
        return None
    path = out_dir / pointer.read_text().strip()
    return path if (path / "state.json").is_file() else None


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict | None, dict,
                                               dict[str, torch.Tensor] | None]:
    """(trainable tensors, optimizer state, state dict, ema tensors or None); restores the torch RNG.
    The optimizer state is None for a checkpoint of a sharded run (``state["sharding"]``): load it
    with :func:`load_sharded_state` once the model and optimizer are prepared."""
    path = Path(path)
    trainable, ema = _load_tensors(path)
    optimizer_file = path / "optimizer.pt"
    optimizer_state = (torch.load(optimizer_file, weights_only=True, map_location="cpu")
                       if optimizer_file.is_file() else None)
    state = json.loads((path / "state.json").read_text())
    torch.set_rng_state(torch.tensor(state.pop("torch_rng"), dtype=torch.uint8))
    return trainable, optimizer_state, state, ema


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, int]:
    """(trainable tensors, ema tensors or None, step) of a checkpoint, without the optimizer state
    (which can be several times the weights) and without touching the torch RNG."""
    path = Path(path)
    trainable, ema = _load_tensors(path)
    return trainable, ema, int(json.loads((path / "state.json").read_text())["step"])


def save_sharded_state(accelerator, sharding: str, model: torch.nn.Module, optimizer, folder: Path,
                       names: dict[str, str]) -> dict[str, torch.Tensor] | None:
    """Called by EVERY process of a sharded run, with the temporary checkpoint folder: writes the
    optimizer state in accelerate's format for ``sharding`` into ``folder/<sharding>`` and returns,
    on the main process, the full trained tensors by bundle name (``names``: bundle name -> the
    prepared ``model``'s parameter name); None on the others.

    - ``fsdp`` (FSDP2): the optimizer through accelerate's ``save_fsdp_optimizer`` (with the
      shipped config's FULL_STATE_DICT: gathered on the main process, one file, so the run can
      resume on any number of processes); the trained tensors gathered in fp32 on the main
      process, the frozen ones left out (torch's ``get_model_state_dict``, which accelerate's
      ``get_state_dict`` calls, with ``ignore_frozen_params``: SD 1.5 stage 2 would gather 1.9 G
      frozen parameters every checkpoint otherwise).
    - ``deepspeed`` (ZeRO-2): ``accelerator.save_state`` (DeepSpeed's checkpoint of the trained
      parameters, each process its optimizer shard, plus accelerate's RNG states), then the fp32
      master weights rebuilt from it on the main process (DeepSpeed's zero_to_fp32): the bf16
      copies the model computes with would lose precision.
    """
    if sharding not in SHARDINGS:
        raise ValueError(f"sharding must be one of {SHARDINGS}; got {sharding!r}")
    target = folder / sharding
    if sharding == "fsdp":
        from accelerate.utils import save_fsdp_optimizer
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
        )

        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True,
                                                                    ignore_frozen_params=True))
        save_fsdp_optimizer(accelerator.state.fsdp_plugin, accelerator, optimizer, model, str(target))
        accelerator.wait_for_everyone()
    else:
        accelerator.save_state(str(target), exclude_frozen_parameters=True)
        accelerator.wait_for_everyone()  # every shard on disk before the main process reads them
        full = None
        if accelerator.is_main_process:
            from deepspeed.utils.zero_to_fp32 import (
                get_fp32_state_dict_from_zero_checkpoint,
            )

            full = get_fp32_state_dict_from_zero_checkpoint(str(target), tag=DEEPSPEED_TAG,
                                                            exclude_frozen_parameters=True)
    if not accelerator.is_main_process:
        return None
    missing = sorted(bundle for bundle, name in names.items() if name not in full)
    if missing:
        raise RuntimeError(f"the gathered {sharding} state lacks trained tensors {missing[:3]} ({len(missing)} in all)")
    return {bundle: full[name].detach().to("cpu", torch.float32) for bundle, name in names.items()}


def load_sharded_state(accelerator, sharding: str, model: torch.nn.Module, optimizer, checkpoint: Path) -> None:
    """Called by EVERY process once the model and optimizer are prepared: the optimizer state (and
    for DeepSpeed the fp32 master weights and accelerate's RNG states) of a sharded run's checkpoint.
    The trained tensors themselves came from ``trainable.safetensors`` before the model was sharded."""
    source = Path(checkpoint) / sharding
    if sharding == "fsdp":
        from accelerate.utils import load_fsdp_optimizer

        load_fsdp_optimizer(accelerator.state.fsdp_plugin, accelerator, optimizer, model, str(source))
    elif sharding == "deepspeed":
        accelerator.load_state(str(source), load_module_strict=False)  # the frozen parameters were not saved
    else:
        raise ValueError(f"sharding must be one of {SHARDINGS}; got {sharding!r}")


def _name(step: int) -> str:
    return f"checkpoint-{step:07d}"


def _load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """The trainable tensors and the EMA tensors (None when the run keeps no EMA) of a checkpoint."""
    from safetensors.torch import load_file

    ema_file = path / "ema.safetensors"
    return load_file(str(path / "trainable.safetensors")), (load_file(str(ema_file)) if ema_file.is_file() else None)


def _prune(out_dir: Path, keep: int) -> None:
    done = sorted(p for p in out_dir.glob("checkpoint-*") if p.is_dir())
    for old in done[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def check_checkpoint_parts(checkpoint: Path, weights: dict, trainable: dict) -> None:
    """Refuse a checkpoint whose tensors are not the parts this config trains, naming the difference
    (a run from before ``caption_film`` lacks ``beat.film_text``)."""
    if set(weights) == set(trainable):
        return
    extra, missing = sorted(set(weights) - set(trainable)), sorted(set(trainable) - set(weights))
    hint = ("it was written without caption_film: continue it with --set caption_film=false"
            if missing and all(k.startswith("beat.film_text.") for k in missing) and not extra
            else "give the config (train parts, --set overrides) of the run that wrote it")
    raise TrainError(f"checkpoint '{checkpoint}' does not hold the parts this config trains "
                     f"(unexpected {extra[:3]}, missing {missing[:3]}); {hint}.")


def check_same_epoch_list(checkpoint: Path, state: dict, repeat: dict) -> None:
    """Refuse to resume with another ``repeat_by_style``: the saved data position indexes the epoch's
    clip list, which that setting makes, so the run would silently skip or repeat clips."""
    saved = state.get("repeat_by_style")  # absent in checkpoints of older runs: nothing to compare
    if saved is not None and saved != dict(repeat):
        raise TrainError(f"checkpoint '{checkpoint}' was written with repeat_by_style={saved}, this run asks for "
                         f"{dict(repeat)}; resume with --set \"repeat_by_style={saved or '{}'}\" or start a new output_dir.")


def samples_of(state: dict, clips: int) -> int:
    """Samples a checkpoint's run had seen; checkpoints from before the count hold (epoch, position)."""
    if "samples" in state:
        return int(state["samples"])
    data = state.get("data", {})
    return int(data.get("epoch", 0)) * clips + int(data.get("position", 0))
