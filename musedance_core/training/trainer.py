"""The training loop of every stage (one process, data-parallel or sharded under ``accelerate
launch``): a TrainingStep prepared by accelerate, batches from the DataLoader, atomic checkpoints
every ``checkpoint_every`` steps that a new run of the same config resumes, validation videos, a
loss log and plot, and the final bundle. training/train.py is its command line; what each stage
trains is in steps.py, the sharded setups in sharding.py."""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import torch

from ..errors import TrainError
from .checkpoint import (
    check_checkpoint_parts,
    check_same_epoch_list,
    latest_checkpoint,
    load_checkpoint,
    load_sharded_state,
    samples_of,
    save_checkpoint,
)
from .config import TrainConfig
from .data import ClipSampler, make_loader, read_manifest, repeat_by_style
from .export import bundle_from_checkpoint, write_bundle
from .model_setup import build_model, data_beat_features, data_music
from .optimization import check_8bit_adam, ema_weights, learning_rate, make_optimizer
from .report import plot_losses, validation_videos
from .sharding import (
    active_sharding,
    announce_sharding,
    check_checkpoint_sharding,
    check_sharding_request,
    configure_deepspeed,
    gpu_available,
    parameter_names,
    requested_sharding,
    save_sharded_checkpoint,
    step_autocast,
    warn_single_cpu_launch,
)
from .steps import TrainingStep, named_trainable, set_trainable


def train(cfg: TrainConfig, config_name: str = "") -> Path:
    """Run (or resume) the training ``cfg`` describes and return the bundle it ends with
    (``<output_dir>/model.safetensors``). ``config_name`` is recorded in the checkpoints."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs
    from diffusers import DDPMScheduler


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
        raise TrainError(f"the data set's music features come from '{music[0]}' ({music[1]} values per frame) but "
                         f"the model was trained on '{model.config.music_encoder}' ({model.config.music_dim}); "
                         "prepare the data with the model's encoder (prepare_dataset.py --music-encoder).")
    if cfg.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    trainable = set_trainable(model, cfg.train)
    optimizer = make_optimizer(cfg, list(trainable.values()))
    ema = {k: v.detach().clone() for k, v in trainable.items()} if cfg.ema_decay > 0 and main_process else None

    mode = {"vae": "image", "appearance": "frame", "motion": "clip"}[cfg.stage]
    sampler = ClipSampler(Path(cfg.data), shown, mode, cfg.num_frames, cfg.reference_window, cfg.seed,
                          part_focus=cfg.part_focus)
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
    training_step = TrainingStep(model, cfg.stage, cfg.loss_settings(), cfg.seed, DDPMScheduler(**model.config.scheduler))
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
            raise TrainError(f"loss became {mean_loss} at step {step}; lower learning_rate or use fp32.")
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
                         "config": config_name, "repeat_by_style": dict(cfg.repeat_by_style)}
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
    return out / "model.safetensors"
