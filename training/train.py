"""Train MuseDance: one script for every stage, driven by a YAML config (see training/configs/).

    python training/train.py --config training/configs/tiny_stage1.yaml              # CPU or 1 GPU
    accelerate launch --multi_gpu --num_processes N training/train.py --config training/configs/sd15_stage2.yaml   # N GPUs

Stages: ``vae`` (tiny models only), ``appearance`` (stage 1), ``motion`` (stage 2). Each run starts
from a preset or from the bundle the previous stage wrote (``init``), trains the listed ``train``
parts, checkpoints atomically every ``checkpoint_every`` steps (``kill -9`` then the same command
resumes at the same step, optimizer and data position), writes validation videos with sound and a
loss plot, and ends by writing a MuseDance bundle (``<output_dir>/model.safetensors``).

Data-parallel under ``accelerate launch``: the model is wrapped for gradient averaging, each
process takes its share of every global batch (``batch_size`` per process), each sample draws
its own noise from its global number, so N processes follow one process with N times the batch
(tests/test_distributed_training.py); only the main process writes files.

Sharded under ``accelerate launch --config_file training/accelerate/<fsdp|deepspeed>...yaml``
(FSDP2 or DeepSpeed ZeRO-2, GPUs only): the same loop, but the optimizer state (and with FSDP the
weights) lives in shards, so every process takes part in a checkpoint: the trained tensors are
gathered in full into the same ``trainable.safetensors``, the optimizer state goes to a subfolder
in accelerate's format (musedance_core/training/checkpoint.py), and the final bundle is built from
the last checkpoint on the main process. Options that need the whole weights on one process (EMA,
validation videos) or unsharded parameters (8-bit Adam with FSDP) are refused or skipped with the
reason (README: memory and sharding; tests/test_sharded_training.py).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from musedance_core.training.config import TrainConfig, load_train_config  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, required=True, help="YAML training config")
    p.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config values, e.g. --set max_steps=20 batch_size=2")
    return p.parse_args(argv)


def build_model(cfg: TrainConfig, music: tuple[str, int], beat_features: tuple[str, ...] | None = None):
    """The model to train: the previous stage's bundle (``init``), else one assembled from SD 1.5 /
    AnimateDiff / Animate Anyone files, else a fresh ``preset``. A new model's music branch is
    sized for ``music`` = (encoder id, feature width) of the data set. A stage that trains the beat
    branch on data with other beat columns (``beat_features``) than the branch reads gets a fresh
    branch for them (the stage before stage 2 never trains it). ``caption_film`` adds the caption's
    (zero-initialised) FiLM layer when the starting model lacks it."""
    model = _starting_model(cfg, music)
    if cfg.stage == "motion" and beat_features is not None and tuple(beat_features) != model.config.beat_features:
        if "beat" not in cfg.train:
            raise SystemExit(f"the data set's beat features ({len(beat_features)} columns) are not the ones the "
                             f"model's beat branch reads ({model.config.beat_dim}); train the beat part too "
                             "(train: [..., beat]) or prepare the data with the MuseDance version of the model.")
        print(f"beat branch: new, for the data set's {len(beat_features)} beat features "
              f"(the starting model's branch read {model.config.beat_dim})")
        model.rebuild_beat_branch(beat_features)
    if cfg.caption_film:
        model.enable_caption_film()
    apply_schedule(model, cfg)
    if cfg.reinit:
        reinitialise(model, cfg.reinit, cfg.seed)
    return model


def apply_schedule(model, cfg: TrainConfig) -> None:
    """Give the model the config's prediction type and, with ``zero_terminal_snr``, noise schedule
    (Lin et al. 2024: the last timestep is pure noise and sampling starts there, with trailing
    steps). Without it, the SD schedule leaves about 10 % of the clip in the first sampling step's
    latents during training, so a video model learns to read the motion from the noise instead of
    making it from the conditions. Both change what the denoising UNet's output means, so they
    need its spatial layers trained (the appearance stage)."""
    schedule = dict(model.config.scheduler)
    changes = {"prediction_type": cfg.prediction_type} if cfg.prediction_type else {}
    if cfg.zero_terminal_snr:
        changes |= {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing"}
    new = schedule | changes
    if new == schedule:
        return
    if (cfg.init or assembles(cfg)) and "spatial" not in cfg.train:  # a fresh preset's UNet has nothing to lose
        raise SystemExit(f"the starting model predicts '{schedule['prediction_type']}' with zero terminal SNR "
                         f"{bool(schedule.get('rescale_betas_zero_snr'))}; changing that to {changes} needs the "
                         "spatial layers trained (train: [..., spatial], the appearance stage).")
    if new.get("rescale_betas_zero_snr") and new["prediction_type"] != "v_prediction":
        raise SystemExit("zero_terminal_snr needs prediction_type: v_prediction (the noise is the whole input "
                         "at the last timestep, so predicting it says nothing about the image).")
    print(f"noise schedule: {changes}")
    model.config = model.config.with_changes(scheduler=new)


def reinitialise(model, parts: list[str], seed: int) -> None:
    """Start ``parts`` afresh, as a new model of the same config would (zero-initialised outputs:
    a fresh motion module or branch adds nothing until it trains)."""
    from musedance_core.models.musedance import MuseDanceModel
    from musedance_core.training.steps import named_trainable

    torch.manual_seed(seed)
    fresh = named_trainable(MuseDanceModel(model.config, tokenizer=model.tokenizer), parts)
    with torch.no_grad():
        for name, p in named_trainable(model, parts).items():
            p.copy_(fresh[name])
    print(f"started afresh: {', '.join(parts)}")


def assembles(cfg: TrainConfig) -> bool:
    """Whether the starting model is assembled from SD 1.5 / AnimateDiff / Animate Anyone files."""
    return bool(cfg.base or cfg.motion or cfg.animate_anyone)


def _starting_model(cfg: TrainConfig, music: tuple[str, int]):
    from musedance_core.checkpoints.assemble import ModelSources, assemble
    from musedance_core.checkpoints.bundle import load_bundle
    from musedance_core.models.config import preset
    from musedance_core.models.musedance import MuseDanceModel

    if cfg.init:
        return load_bundle(cfg.init)
    encoder, dim = music
    if assembles(cfg):
        sources = ModelSources(base=cfg.base or None, motion=cfg.motion or None,
                               animate_anyone=cfg.animate_anyone or None, tokenizer=cfg.tokenizer or None)
        model, report = assemble(sources, music_encoder=(encoder, dim))
        print(report.format())
        return model
    torch.manual_seed(cfg.seed)
    return MuseDanceModel(preset(cfg.preset).with_changes(music_encoder=encoder, music_dim=dim))


def check_checkpoint_parts(checkpoint: Path, weights: dict, trainable: dict) -> None:
    """Refuse a checkpoint whose tensors are not the parts this config trains, naming the difference
    (a run from before ``caption_film`` lacks ``beat.film_text``)."""
    if set(weights) == set(trainable):
        return
    extra, missing = sorted(set(weights) - set(trainable)), sorted(set(trainable) - set(weights))
    hint = ("it was written without caption_film: continue it with --set caption_film=false"
            if missing and all(k.startswith("beat.film_text.") for k in missing) and not extra
            else "give the config (train parts, --set overrides) of the run that wrote it")
    raise SystemExit(f"checkpoint '{checkpoint}' does not hold the parts this config trains "
                     f"(unexpected {extra[:3]}, missing {missing[:3]}); {hint}.")


def check_same_epoch_list(checkpoint: Path, state: dict, repeat: dict) -> None:
    """Refuse to resume with another ``repeat_by_style``: the saved data position indexes the epoch's
    clip list, which that setting makes, so the run would silently skip or repeat clips."""
    saved = state.get("repeat_by_style")  # absent in checkpoints of older runs: nothing to compare
    if saved is not None and saved != dict(repeat):
        raise SystemExit(f"checkpoint '{checkpoint}' was written with repeat_by_style={saved}, this run asks for "
                         f"{dict(repeat)}; resume with --set \"repeat_by_style={saved or '{}'}\" or start a new output_dir.")


def data_beat_features(root: str, records) -> tuple[str, ...] | None:
    """Column names of a data set's beat features, from its first clip's width (None: no beats)."""
    import numpy as np

    from musedance_core.types import beat_feature_names

    with np.load(Path(root) / records[0]["clip"]) as arrays:
        return beat_feature_names(int(arrays["beats"].shape[1])) if "beats" in arrays.files else None


def data_music(root: str, records) -> tuple[str, int]:
    """(music encoder id, feature width) of a data set, from its first clip."""
    import numpy as np

    with np.load(Path(root) / records[0]["clip"]) as arrays:
        return records[0].get("music_encoder", "spectral-v1"), int(arrays["music"].shape[1])


NO_BITSANDBYTES = ("use_8bit_adam needs bitsandbytes: pip install bitsandbytes (CUDA only), "
                   "or train with --set use_8bit_adam=false.")


def check_8bit_adam(cfg: TrainConfig) -> None:
    """Stop at once, before a model is built or a folder made, when 8-bit Adam is asked for and
    bitsandbytes cannot be imported."""
    if not cfg.use_8bit_adam:
        return
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise SystemExit(NO_BITSANDBYTES) from exc


def make_optimizer(cfg: TrainConfig, params: list[torch.nn.Parameter]):
    if cfg.use_8bit_adam:
        check_8bit_adam(cfg)  # main() has asked already, before any heavy work
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then constant (Moore-AnimateAnyone trains at a constant 1e-5)."""
    return cfg.learning_rate * min(1.0, (step + 1) / max(cfg.warmup_steps, 1))


def main(argv: list[str] | None = None) -> int:
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs
    from diffusers import DDPMScheduler

    from musedance_core.training.checkpoint import (latest_checkpoint, load_checkpoint, load_sharded_state,
                                                    save_checkpoint)
    from musedance_core.training.data import ClipSampler, make_loader, read_manifest, repeat_by_style
    from musedance_core.training.report import plot_losses, validation_videos
    from musedance_core.training.steps import LossSettings, TrainingStep, named_trainable, set_trainable

    args = parse_args(argv)
    cfg = load_train_config(args.config, args.set)
    records = tuple(read_manifest(cfg.data, "train"))
    shown = repeat_by_style(records, cfg.repeat_by_style)  # before the model: a typo fails at once
    check_8bit_adam(cfg)  # these too: a missing package or an impossible combination ends the run here
    check_sharding_request(cfg, requested_sharding())
    # find_unused_parameters: a process whose samples all drew condition dropout leaves the music
    # and beat branches without gradients this step, while the others have them
    warn_single_cpu_launch()
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.gradient_accumulation,
                              cpu=not gpu_available(),  # CPU-only machines: processes meet over gloo
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    main_process = accelerator.is_main_process  # the only one that writes files
    sharding = active_sharding(accelerator)  # None: DDP or one process; "fsdp" | "deepspeed": every process checkpoints
    announce_sharding(accelerator, sharding, cfg)
    out = Path(cfg.output_dir)  # made once the data is known good: a mistake leaves no empty run folder
    if main_process:
        out.mkdir(parents=True, exist_ok=True)
    music = data_music(cfg.data, records)
    beat_features = data_beat_features(cfg.data, records)
    model = build_model(cfg, music, beat_features)
    if (model.config.music_encoder, model.config.music_dim) != music:
        raise SystemExit(f"the data set's music features come from '{music[0]}' ({music[1]} values per frame) but "
                         f"the model was trained on '{model.config.music_encoder}' ({model.config.music_dim}); "
                         "prepare the data with the model's encoder (prepare_dataset.py --music-encoder).")
    if cfg.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    trainable = set_trainable(model, cfg.train)
    optimizer = make_optimizer(cfg, list(trainable.values()))
    ema = {k: v.detach().clone() for k, v in trainable.items()} if cfg.ema_decay > 0 and main_process else None

    mode = {"vae": "image", "appearance": "frame", "motion": "clip"}[cfg.stage]
    sampler = ClipSampler(Path(cfg.data), shown, mode, cfg.num_frames, cfg.reference_window, cfg.seed)
    step, samples_seen = 0, 0
    resume = latest_checkpoint(out)
    if resume is not None:
        weights, optimizer_state, state, ema_state = load_checkpoint(resume)
        check_checkpoint_parts(resume, weights, trainable)
        check_checkpoint_sharding(resume, state, sharding, accelerator.num_processes)
        with torch.no_grad():  # a sharded run too: the full tensors go in before the model is sharded
            for k, v in weights.items():
                trainable[k].copy_(v)
        if sharding is None:  # a sharded run's optimizer state is loaded once it is prepared (below)
            optimizer.load_state_dict(optimizer_state)
        ema = ema_state if ema is not None else None
        step = state["step"]
        check_same_epoch_list(resume, state, cfg.repeat_by_style)
        samples_seen = samples_of(state, len(sampler))
        accelerator.print(f"resumed from {resume.name} at step {step} ({samples_seen} samples seen)")
    settings = LossSettings(noise_offset=cfg.noise_offset, min_snr_gamma=cfg.min_snr_gamma,
                            uncond_fraction=cfg.uncond_fraction, caption_dropout=cfg.caption_dropout,
                            mask_weight=cfg.mask_weight, timestep_shift=cfg.timestep_shift)
    training_step = TrainingStep(model, cfg.stage, settings, cfg.seed, DDPMScheduler(**model.config.scheduler))
    loader = make_loader(sampler, cfg.batch_size, samples_seen, cfg.data_workers,
                         pin_memory=accelerator.device.type == "cuda")
    names = parameter_names(training_step, trainable)  # bundle name -> name in the prepared module
    if sharding == "deepspeed":
        configure_deepspeed(accelerator, cfg)
    # the model goes to the device and, on several processes, into DDP (gradients averaged); the
    # loader deals the batches of consecutive samples to the processes in turn
    training_step, optimizer, loader = accelerator.prepare(training_step, optimizer, loader)
    if ema is not None:  # beside the weights it follows (they went to the device in prepare)
        ema = {k: v.to(trainable[k].device) for k, v in ema.items()}
    if sharding == "fsdp":  # FSDP2 replaced the parameters by sharded ones (what clipping must see)
        trainable = named_trainable(model, cfg.train)
    if resume is not None and sharding is not None:
        load_sharded_state(accelerator, sharding, training_step, optimizer, resume)
    global_batch = cfg.batch_size * accelerator.num_processes

    log = writer = None
    log_path = out / "loss.csv"
    if main_process:
        new_log = not log_path.exists() or step == 0
        log = open(log_path, "w" if new_log else "a", newline="")  # noqa: SIM115  (closed below)
        writer = csv.writer(log)
        if new_log:
            writer.writerow(["step", "loss", "lr", "seconds"])
    training_step.train()
    batches = iter(loader)
    t0, first_step = time.perf_counter(), step  # a resumed run's rate counts only its own steps
    while step < cfg.max_steps:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        batch = next(batches)
        with accelerator.accumulate(training_step):
            with step_autocast(accelerator, sharding, cfg):
                loss = training_step(batch)
            accelerator.backward(loss)
            if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                accelerator.clip_grad_norm_(list(trainable.values()), cfg.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        mean_loss = accelerator.reduce(loss.detach().float(), reduction="mean").item()  # every process sees it
        if not math.isfinite(mean_loss):
            raise SystemExit(f"loss became {mean_loss} at step {step}; lower learning_rate or use fp32.")
        if ema is not None:
            with torch.no_grad():
                for k, p in trainable.items():
                    ema[k].mul_(cfg.ema_decay).add_(p.detach(), alpha=1 - cfg.ema_decay)
        step += 1
        samples_seen += global_batch
        if writer is not None:
            writer.writerow([step, f"{mean_loss:.6f}", f"{learning_rate(cfg, step - 1):.3g}",
                             f"{time.perf_counter() - t0:.1f}"])
        if step % cfg.log_every == 0:
            seconds = (time.perf_counter() - t0) / max(step - first_step, 1)
            accelerator.print(f"step {step}/{cfg.max_steps} loss {mean_loss:.4f} ({seconds:.2f} s/step, "
                              f"{cfg.batch_size / seconds:.1f} samples/s per process, "
                              f"{global_batch / seconds:.1f} in total on {accelerator.num_processes})")
        if step % cfg.checkpoint_every == 0 or step == cfg.max_steps:
            accelerator.wait_for_everyone()
            run_state = {"samples": samples_seen, "processes": accelerator.num_processes,
                         "config": str(args.config), "repeat_by_style": dict(cfg.repeat_by_style)}
            if main_process:
                log.flush()
            if sharding is not None:  # every process writes its part of the optimizer state
                save_sharded_checkpoint(accelerator, sharding, out, step, training_step, optimizer, names, run_state)
            elif main_process:
                save_checkpoint(out, step, {k: p for k, p in trainable.items()}, optimizer.state_dict(), run_state, ema)
            if main_process:
                plot_losses(log_path, out / "loss.png")
            accelerator.wait_for_everyone()  # nobody runs ahead of a checkpoint being written
        if cfg.validate_every and cfg.stage != "vae" and step % cfg.validate_every == 0 and sharding is None:
            if main_process:
                with ema_weights(trainable, ema):
                    validation_videos(model, cfg, out / f"val-{step:07d}")
            training_step.train()
            accelerator.wait_for_everyone()

    accelerator.wait_for_everyone()
    if main_process:
        log.close()
        if sharding is None:
            bundle = write_bundle(model, cfg, records, out / "model.safetensors", step, trainable, ema)
        else:  # the weights are sharded over the processes: the last checkpoint has them whole
            last = latest_checkpoint(out)
            if last is None or last.name != f"checkpoint-{step:07d}":
                raise RuntimeError(f"the last checkpoint is {last}, the run ended at step {step}")
            bundle, _, _ = bundle_from_checkpoint(cfg, records, last, out / "model.safetensors")
        plot_losses(log_path, out / "loss.png")
        accelerator.print(f"wrote {bundle}")
    accelerator.end_training()
    return 0


SHARDING_NAMES = {"fsdp": "FSDP", "deepspeed": "DeepSpeed ZeRO"}


def requested_sharding() -> str | None:
    """The sharded training ``accelerate launch`` was asked for (its config's distributed_type),
    from the environment it gives the processes: "fsdp", "deepspeed" or None."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        return "deepspeed"
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return "fsdp"
    return None


def check_sharding_request(cfg: TrainConfig, sharding: str | None) -> None:
    """Refuse, before anything heavy, a sharded launch this machine or this config cannot run,
    naming the fix: DeepSpeed not installed, EMA (it needs the whole weights on the main process),
    8-bit Adam with FSDP (bitsandbytes cannot step FSDP's sharded parameters) or with DeepSpeed's
    optimizer offload (DeepSpeed then runs its own CPU Adam), an FSDP setup train.py cannot shard."""
    if sharding is None:
        return
    if sharding == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise SystemExit("this run was launched with a DeepSpeed config but deepspeed is not installed: "
                         "pip install deepspeed (Linux, CUDA and a C++ compiler), or launch with "
                         "training/accelerate/fsdp_shard_grad_op.yaml or ddp.yaml instead.")
    name = SHARDING_NAMES[sharding]
    if cfg.ema_decay > 0:
        raise SystemExit(f"ema_decay needs the whole trained weights on the main process, which {name} shards over "
                         "the processes: train with --set ema_decay=0, or with DDP (training/accelerate/ddp.yaml).")
    if sharding == "fsdp":
        if cfg.use_8bit_adam:
            raise SystemExit("8-bit Adam (bitsandbytes) cannot step FSDP's sharded parameters: train with "
                             "--set use_8bit_adam=false (FSDP already splits Adam's states over the GPUs), "
                             "or launch training/accelerate/deepspeed_zero2.yaml.")
        version = os.environ.get("FSDP_VERSION", "1")
        wrap = os.environ.get("FSDP_AUTO_WRAP_POLICY", "NO_WRAP").upper()
        if version != "2":
            raise SystemExit(f"train.py shards with FSDP2; the accelerate config asks for FSDP version {version}: set "
                             "fsdp_version: 2 (as training/accelerate/fsdp_shard_grad_op.yaml does).")
        if wrap != "NO_WRAP":
            raise SystemExit(f"fsdp_auto_wrap_policy must be NO_WRAP (got {wrap}), as in "
                             "training/accelerate/fsdp_shard_grad_op.yaml: MuseDance calls parts of its modules "
                             "directly (vae.encode, the attention projections), which per-module FSDP units "
                             "leave sharded.")
        if os.environ.get("FSDP_ACTIVATION_CHECKPOINTING", "false").lower() in ("1", "true"):
            raise SystemExit("set fsdp_activation_checkpointing: false in the accelerate config and "
                             "gradient_checkpointing: true in the training config instead (the UNets' own "
                             "checkpointing).")
    if sharding == "deepspeed" and cfg.use_8bit_adam and deepspeed_offloads_optimizer():
        raise SystemExit("with the optimizer offloaded to the CPU, DeepSpeed steps its own CPU Adam, not 8-bit Adam: "
                         "train with --set use_8bit_adam=false.")


def deepspeed_offloads_optimizer() -> bool:
    """Whether the DeepSpeed launch offloads the optimizer (accelerate config or DeepSpeed JSON)."""
    device = os.environ.get("ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE", "none").lower()
    config_file = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE", "none")
    if config_file != "none" and Path(config_file).is_file():
        zero = json.loads(Path(config_file).read_text()).get("zero_optimization", {})
        device = str(zero.get("offload_optimizer", {}).get("device", device)).lower()
    return device not in ("none", "")


def active_sharding(accelerator) -> str | None:
    """"fsdp" or "deepspeed" when accelerate does shard this run, else None."""
    from accelerate.utils import DistributedType

    return {DistributedType.FSDP: "fsdp", DistributedType.DEEPSPEED: "deepspeed"}.get(accelerator.distributed_type)


def announce_sharding(accelerator, sharding: str | None, cfg: TrainConfig) -> None:
    """Say what is sharded, and that a sharded launch on CPU processes runs plain data-parallel:
    accelerate engages FSDP and DeepSpeed on GPUs (and other accelerators) only."""
    requested = requested_sharding()
    if requested is not None and sharding is None:
        if accelerator.is_main_process:
            print(f"note: the accelerate config asks for {SHARDING_NAMES[requested]}, which accelerate runs on "
                  f"GPUs only: these {accelerator.num_processes} CPU process(es) train plain data-parallel, "
                  "nothing sharded.", file=sys.stderr)
        return
    if sharding is None:
        return
    what = ("weights, gradients and optimizer state" if sharding == "fsdp" else "gradients and optimizer state")
    n = accelerator.num_processes
    accelerator.print(f"{SHARDING_NAMES[sharding]}: {what} sharded over {n} process{'es' if n != 1 else ''}")
    if cfg.validate_every and cfg.stage != "vae" and accelerator.is_main_process:
        print(f"note: no validation videos with {SHARDING_NAMES[sharding]} (the weights are not whole on one process); "
              "write a bundle from a checkpoint with training/export_bundle.py and sample it.", file=sys.stderr)


def configure_deepspeed(accelerator, cfg: TrainConfig) -> None:
    """The DeepSpeed settings the training config decides: the micro-batch (the loader hands out
    whole batches, so accelerate cannot read it) and, unless the DeepSpeed config sets it, the
    gradient clipping (DeepSpeed clips inside its step; accelerate's own fallback is 1.0)."""
    ds_config = accelerator.state.deepspeed_plugin.deepspeed_config
    ds_config["train_micro_batch_size_per_gpu"] = cfg.batch_size
    if ds_config.get("gradient_clipping", "auto") == "auto":
        ds_config["gradient_clipping"] = cfg.max_grad_norm


def step_autocast(accelerator, sharding: str | None, cfg: TrainConfig):
    """The autocast of a training step: accelerate's, except under DeepSpeed, which leaves it off
    and casts the model to bf16/fp16 itself; the step's fp32 inputs (latents, noise) then need
    torch's autocast to meet those weights."""
    if sharding != "deepspeed" or cfg.mixed_precision == "no":
        return accelerator.autocast()
    dtype = torch.bfloat16 if cfg.mixed_precision == "bf16" else torch.float16
    return torch.autocast(device_type=accelerator.device.type, dtype=dtype)


def parameter_names(module: torch.nn.Module, trainable: dict[str, torch.nn.Parameter]) -> dict[str, str]:
    """Bundle name -> the parameter's name in ``module`` (the TrainingStep accelerate prepares)."""
    names = {id(p): name for name, p in module.named_parameters()}
    return {bundle: names[id(p)] for bundle, p in trainable.items()}


def check_checkpoint_sharding(checkpoint: Path, state: dict, sharding: str | None, processes: int) -> None:
    """Refuse to resume a checkpoint whose optimizer state another kind of run wrote (its format
    differs), and a DeepSpeed one on another number of processes (its shards are per process)."""
    saved = state.get("sharding")  # absent: a DDP or single-process run
    if saved != sharding:
        kinds = {None: "a DDP or single-process run", "fsdp": "an FSDP run", "deepspeed": "a DeepSpeed run"}
        raise SystemExit(f"checkpoint '{checkpoint}' was written by {kinds[saved]} and this is {kinds[sharding]}: "
                         "their optimizer states differ in format. Resume with the accelerate config that wrote it, "
                         "or start a new output_dir from its weights (training/export_bundle.py, then init: "
                         "that bundle).")
    if sharding == "deepspeed" and int(state.get("processes", processes)) != processes:
        raise SystemExit(f"checkpoint '{checkpoint}' holds the optimizer shards of {state['processes']} DeepSpeed "
                         f"processes; resume it with --num_processes {state['processes']}.")


def save_sharded_checkpoint(accelerator, sharding: str, out: Path, step: int, training_step, optimizer,
                            names: dict[str, str], run_state: dict) -> None:
    """A sharded run's checkpoint, called by every process: the main process makes the temporary
    folder, every process writes its part of the optimizer state into it, the main process adds
    the gathered full tensors and state.json and renames it into place (as save_checkpoint does)."""
    from musedance_core.training.checkpoint import begin_checkpoint, finish_checkpoint, partial_path, save_sharded_state

    if accelerator.is_main_process:
        begin_checkpoint(out, step)
    accelerator.wait_for_everyone()  # the empty folder exists before anyone writes into it
    weights = save_sharded_state(accelerator, sharding, training_step, optimizer, partial_path(out, step), names)
    accelerator.wait_for_everyone()  # every part is on disk before the folder is renamed
    if accelerator.is_main_process:
        finish_checkpoint(out, step, weights, None, dict(run_state, sharding=sharding))


def bundle_from_checkpoint(cfg: TrainConfig, records, checkpoint: Path, path: Path,
                           use_ema: bool = True) -> tuple[Path, int, bool]:
    """Write ``path``: the starting model built again with a checkpoint's trained tensors (its EMA
    weights when it keeps them and ``use_ema``). Returns (bundle, step, whether EMA weights went in).
    The end of a sharded run uses it, and training/export_bundle.py."""
    from musedance_core.training.checkpoint import load_weights
    from musedance_core.training.steps import set_trainable

    model = build_model(cfg, data_music(cfg.data, records), data_beat_features(cfg.data, records))
    trainable = set_trainable(model, cfg.train)
    weights, ema, step = load_weights(checkpoint)
    check_checkpoint_parts(checkpoint, weights, trainable)
    with torch.no_grad():
        for name, tensor in weights.items():
            trainable[name].copy_(tensor)
    ema = ema if use_ema else None
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_bundle(model, cfg, records, path, step, trainable, ema), step, ema is not None


def gpu_available() -> bool:
    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def warn_single_cpu_launch() -> None:
    """`accelerate launch --cpu --num_processes N` starts ONE process unless MPI is set up (accelerate's
    simple launcher): say so, rather than let a user believe N processes share the work."""
    import os

    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true") and os.environ.get("MASTER_ADDR") \
            and "WORLD_SIZE" not in os.environ:
        print("note: `accelerate launch --cpu` started a single process (it needs MPI for more); for N CPU "
              "processes use `accelerate launch --multi_gpu --num_processes N` on a machine without GPUs "
              "(they meet over gloo).", file=sys.stderr)


def samples_of(state: dict, clips: int) -> int:
    """Samples a checkpoint's run had seen; checkpoints from before the count hold (epoch, position)."""
    if "samples" in state:
        return int(state["samples"])
    data = state.get("data", {})
    return int(data.get("epoch", 0)) * clips + int(data.get("position", 0))


def write_bundle(model, cfg: TrainConfig, records, path: Path, step: int, trainable: dict[str, torch.nn.Parameter],
                 ema: dict[str, torch.Tensor] | None) -> Path:
    """Save the model being trained (its EMA weights when there are any) as a MuseDance bundle.
    After a VAE stage the latents' scaling factor is measured first (SD practice: unit variance)."""
    from musedance_core.checkpoints.bundle import save_bundle
    from musedance_core.training.data import ClipSampler, first_batch
    from musedance_core.training.steps import latent_scale

    model.eval()
    with ema_weights(trainable, ema):
        if "vae" in cfg.train:
            pixels = first_batch(ClipSampler(Path(cfg.data), records, "image", seed=cfg.seed + 1), 32)["pixels"]
            scale = latent_scale(model, pixels[:, 0])
            model.vae.register_to_config(scaling_factor=scale)
            model.config = model.config.with_changes(vae=model.config.vae | {"scaling_factor": scale})
        model.config = model.config.with_changes(**trained_frame_format(records))  # the pipeline's defaults
        return save_bundle(model, path, dtype=torch.float16 if cfg.save_fp16 else None,
                           extra_metadata={"stage": cfg.stage, "steps": str(step), "data": str(cfg.data)})


def trained_frame_format(records) -> dict:
    """The frame size and fps most of the training clips have: what the model makes by default."""
    from collections import Counter

    formats = Counter((int(r["width"]), int(r["height"]), float(r["fps"])) for r in records)
    if not formats:
        return {}
    (width, height, fps), _ = formats.most_common(1)[0]
    return {"width": width, "height": height, "fps": fps}


@contextlib.contextmanager
def ema_weights(trainable: dict[str, torch.nn.Parameter], ema: dict[str, torch.Tensor] | None):
    """Temporarily put the EMA weights into the model (for validation and the final bundle)."""
    if ema is None:
        yield
        return
    saved = {k: p.detach().clone() for k, p in trainable.items()}
    with torch.no_grad():
        for k, p in trainable.items():
            p.copy_(ema[k])
    try:
        yield
    finally:
        with torch.no_grad():
            for k, p in trainable.items():
                p.copy_(saved[k])


if __name__ == "__main__":
    from musedance_core.errors import MuseDanceError

    try:
        sys.exit(main())
    except MuseDanceError as exc:  # a config or data mistake: the reason, not a traceback
        sys.exit(f"train.py: {exc}")
