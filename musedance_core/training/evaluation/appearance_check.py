"""Stage-1 check: does the model draw the reference's subject with its shape and colour? Each frame's
subject is segmented with the evaluator's colour model (learned from frame 0 and its mask) and scored
by its best mask IoU against the first ``window`` true masks (stage 1's targets come from such a
window) and by the colour Delta E76 of its mean colour (training/check_appearance.py)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...errors import TrainError
from ...pipeline import AnimateSettings
from .. import dataset as fmt
from .appearance import rgb_to_lab
from .run import ClipArrays, generate, load_model
from .tracking import learn_subject, segment, subject_core


@dataclass(frozen=True)
class CheckSettings:
    data: Path  # data-set folder; its 'val' clips are used
    out: Path = Path("appearance_check")
    model: Path | None = None  # a stage-1 bundle; None with ground_truth
    ground_truth: bool = False  # score the true frames: validates the check
    clips: int = 16
    frames: int = 8  # frames generated per clip
    window: int = 12  # true frames whose poses count as right (stage 1's reference_window)
    steps: int = 15
    cfg: float = 3.5
    seed: int = 0


def generate_frames(model, arrays: dict, record: dict, settings: CheckSettings) -> np.ndarray:
    """uint8 [frames, H, W, 3] from the clip's first frame, caption and music."""
    context = min(settings.frames, model.config.max_context_frames)
    return generate(model, arrays["frames"][0], arrays, record, record["caption"], num_frames=settings.frames,
                    steps=settings.steps, cfg=settings.cfg, seed=settings.seed, context_length=context,
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


def check_appearance(settings: CheckSettings) -> dict:
    """Score ``settings.model`` (or, with ``ground_truth``, the data's own frames) on the first
    ``settings.clips`` validation clips; writes report.json and tiles.png to ``settings.out`` and
    returns the report."""
    records = fmt.read_manifest(settings.data, "val")[: settings.clips]
    if not records:
        raise TrainError(f"'{settings.data}' has no validation clips (split 'val' in its manifest.jsonl).")
    records = [r for r in records if r.get("has_mask", True)]  # SynthDance clips always have masks
    if not records:
        raise TrainError(f"the validation clips of '{settings.data}' have no subject masks, which the check segments "
                         "the subject with; prepare the data with --mask-model DIR (or a static camera, or --masks).")
    model = None if settings.ground_truth else load_model(settings.model)
    settings.out.mkdir(parents=True, exist_ok=True)
    clips, tiles = [], []
    for i, record in enumerate(records):
        arrays = ClipArrays(fmt.load_clip(settings.data, record))
        frames = arrays["frames"][: settings.frames] if model is None else generate_frames(model, arrays, record, settings)
        score = score_frames(frames, arrays["frames"], arrays["mask"], settings.window)
        clips.append({"id": record["id"], "style": record.get("style") or "video", **score})
        tiles.append(np.concatenate([arrays["frames"][0], *frames[:4]], axis=1))
        print(f"[check_appearance] {i + 1}/{len(records)} {record['id']} ({record['style']}): "
              f"shape IoU {score['shape_iou']:.3f}, colour dE {score['color_delta_e']:.1f}", flush=True)
    styles = sorted({c["style"] for c in clips})
    summary = {"shape_iou": float(np.mean([c["shape_iou"] for c in clips])),
               "color_delta_e": float(np.mean([c["color_delta_e"] for c in clips])),
               "shape_iou_by_style": {s: float(np.mean([c["shape_iou"] for c in clips if c["style"] == s]))
                                      for s in styles}}
    report = {"model": "ground truth" if model is None else str(settings.model),
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()},
              "summary": summary, "clips": clips}
    (settings.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    from PIL import Image

    Image.fromarray(np.concatenate(tiles, axis=0)).save(settings.out / "tiles.png")  # rows of equal width
    print(f"[check_appearance] shape IoU {summary['shape_iou']:.3f}, colour dE {summary['color_delta_e']:.1f}; "
          f"wrote {settings.out / 'report.json'} and tiles.png")
    return report
