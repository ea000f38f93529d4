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
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from musedance_core.training import dataset as fmt
from training.evaluate import _Npz, generate, learn_subject, load_model, rgb_to_lab, segment, subject_core


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=None, help="MuseDance bundle (.safetensors)")
    p.add_argument("--data", type=Path, required=True, help="SynthDance folder (its 'val' clips are used)")
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


def generate_frames(model, arrays: dict, record: dict, args) -> np.ndarray:
    """uint8 [frames, H, W, 3] from the clip's first frame, caption and music."""
    from musedance_core.pipeline import AnimateSettings

    context = min(args.frames, model.config.max_context_frames)
    return generate(model, arrays["frames"][0], arrays, record, record["caption"], num_frames=args.frames,
                    steps=args.steps, cfg=args.cfg, seed=args.seed, context_length=context,
                    context_overlap=min(AnimateSettings().context_overlap, context - 1))


def score_frames(frames: np.ndarray, truth_frames: np.ndarray, truth_masks: np.ndarray, window: int) -> dict:
    """Shape IoU (best over the first ``window`` true masks) and colour ΔE76 of each frame's subject."""
    subject = learn_subject(truth_frames[0], truth_masks[0])
    allowed = truth_masks[:window] > 0.5
    reference_lab = rgb_to_lab(subject.reference_color)
    ious, delta_e = [], []
    for frame in frames:
        mask = segment(frame, subject)
        inter = (allowed & mask).reshape(len(allowed), -1).sum(1)
        union = np.maximum((allowed | mask).reshape(len(allowed), -1).sum(1), 1)
        ious.append(float((inter / union).max()))
        pixels = frame[subject_core(mask)].astype(np.float64)
        delta_e.append(float(np.linalg.norm(rgb_to_lab(pixels.mean(0)) - reference_lab)) if len(pixels) else 100.0)
    return {"shape_iou": float(np.mean(ious)), "color_delta_e": float(np.mean(delta_e))}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    records = fmt.read_manifest(args.data, "val")[: args.clips]
    if not records:
        raise SystemExit(f"check_appearance: '{args.data}' has no validation clips.")
    model = None if args.truth else load_model(args.model, "check_appearance")
    args.out.mkdir(parents=True, exist_ok=True)
    clips, tiles = [], []
    for i, record in enumerate(records):
        arrays = _Npz(fmt.load_clip(args.data, record))
        frames = arrays["frames"][: args.frames] if model is None else generate_frames(model, arrays, record, args)
        score = score_frames(frames, arrays["frames"], arrays["mask"], args.window)
        clips.append({"id": record["id"], "style": record["style"], **score})
        tiles.append(np.concatenate([arrays["frames"][0], *frames[:4]], axis=1))
        print(f"[check_appearance] {i + 1}/{len(records)} {record['id']} ({record['style']}): "
              f"shape IoU {score['shape_iou']:.3f}, colour dE {score['color_delta_e']:.1f}", flush=True)
    styles = sorted({c["style"] for c in clips})
    summary = {"shape_iou": float(np.mean([c["shape_iou"] for c in clips])),
               "color_delta_e": float(np.mean([c["color_delta_e"] for c in clips])),
               "shape_iou_by_style": {s: float(np.mean([c["shape_iou"] for c in clips if c["style"] == s]))
                                      for s in styles}}
    report = {"model": "ground truth (--truth)" if model is None else str(args.model),
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "summary": summary, "clips": clips}
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    from PIL import Image

    Image.fromarray(np.concatenate(tiles, axis=0)).save(args.out / "tiles.png")  # rows of equal width
    print(f"[check_appearance] shape IoU {summary['shape_iou']:.3f}, colour dE {summary['color_delta_e']:.1f}; "
          f"wrote {args.out / 'report.json'} and tiles.png")
    return report


if __name__ == "__main__":
    main()
