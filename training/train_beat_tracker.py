"""Train MuseDance's beat and downbeat network on music the project renders itself.

    python training/make_beat_data.py --out data/beats_train --pieces 1500
    python training/make_beat_data.py --out data/beats_val --pieces 120 --seed 2
    python training/train_beat_tracker.py --data data/beats_train --val-data data/beats_val \\
        --out runs/beat_tracker --export musedance_core/audio/weights/beat_tracker.safetensors

Runs on the CPU (a GPU is used if present, but the net is small: ~290 k parameters). Checkpoints
atomically every ``--checkpoint-every`` steps; the same command after an interruption (even
``kill -9``) resumes at the last checkpoint and follows the same path as an unbroken run. Ends by
writing the EMA weights to ``<out>/beat_tracker.safetensors`` (and ``--export``), and, with
``--val-data``, the validation beat F-measure of the decoded beats.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from musedance_core.errors import MuseDanceError
from musedance_core.training.beat_tracker.trainer import BeatTrainConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = BeatTrainConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=d.data, help="training pieces (default: %(default)s)")
    p.add_argument("--val-data", default=None, help="held-out pieces for the closing evaluation")
    p.add_argument("--out", default=d.output_dir,
                   help="run folder: checkpoints, loss log, weights (default: %(default)s)")
    p.add_argument("--steps", type=int, default=d.steps, help="training steps (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="crops per step (default: %(default)s)")
    p.add_argument("--crop-seconds", type=float, default=d.crop_seconds, help="crop length (default: %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (default: %(default)s)")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="(default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="(default: %(default)s)")
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads; 0 = default")
    p.add_argument("--max-pieces", type=int, default=0, help="use only the first N pieces (0 = all)")
    p.add_argument("--channels", type=int, default=d.net.channels, help="network width (default: %(default)s)")
    p.add_argument("--export", type=Path, default=None, help="also write the final weights here")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> BeatTrainConfig:
    d = BeatTrainConfig()
    return replace(d, data=args.data, val_data=args.val_data, output_dir=args.out, steps=args.steps,
                   batch_size=args.batch_size, crop_seconds=args.crop_seconds, lr=args.lr,
                   checkpoint_every=args.checkpoint_every, seed=args.seed, threads=args.threads,
                   max_pieces=args.max_pieces, net=replace(d.net, channels=args.channels))


def main(argv: list[str] | None = None) -> int:
    from musedance_core.training.beat_tracker.trainer import train

    args = parse_args(argv)
    try:
        train(config_from_args(args), args.export)
    except MuseDanceError as exc:  # no pieces, another run's checkpoint: the reason, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
