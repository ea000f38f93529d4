"""Write a MuseDance bundle from a training checkpoint, to try a model before its run ends.

    python training/export_bundle.py --config training/configs/tiny_stage2.yaml --out runs/try.safetensors
    python training/export_bundle.py --config training/configs/tiny_stage2.yaml --checkpoint runs/tiny/stage2/checkpoint-0001800 \\
        --no-ema --out runs/try.safetensors

The bundle is what the run would write if it ended at that checkpoint: the config's starting model
(``init``, files or preset) with the checkpoint's trained tensors, EMA weights when the run keeps
them (``--no-ema`` takes the raw ones). Reads the checkpoint's safetensors and state only (not the
optimizer state); the run itself may go on meanwhile.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from musedance_core.errors import MuseDanceError, TrainError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, required=True, help="the run's YAML training config")
    p.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="the run's --set overrides, if any")
    p.add_argument("--checkpoint", type=Path, help="checkpoint folder (default: the run's latest)")
    p.add_argument("--no-ema", action="store_true", help="the raw trained weights, not their EMA")
    p.add_argument("--out", type=Path, required=True, help="bundle to write (.safetensors)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from musedance_core.training.checkpoint import latest_checkpoint
    from musedance_core.training.config import load_train_config
    from musedance_core.training.data import read_manifest
    from musedance_core.training.export import bundle_from_checkpoint

    args = parse_args(argv)
    cfg = load_train_config(args.config, args.set)
    checkpoint = args.checkpoint or latest_checkpoint(cfg.output_dir)
    if checkpoint is None or not (Path(checkpoint) / "trainable.safetensors").is_file():
        raise TrainError(f"no checkpoint in '{args.checkpoint or cfg.output_dir}'; "
                         "pass --checkpoint DIR (a checkpoint-NNNNNNN folder of the run).")
    if args.out.suffix != ".safetensors":
        raise TrainError(f"--out must end in .safetensors; got '{args.out}'.")
    if args.out.resolve() == (Path(cfg.output_dir) / "model.safetensors").resolve():
        raise TrainError(f"--out '{args.out}' is the run's own final bundle (a finished run's mark); "
                         "write the export elsewhere.")
    records = tuple(read_manifest(cfg.data, "train"))
    bundle, step, ema = bundle_from_checkpoint(cfg, records, Path(checkpoint), args.out, use_ema=not args.no_ema)
    print(f"wrote {bundle} (step {step}, {'EMA' if ema else 'raw'} weights)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MuseDanceError as exc:  # a config or data mistake: the reason, not a traceback
        sys.exit(f"export_bundle.py: {exc}")
