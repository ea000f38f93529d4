"""How a run is spread over processes: accelerate's launch environment, the sharded (FSDP2,
DeepSpeed ZeRO-2) setups train.py supports and refuses, and the sharded checkpoint every process
takes part in (README: Memory and sharding; training/accelerate/ holds the launch configs)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import torch

from ..errors import TrainError
from .config import TrainConfig

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
        raise TrainError("this run was launched with a DeepSpeed config but deepspeed is not installed: "
                         "pip install deepspeed (Linux, CUDA and a C++ compiler), or launch with "
                         "training/accelerate/fsdp_shard_grad_op.yaml or ddp.yaml instead.")
    name = SHARDING_NAMES[sharding]
    if cfg.ema_decay > 0:
        raise TrainError(f"ema_decay needs the whole trained weights on the main process, which {name} shards over "
                         "the processes: train with --set ema_decay=0, or with DDP (training/accelerate/ddp.yaml).")
    if sharding == "fsdp":
        if cfg.use_8bit_adam:
            raise TrainError("8-bit Adam (bitsandbytes) cannot step FSDP's sharded parameters: train with "
                             "--set use_8bit_adam=false (FSDP already splits Adam's states over the GPUs), "
                             "or launch training/accelerate/deepspeed_zero2.yaml.")
        version = os.environ.get("FSDP_VERSION", "1")
        wrap = os.environ.get("FSDP_AUTO_WRAP_POLICY", "NO_WRAP").upper()
        if version != "2":
            raise TrainError(f"train.py shards with FSDP2; the accelerate config asks for FSDP version {version}: set "
                             "fsdp_version: 2 (as training/accelerate/fsdp_shard_grad_op.yaml does).")
        if wrap != "NO_WRAP":
            raise TrainError(f"fsdp_auto_wrap_policy must be NO_WRAP (got {wrap}), as in "
                             "training/accelerate/fsdp_shard_grad_op.yaml: MuseDance calls parts of its modules "
                             "directly (vae.encode, the attention projections), which per-module FSDP units "
                             "leave sharded.")
        if os.environ.get("FSDP_ACTIVATION_CHECKPOINTING", "false").lower() in ("1", "true"):
            raise TrainError("set fsdp_activation_checkpointing: false in the accelerate config and "
                             "gradient_checkpointing: true in the training config instead (the UNets' own "
                             "checkpointing).")
    if sharding == "deepspeed" and cfg.use_8bit_adam and deepspeed_offloads_optimizer():
        raise TrainError("with the optimizer offloaded to the CPU, DeepSpeed steps its own CPU Adam, not 8-bit Adam: "
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
        raise TrainError(f"checkpoint '{checkpoint}' was written by {kinds[saved]} and this is {kinds[sharding]}: "
                         "their optimizer states differ in format. Resume with the accelerate config that wrote it, "
                         "or start a new output_dir from its weights (training/export_bundle.py, then init: "
                         "that bundle).")
    if sharding == "deepspeed" and int(state.get("processes", processes)) != processes:
        raise TrainError(f"checkpoint '{checkpoint}' holds the optimizer shards of {state['processes']} DeepSpeed "
                         f"processes; resume it with --num_processes {state['processes']}.")


def save_sharded_checkpoint(accelerator, sharding: str, out: Path, step: int, training_step, optimizer,
                            names: dict[str, str], run_state: dict) -> None:
    """A sharded run's checkpoint, called by every process: the main process makes the temporary
    folder, every process writes its part of the optimizer state into it, the main process adds
    the gathered full tensors and state.json and renames it into place (as save_checkpoint does)."""
    from .checkpoint import (
        begin_checkpoint,
        finish_checkpoint,
        partial_path,
        save_sharded_state,
    )

    if accelerator.is_main_process:
        begin_checkpoint(out, step)
    accelerator.wait_for_everyone()  # the empty folder exists before anyone writes into it
    weights = save_sharded_state(accelerator, sharding, training_step, optimizer, partial_path(out, step), names)
    accelerator.wait_for_everyone()  # every part is on disk before the folder is renamed
    if accelerator.is_main_process:
        finish_checkpoint(out, step, weights, None, dict(run_state, sharding=sharding))


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
