"""Evaluate a MuseDance bundle on held-out clips: beat alignment, motion style, appearance.

    python training/evaluate.py --model runs/x/model.safetensors --data data/synthdance \\
        --clips 20 --steps 20 --out runs/x/eval --seed 0
    python training/evaluate.py --gt-as-generated --data data/synthdance --out /tmp/eval-gt   # checks the evaluator

For each validation clip (held-out songs) the model animates the clip's first frame with its caption
twice: with the clip's own music and beats, and with **shuffled music** (another validation clip of a
different song whose tempo differs by more than 10 %; same caption, first frame and seed). Measures
(docs/ARCHITECTURE.md, Measures):

- **BAS** (Bailando): motion beats = local minima of the smoothed frame-difference energy;
  ``--sigma-frames`` frames at the data set's fps; and again with the motion beats of the tracked
  subject's speed (minima placed between frames) at Bailando's own 50 ms. **VS** = beat-phase vector strength. Each for
  ground truth vs its beats, generated vs its beats, and the shuffled-music video vs the ORIGINAL
  clip's beats (the control: if the music drives the motion this is low) and vs its own music's beats.
  Music beats are the exact ``beat_times``.
- **Style accuracy**: the subject is tracked in the frames (colour segmentation learned from the first
  frame and ``mask[0]``; centroid -> x, y; sqrt(area ratio) -> scale; rotation search of the first
  frame's subject patch -> angle), the track is classified with ``classify_motion`` against the exact
  beat features of the music used, and compared with the caption's style. The tracker is validated on
  the ground-truth frames in the same run.
- **Appearance**: PSNR and SSIM (Gaussian window, sigma 1.5) of generated vs ground-truth frames 1..T-1,
  subject colour error (CIELAB Delta E 1976 and RGB distance of the tracked subject's mean colour vs
  the reference subject's), subject size error and mask IoU vs the ground-truth mask.

On a data set prepared from videos (training/prepare_dataset.py) there is no style and no true
motion track: those parts are reported as not measured; clips without masks get PSNR, SSIM and
the frame-energy beat measures only.

``--gt-as-generated`` evaluates the ground truth as if it were generated (the shuffled video is then
the partner clip's ground truth), which validates the evaluator without a model.
Writes ``report.md``, ``report.json``, ``tracks_<id>.png`` plots and ``<id>.mp4`` side-by-side videos.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from musedance_core.errors import MuseDanceError
from musedance_core.metrics import BAS_SIGMA_FRAMES
from musedance_core.pipeline import AnimateSettings


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=None, help="MuseDance bundle (.safetensors)")
    p.add_argument("--data", type=Path, required=True, help="data-set folder, SynthDance or prepared from videos (its 'val' clips are used)")
    p.add_argument("--clips", type=int, default=20, help="number of validation clips (the first N)")
    p.add_argument("--frames", type=int, default=0, help="frames per clip to generate and score (0 = all)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=AnimateSettings().cfg)
    p.add_argument("--prompt-guidance", type=float, default=AnimateSettings().prompt_guidance,
                   help="extra guidance towards the caption's dance (default: the pipeline's, %(default)s)")
    p.add_argument("--context-length", type=int, default=AnimateSettings().context_length,
                   help="frames per context window (default: the pipeline's, %(default)s; capped by the model)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed and partner choice")
    p.add_argument("--sigma-frames", type=float, default=BAS_SIGMA_FRAMES, help="BAS tolerance in frames")
    p.add_argument("--out", type=Path, default=Path("eval_report"))
    p.add_argument("--plots", type=int, default=4, help="clips with a motion-track PNG")
    p.add_argument("--videos", type=int, default=3, help="clips with a side-by-side mp4")
    p.add_argument("--gt-as-generated", action="store_true",
                   help="evaluate the ground truth as if generated (validates the evaluator; no model needed)")
    args = p.parse_args(argv)
    if args.model is None and not args.gt_as_generated:
        p.error("--model is required unless --gt-as-generated is given.")
    if args.clips < 2:
        p.error(f"--clips must be >= 2 (shuffled music needs a partner clip); got {args.clips}.")
    return args


def main(argv: list[str] | None = None) -> dict:
    from musedance_core.training.evaluation.run import EvalSettings, evaluate

    args = parse_args(argv)
    settings = EvalSettings(data=args.data, out=args.out, model=args.model, ground_truth=args.gt_as_generated,
                            clips=args.clips, frames=args.frames, steps=args.steps, cfg=args.cfg,
                            prompt_guidance=args.prompt_guidance, context_length=args.context_length,
                            seed=args.seed, sigma_frames=args.sigma_frames, plots=args.plots, videos=args.videos)
    command = shlex.join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])])
    return evaluate(settings, command)


if __name__ == "__main__":
    try:
        main()
    except MuseDanceError as exc:  # a missing model, a wrong data folder: the reason, not a traceback
        sys.exit(f"evaluate: {exc}")
