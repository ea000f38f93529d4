"""Body keypoints from a local ViTPose folder, and DensePose-like body-part maps made from them.

The paper's stage 1 weights its loss with DensePose so the model attends to the dancer's body.
DensePose needs detectron2; ViTPose (Xu et al. 2022) runs in transformers itself, and its 17 COCO
keypoints give a part map good enough for a loss weight: each subject pixel takes the part of its
nearest skeleton segment.

Folder (``load_pose_model``): what ``save_pretrained`` writes, or a copy of
usyd-community/vitpose-base-simple (Apache-2.0; also -small, -large, -huge, and the ViTPose++
``vitpose-plus-*`` folders, whose expert backbones are run with COCO's dataset index 0):
``config.json`` (model_type ``vitpose``), ``model.safetensors`` and ``preprocessor_config.json``
(VitPoseImageProcessor). ViTPose is top-down: it reads the person inside a box given per frame
(``mask_boxes`` makes them from subject masks). Only local files are read; no remote code is run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from ...errors import InputError
from .model_folders import ModelFolderError, check_weight_files, read_model_config

if TYPE_CHECKING:
    import torch

ROLE = "pose model (--pose-model)"
FIX = ("Give a ViTPose folder saved with save_pretrained or copied from the Hub, e.g. "
       "usyd-community/vitpose-base-simple (config.json, model.safetensors, preprocessor_config.json).")
PREPROCESSOR_FILE = "preprocessor_config.json"
MODEL_TYPE = "vitpose"
COCO_DATASET_INDEX = 0  # ViTPose++ experts: 0 is COCO's keypoint head

COCO_KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                  "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                  "right_knee", "left_ankle", "right_ankle")
NUM_KEYPOINTS = len(COCO_KEYPOINTS)
BACKGROUND = 0
PART_NAMES = ("head", "torso", "left_upper_arm", "left_forearm", "right_upper_arm", "right_forearm",
              "left_thigh", "left_shin", "right_thigh", "right_shin")  # label i + 1
# The COCO skeleton's segments per part (keypoint indices); a segment (k, k) is a single point.
# Where segments cross, the later part wins (limbs over the torso, legs over arms).
PART_SEGMENTS = {
    "head": ((0, 0), (0, 1), (0, 2), (1, 2), (1, 3), (2, 4), (3, 3), (4, 4)),
    "torso": ((5, 6), (11, 12), (5, 11), (6, 12), (5, 12), (6, 11)),
    "left_upper_arm": ((5, 7),), "left_forearm": ((7, 9),), "right_upper_arm": ((6, 8),), "right_forearm": ((8, 10),),
    "left_thigh": ((11, 13),), "left_shin": ((13, 15),), "right_thigh": ((12, 14),), "right_shin": ((14, 16),),
}
SEGMENTS = np.array([seg for name in PART_NAMES for seg in PART_SEGMENTS[name]], np.int64)  # (S, 2)
SEGMENT_LABELS = np.array([i + 1 for i, name in enumerate(PART_NAMES) for _ in PART_SEGMENTS[name]], np.uint8)
TORSO_CORNERS = (5, 6, 12, 11)  # shoulders and hips, around the torso
# Without a mask the body is the pixels within a limb's half-width of the segments, plus the torso:
# 0.06 of the keypoints' bounding-box diagonal is ~13 px for a 200 px tall dancer (limbs ~26 px wide).
LIMB_HALF_WIDTH = 0.06
MIN_HALF_WIDTH_PX = 2.0
WORK_PIXELS = 128 * 128  # the nearest-segment search runs on a grid of at most ~this many pixels
BOX_PAD = 0.1  # mask boxes grow by this fraction of their size on each side


# -- the model ------------------------------------------------------------------------------------

@dataclass
class PoseModel:
    """A ViTPose network with its image processor, on ``device`` in ``dtype``."""

    model: Any
    processor: Any
    device: Any
    dtype: Any
    name: str
    experts: bool  # ViTPose++: needs a dataset index

    @property
    def num_keypoints(self) -> int:
        return int(self.model.config.num_labels)

    def keypoints(self, frames: np.ndarray, boxes: np.ndarray | None = None, batch_size: int = 16) -> np.ndarray:
        """Keypoints of the person inside each frame's box.

        Args:
            frames: uint8 [T, H, W, 3].
            boxes: float [T, 4] (x0, y0, x1, y1) in pixels, e.g. ``mask_boxes(masks)``; None: whole frames.
        Returns:
            float32 [T, K, 3]: x, y in pixels and the score (K = 17, COCO order, for COCO models).
        """
        import torch

        frames = _check_frames(frames)
        t, h, w = frames.shape[:3]
        boxes = _check_boxes(boxes, t, h, w)
        coco = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)  # (x, y, w, h)
        out = np.zeros((t, self.num_keypoints, 3), np.float32)
        for s in range(0, t, batch_size):
            batch = [[coco[i].tolist()] for i in range(s, min(t, s + batch_size))]
            inputs = self.processor(images=list(frames[s:s + len(batch)]), boxes=batch, return_tensors="pt")
            pixels = inputs["pixel_values"].to(self.device, self.dtype)
            extra = {}
            if self.experts:
                extra["dataset_index"] = torch.full((len(batch),), COCO_DATASET_INDEX, device=self.device)
            with torch.inference_mode():
                result = self.model(pixel_values=pixels, **extra)
            result.heatmaps = result.heatmaps.float()
            poses = self.processor.post_process_pose_estimation(result, boxes=batch)
            for j, frame_poses in enumerate(poses):
                out[s + j, :, :2] = frame_poses[0]["keypoints"].numpy()
                out[s + j, :, 2] = frame_poses[0]["scores"].numpy()
        return out


def load_pose_model(folder: str | Path, device: str | torch.device = "cpu",
                    dtype: torch.dtype | None = None) -> PoseModel:
    """Load a ViTPose folder, checked first so a wrong folder is named with its fix.

    Args:
        device: torch device; ``dtype`` None picks fp16 on CUDA and MPS, fp32 on the CPU.
    Raises:
        ModelFolderError: missing folder, not ViTPose, no or damaged weights, no preprocessor config.
    """
    import torch

    folder = Path(folder)
    config = read_model_config(folder, ROLE, FIX)
    model_type = str(config.get("model_type", ""))
    if model_type != MODEL_TYPE:
        arch = ", ".join(map(str, config.get("architectures") or [])) or "no architectures listed"
        raise ModelFolderError(f"{ROLE}: '{folder}' holds a '{model_type or 'unknown'}' model ({arch}), not ViTPose "
                               f"(config.json model_type '{MODEL_TYPE}'). {FIX}")
    check_weight_files(folder, ROLE, FIX)
    if not (folder / PREPROCESSOR_FILE).is_file():
        raise ModelFolderError(f"{ROLE}: '{folder}' has no {PREPROCESSOR_FILE} (the VitPoseImageProcessor settings); "
                               f"copy it from the model's repository. {FIX}")
    device = torch.device(device)
    if dtype is None:
        dtype = torch.float16 if device.type in ("cuda", "mps") else torch.float32
    from transformers import VitPoseForPoseEstimation, VitPoseImageProcessor

    try:
        processor = VitPoseImageProcessor.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ModelFolderError(f"{ROLE}: cannot read '{folder / PREPROCESSOR_FILE}' ({exc}); copy it again. "
                               f"{FIX}") from exc
    model = load_checked(VitPoseForPoseEstimation, folder, ROLE, FIX, dtype=dtype)
    if model.config.num_labels < NUM_KEYPOINTS:
        raise ModelFolderError(f"{ROLE}: '{folder}' predicts {model.config.num_labels} keypoints, not COCO's "
                               f"{NUM_KEYPOINTS}. {FIX}")
    experts = int(getattr(model.config.backbone_config, "num_experts", 1)) > 1
    model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return PoseModel(model, processor, device, dtype, folder.name, experts)


def load_checked(cls, folder: Path, role: str, fix: str, dtype: torch.dtype | None = None):
    """``cls.from_pretrained`` on local files only, refusing damaged weights and weights that leave
    tensors of the network unset (transformers would fill them with random values and go on)."""
    import transformers
    from safetensors import SafetensorError

    kwargs = {}
    if dtype is not None:  # transformers 5 names it dtype, 4 torch_dtype
        kwargs["dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"] = dtype
    try:
        model, info = cls.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False,
                                          output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, EOFError, SafetensorError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFolderError(f"{role}: cannot load the model in '{folder}' ({first}); its files are damaged, "
                               f"incomplete, or of different models. {fix}") from exc
    problems = [f"{len(info[k])} {what} (e.g. {min(info[k])})"
                for k, what in (("missing_keys", "tensors missing"), ("mismatched_keys", "tensors of another shape"))
                if info.get(k)]
    if problems:
        raise ModelFolderError(f"{role}: the weights in '{folder}' do not fit its config.json: {'; '.join(problems)}. "
                               f"Keep the config.json and weights of one model together. {fix}")
    return model


# -- boxes and part maps --------------------------------------------------------------------------

def mask_boxes(masks: np.ndarray, pad: float = BOX_PAD) -> np.ndarray:
    """Person boxes for ``PoseModel.keypoints``: each mask's bounding box grown by ``pad`` of its size
    on each side; the whole frame where a mask is empty.

    Args:
        masks: [T, H, W], > 0 on the subject.
    Returns:
        float32 [T, 4] (x0, y0, x1, y1) pixels, inside the frame.
    """
    masks = np.asarray(masks) > 0
    if masks.ndim != 3:
        raise InputError(f"masks must be [T, H, W]; got shape {masks.shape}.")
    t, h, w = masks.shape
    boxes = np.tile(np.array([0, 0, w, h], np.float32), (t, 1))
    rows, cols = masks.any(axis=2), masks.any(axis=1)  # [T, H], [T, W]
    for i in np.flatnonzero(rows.any(axis=1)):
        y = np.flatnonzero(rows[i])
        x = np.flatnonzero(cols[i])
        x0, x1, y0, y1 = x[0], x[-1] + 1, y[0], y[-1] + 1
        px, py = pad * (x1 - x0), pad * (y1 - y0)
        boxes[i] = (max(0, x0 - px), max(0, y0 - py), min(w, x1 + px), min(h, y1 + py))
    return boxes


def part_maps(keypoints: np.ndarray, masks: np.ndarray | None, size: tuple[int, int],
              min_score: float = 0.3) -> np.ndarray:
    """Body-part labels: each subject pixel takes the part (``PART_NAMES``) of its nearest skeleton
    segment between confident keypoints; without masks the subject is the pixels within a limb's
    half-width of the segments, or inside the torso.

    Args:
        keypoints: [T, K, 3] (x, y pixels, score), COCO order (the first 17 are used).
        masks: uint8 [T, H, W] (> 0 is the subject) or None.
        size: (H, W) of the frames.
    Returns:
        uint8 [T, H, W]: 0 background, i + 1 for ``PART_NAMES[i]``; all 0 in a frame with fewer
        than two confident keypoints.
    """
    keypoints = np.asarray(keypoints, np.float32)
    h, w = int(size[0]), int(size[1])
    if keypoints.ndim != 3 or keypoints.shape[1] < NUM_KEYPOINTS or keypoints.shape[2] != 3:
        raise InputError(f"keypoints must be [T, {NUM_KEYPOINTS} (COCO) or more, 3]; got shape {keypoints.shape}.")
    if masks is not None and np.shape(masks) != (keypoints.shape[0], h, w):
        raise InputError(f"masks must be [T, H, W] = {(keypoints.shape[0], h, w)} to match keypoints and size; "
                         f"got {np.shape(masks)}.")
    out = np.zeros((keypoints.shape[0], h, w), np.uint8)
    for i, kp in enumerate(keypoints[:, :NUM_KEYPOINTS]):
        _frame_parts(kp, None if masks is None else masks[i] > 0, out[i], min_score)
    return out


def _frame_parts(kp: np.ndarray, mask: np.ndarray | None, out: np.ndarray, min_score: float) -> None:
    ok = (kp[:, 2] >= min_score) & np.isfinite(kp[:, :2]).all(axis=1)
    if ok.sum() < 2:
        return
    h, w = out.shape
    pts = kp[ok, :2]
    half = max(MIN_HALF_WIDTH_PX, LIMB_HALF_WIDTH * float(np.hypot(*(pts.max(axis=0) - pts.min(axis=0)))))
    # The work window: the subject's box (or the skeleton's, grown by a half-width), on a grid of
    # stride s so that a whole-frame subject costs ~WORK_PIXELS.
    if mask is not None:
        if not mask.any():
            return
        ys, xs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        y0, y1, x0, x1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
    else:
        lo, hi = np.floor(pts.min(axis=0) - half), np.ceil(pts.max(axis=0) + half) + 1
        x0, y0 = int(max(0, lo[0])), int(max(0, lo[1]))
        x1, y1 = int(min(w, hi[0])), int(min(h, hi[1]))
        if x1 <= x0 or y1 <= y0:
            return
    s = max(1, round(float(np.sqrt((y1 - y0) * (x1 - x0) / WORK_PIXELS))))
    gh, gw = -(-(y1 - y0) // s), -(-(x1 - x0) // s)
    # grid cell (r, c) is centred on pixel (y0 + r s + (s - 1) / 2, x0 + c s + (s - 1) / 2)
    grid_kp = (kp[:, :2] - np.array([x0, y0], np.float32) - (s - 1) / 2) / s
    use = ok[SEGMENTS[:, 0]] & ok[SEGMENTS[:, 1]]
    if not use.any():  # confident keypoints, but no two that a limb joins (e.g. an eye and a knee)
        return
    seeds = _draw_segments(grid_kp[SEGMENTS[use, 0]], grid_kp[SEGMENTS[use, 1]], SEGMENT_LABELS[use], gh, gw)
    if not seeds.any():
        return
    dist, (iy, ix) = ndimage.distance_transform_edt(seeds == BACKGROUND, return_indices=True)
    labels = seeds[iy, ix]
    if mask is None:
        body = dist * s <= half
        if ok[list(TORSO_CORNERS)].all():
            body |= _inside_polygon(grid_kp[list(TORSO_CORNERS)], gh, gw)
        labels = np.where(body, labels, BACKGROUND)
    window = labels if s == 1 else labels.repeat(s, axis=0).repeat(s, axis=1)[: y1 - y0, : x1 - x0]
    if mask is not None:
        window = np.where(mask[y0:y1, x0:x1], window, BACKGROUND)
    out[y0:y1, x0:x1] = window


def _draw_segments(a: np.ndarray, b: np.ndarray, labels: np.ndarray, h: int, w: int) -> np.ndarray:
    """uint8 [h, w]: the label of the segment (a -> b, x y in grid cells; a point when a == b) through
    each cell, the highest where segments cross; 0 elsewhere."""
    steps = int(np.ceil(2 * np.hypot(*(b - a).T).max())) + 1  # <= half a cell apart
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[None, :, None]
    xy = np.rint(a[:, None] + t * (b - a)[:, None]).astype(np.int64).reshape(-1, 2)  # (S * steps, 2)
    lab = np.repeat(labels, steps)
    keep = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    seeds = np.zeros((h, w), np.uint8)
    np.maximum.at(seeds, (xy[keep, 1], xy[keep, 0]), lab[keep])
    return seeds


def _inside_polygon(corners: np.ndarray, h: int, w: int) -> np.ndarray:
    """Grid cells inside a polygon (x, y corners), by the even-odd rule."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    inside = np.zeros((h, w), bool)
    for (xa, ya), (xb, yb) in zip(corners, np.roll(corners, -1, axis=0)):
        if ya == yb:
            continue
        crosses = (ya > y) != (yb > y)
        inside ^= crosses & (x < xa + (y - ya) * (xb - xa) / (yb - ya))
    return inside


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
        raise InputError(f"frames must be uint8 [T, H, W, 3] with T >= 1; got {frames.dtype} {frames.shape}.")
    return frames


def _check_boxes(boxes: np.ndarray | None, t: int, h: int, w: int) -> np.ndarray:
    if boxes is None:
        return np.tile(np.array([0, 0, w, h], np.float32), (t, 1))
    boxes = np.asarray(boxes, np.float32)
    if boxes.shape != (t, 4):
        raise InputError(f"boxes must be [T, 4] = ({t}, 4) (x0, y0, x1, y1 pixels); got {boxes.shape}.")
    boxes = np.clip(boxes, 0, np.array([w, h, w, h], np.float32))
    bad = ~np.isfinite(boxes).all(axis=1) | (boxes[:, 2] - boxes[:, 0] < 1) | (boxes[:, 3] - boxes[:, 1] < 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"boxes[{i}] = {boxes[i].tolist()} is empty inside the {w}x{h} frame; each box needs "
                         "x1 > x0 and y1 > y0 (use the whole frame where no subject was found).")
    return boxes
