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
import sys
from pathlib import Path

from musedance_core.errors import MuseDanceError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, required=True, help="YAML training config")
    p.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config values, e.g. --set max_steps=20 batch_size=2")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from musedance_core.training.config import load_train_config
    from musedance_core.training.trainer import train

    args = parse_args(argv)
    train(load_train_config(args.config, args.set), config_name=str(args.config))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MuseDanceError as exc:  # a config, data or launch mistake: the reason, not a traceback
        sys.exit(f"train.py: {exc}")
