"""Training checkpoints that survive ``kill -9``: written to a temporary folder, then renamed, and
``latest`` is switched atomically, so the newest *complete* checkpoint is always found.

A checkpoint holds the trainable tensors (safetensors), the optimizer state (``torch.save``,
read back with ``weights_only=True``), the EMA tensors if any, and ``state.json`` (step, data
position, the torch RNG state as a list of bytes).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

LATEST = "latest"


def save_checkpoint(out_dir: str | Path, step: int, trainable: dict[str, torch.Tensor], optimizer_state: dict,
                    state: dict, ema: dict[str, torch.Tensor] | None = None, keep: int = 2) -> Path:
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"checkpoint-{step:07d}"
    tmp = out_dir / f".{name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file({k: v.detach().cpu().contiguous() for k, v in trainable.items()}, str(tmp / "trainable.safetensors"))
    if ema:
        save_file({k: v.detach().cpu().contiguous() for k, v in ema.items()}, str(tmp / "ema.safetensors"))
    torch.save(optimizer_state, tmp / "optimizer.pt")
    full_state = dict(state, step=step, torch_rng=torch.get_rng_state().tolist())
    (tmp / "state.json").write_text(json.dumps(full_state))
    final = out_dir / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    pointer = out_dir / f".{LATEST}.tmp"
    pointer.write_text(name)
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


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict, dict, dict[str, torch.Tensor] | None]:
    """(trainable tensors, optimizer state, state dict, ema tensors or None); restores the torch RNG."""
    path = Path(path)
    trainable, ema = _load_tensors(path)
    optimizer_state = torch.load(path / "optimizer.pt", weights_only=True, map_location="cpu")
    state = json.loads((path / "state.json").read_text())
    torch.set_rng_state(torch.tensor(state.pop("torch_rng"), dtype=torch.uint8))
    return trainable, optimizer_state, state, ema


def load_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, int]:
    """(trainable tensors, ema tensors or None, step) of a checkpoint, without the optimizer state
    (which can be several times the weights) and without touching the torch RNG."""
    path = Path(path)
    trainable, ema = _load_tensors(path)
    return trainable, ema, int(json.loads((path / "state.json").read_text())["step"])


def _load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """The trainable tensors and the EMA tensors (None when the run keeps no EMA) of a checkpoint."""
    from safetensors.torch import load_file

    ema_file = path / "ema.safetensors"
    return load_file(str(path / "trainable.safetensors")), (load_file(str(ema_file)) if ema_file.is_file() else None)


def _prune(out_dir: Path, keep: int) -> None:
    done = sorted(p for p in out_dir.glob("checkpoint-*") if p.is_dir())
    for old in done[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
