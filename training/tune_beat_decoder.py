"""Choose the beat decoder's costs and the no-beat threshold on held-out renders of the training generator.

    python training/tune_beat_decoder.py --data data/beats_val [--weights W] [--out runs/beat_tracker/tuning.json]

The network runs once per piece; then every combination of the grid below is decoded and scored
(mean beat F-measure plus half the mean downbeat F-measure over the pieces with beats). The
confidence of the beatless pieces and of the pieces with beats is printed, so the no-beat and
low-confidence thresholds can be set between them. Use a folder rendered with a seed the net
never trained on (``make_beat_data.py --seed 1``); never the evaluation set in ``bench_data/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from musedance_core.training.beat_tracker.tuning import tune


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="held-out pieces (make_beat_data.py layout)")
    p.add_argument("--weights", type=Path, default=None, help="beat tracker weights (default: the shipped ones)")
    p.add_argument("--out", type=Path, default=None, help="write the scores of every combination here (JSON)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tune(args.data, args.weights, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
