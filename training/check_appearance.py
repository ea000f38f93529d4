"""Stage-1 check: does the model draw the reference's subject with its shape and colour? Run it on a
stage-1 bundle before spending an hour on stage 2 (it takes about a minute for the tiny model).

    python training/check_appearance.py --model runs/tiny/stage1/model.safetensors --data data/synthdance \\
        --out runs/tiny/stage1-check
    python training/check_appearance.py --truth --data data/synthdance --out /tmp/check-gt   # checks the check

For each of the first ``--clips`` validation clips the model makes ``--frames`` frames from the clip's
first frame and caption with the clip's music. In a stage-1 bundle the motion modules are still at
their zero start, so the frames are independent samples of the appearance stage. Each frame's
subject is segmented with the evaluator's colour model (learned from frame 0 and its mask) and
scored by:

- **shape IoU**: its best mask IoU against the ground-truth masks of the clip's first ``--window``
  frames (stage 1's targets are drawn from such a window, so any of those poses is right);
- **colour ΔE76** of its mean colour against the reference subject's.

``--truth`` scores the ground-truth frames instead (shape IoU near 1, the colour segmentation's
edges aside): it validates the check without a model. Writes ``report.json`` and ``tiles.png``
(one row per clip: reference, then generated frames).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from musedance_core.errors import MuseDanceError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=None, help="MuseDance bundle (.safetensors)")
    p.add_argument("--data", type=Path, required=True, help="data-set folder, SynthDance or prepared from videos (its 'val' clips are used)")
    p.add_argument("--clips", type=int, default=16, help="number of validation clips (the first N)")
    p.add_argument("--frames", type=int, default=8, help="frames generated per clip")
    p.add_argument("--window", type=int, default=12, help="ground-truth frames whose poses count as right "
                   "(stage 1's reference_window)")
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--cfg", type=float, default=3.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("appearance_check"))
    p.add_argument("--truth", action="store_true", help="score the ground-truth frames (validates the check)")
    args = p.parse_args(argv)
    if args.model is None and not args.truth:
        p.error("--model is required unless --truth is given.")
    if args.frames < 1 or args.window < 1 or args.clips < 1:
        p.error("--clips, --frames and --window must be at least 1.")
    return args


def main(argv: list[str] | None = None) -> dict:
    from musedance_core.training.evaluation.appearance_check import (
        CheckSettings,
        check_appearance,
    )

    args = parse_args(argv)
    return check_appearance(CheckSettings(data=args.data, out=args.out, model=args.model, ground_truth=args.truth,
                                          clips=args.clips, frames=args.frames, window=args.window,
                                          steps=args.steps, cfg=args.cfg, seed=args.seed))


if __name__ == "__main__":
    try:
        main()
    except MuseDanceError as exc:  # a missing model, a wrong data folder: the reason, not a traceback
        sys.exit(f"check_appearance: {exc}")
