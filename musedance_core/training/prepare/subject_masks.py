"""Subject masks for the appearance stage's mask-weighted loss: from a local segmentation model
folder, or, for static cameras, from the difference to a median background (no model).

Model (``load_mask_model``): any semantic-segmentation folder transformers loads natively through
``AutoModelForSemanticSegmentation`` + ``AutoImageProcessor`` (SegFormer, UperNet, DPT, BEiT,
MobileViT, ...), e.g. a copy of nvidia/segformer-b2-finetuned-ade-512-512 (ADE20K, label 12
"person"; NVIDIA's SegFormer licence: research use) or nvidia/segformer-b5-finetuned-cityscapes-1024-1024
("person", "rider"). The subject is the union of the classes whose ``config.id2label`` names a person
(``PERSON_WORDS``), or of the labels given. Only local files are read (``local_files_only``, never
remote code); a mask is the argmax of the logits upsampled bilinearly to the frame size.

Fallback (``static_camera_masks``): the per-pixel temporal median of frames spread through a shot is
its background when the dancer moves around (a pixel the dancer covers in more than half of the
sampled frames becomes background: pass the frames of a whole shot, not one clip). Each frame's
colour distance to it, after a per-channel gain correction (light pulses), is thresholded per video
(Otsu, floored at a multiple of the noise level), grown by hysteresis, opened and closed, its holes
filled and its small pieces dropped. ``is_static_camera`` says whether the median explains the frames
(a moving camera leaves large differences everywhere), so a caller can refuse the fallback.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from .model_folders import (
    CONFIG_FILE,
    ModelFolderError,
    check_weight_files,
    read_model_config,
)

PREPROCESSOR_FILE = "preprocessor_config.json"
MASK_ROLE = "mask model (--mask-model)"
MASK_FIX = ("Give a local copy of a semantic-segmentation model with a person class, e.g. "
            "nvidia/segformer-b2-finetuned-ade-512-512 (config.json, model.safetensors, preprocessor_config.json).")
# Words that name a person in segmentation label sets (ADE20K, Cityscapes, COCO-Stuff, LIP, ...).
PERSON_WORDS = frozenset({"person", "persons", "people", "human", "humans", "man", "men", "woman", "women",
                          "rider", "pedestrian", "child", "boy", "girl", "dancer", "individual", "someone",
                          "somebody"})
UNIVERSAL_SEGMENTATION = ("mask2former", "maskformer", "oneformer")

# Fallback constants, on 0..255 RGB after a Gaussian blur of BLUR_SIGMA pixels (scaled up above a 256 short side).
BACKGROUND_SAMPLES = 64  # frames spread through the shot for the median
BLUR_SIGMA = 0.5
NOISE_FLOOR = 12.0  # smallest colour distance that counts as the subject
NOISE_FACTOR = 4.0  # ... and at least this many times the median distance (the background's noise)
HYSTERESIS_LOW = 0.5  # pixels above this fraction of the threshold join a region that passes it
KEEP_FRACTION = 0.05  # pieces smaller than this fraction of the largest are dropped
MIN_AREA_FRACTION = 0.002  # ... and pieces smaller than this fraction of the frame
STATIC_NOISE_SIGMAS = 4.0  # a pixel differs from the background beyond this many noise sigmas (chi3: p < 0.002)
STATIC_MIN_DISTANCE = 10.0  # ... and beyond this colour distance
STATIC_MAX_MISMATCH = 0.4  # a static camera: at most this fraction of a typical frame differs
# Measured on tests/test_prepare_masks.py's studio (4 s, dancer 7-9 % of the frame): static camera
# 0.07-0.10 at sensor noise sigma 2..12; panning over the smooth wall 0.23 at 0.1 px/frame (a 5 px drift,
# left for the median to blur), 0.42 at 0.25, 0.50 at 0.5, 0.62 at 2.
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


# -- model ------------------------------------------------------------------------------------------

def _label_words(label: str) -> set[str]:
    return {w for w in re.split(r"[^a-z]+", label.lower()) if w}


def _label_names(label: str) -> list[str]:
    """ADE's 'person;individual;someone' style: each ';' or ',' separated name."""
    return [n.strip().lower() for n in re.split(r"[;,]", label) if n.strip()]


def subject_classes(id2label: dict[int, str], labels: list[str] | None = None, folder: Path | None = None) -> list[int]:
    """Class ids of the subject: person-like labels, or those named in ``labels`` (case-insensitive, a
    label matches by its whole text or any of its ';'-separated names). Raises ModelFolderError."""
    where = f"'{folder}': " if folder is not None else ""
    if labels is None:
        ids = [i for i, name in id2label.items() if _label_words(name) & PERSON_WORDS]
        if not ids:
            shown = ", ".join(repr(id2label[i]) for i in sorted(id2label)[:12])
            raise ModelFolderError(f"{MASK_ROLE}: {where}no label of its {len(id2label)} classes names a person "
                                   f"({shown}{', ...' if len(id2label) > 12 else ''}). Pass the subject's labels with "
                                   "--mask-labels (e.g. --mask-labels 'Upper-clothes,Face'), or use a model with "
                                   "a person class.")
        return sorted(ids)
    wanted = {w.strip().lower() for w in labels if w.strip()}
    ids = [i for i, name in id2label.items() if name.strip().lower() in wanted or wanted & set(_label_names(name))]
    found = {n for i in ids for n in [id2label[i].strip().lower(), *_label_names(id2label[i])]}
    if not wanted or wanted - found:
        shown = ", ".join(repr(id2label[i]) for i in sorted(id2label)[:20])
        raise ModelFolderError(f"{MASK_ROLE}: {where}--mask-labels {sorted(wanted - found) or labels} not among the "
                               f"model's labels ({shown}{', ...' if len(id2label) > 20 else ''}); use its own label "
                               "names.")
    return sorted(ids)


def _check_segmentation_config(folder: Path, config: dict) -> str:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES as SEMANTIC,
    )

    model_type = str(config.get("model_type") or "")
    archs = [str(a) for a in config.get("architectures") or []]
    what = CONFIG_MAPPING_NAMES.get(model_type, "").removesuffix("Config") or model_type or "unknown"
    supported = ", ".join(sorted(SEMANTIC))
    if model_type not in SEMANTIC:
        hint = (" (universal segmentation, which AutoModelForSemanticSegmentation does not load)"
                if model_type in UNIVERSAL_SEGMENTATION else "")
        raise ModelFolderError(f"{MASK_ROLE}: '{folder}' holds a{'n' if what[0] in 'AEIOU' else ''} {what} model"
                               f"{hint} ({', '.join(archs) or 'no architectures listed'}), not a semantic-segmentation "
                               f"model; config.json model_type must be one of {supported}. {MASK_FIX}")
    if archs and not any(a.endswith("ForSemanticSegmentation") for a in archs):
        raise ModelFolderError(f"{MASK_ROLE}: '{folder}' holds a {', '.join(archs)}, not a ...ForSemanticSegmentation "
                               f"model (a backbone or classifier has no segmentation head). {MASK_FIX}")
    return model_type


def load_mask_model(folder: str | Path, device: Any = "cpu", labels: list[str] | None = None,
                    dtype: Any = None) -> MaskModel:
    """A segmentation model from a local folder, on ``device`` (fp32 unless ``dtype``, e.g. fp16 on CUDA).

    Raises:
        ModelFolderError: missing folder or files, not a semantic-segmentation model, no person-like
            label (and no ``labels``), weights that are damaged or do not fit config.json.
    """
    import torch

    folder = Path(folder)
    config = read_model_config(folder, MASK_ROLE, MASK_FIX)
    model_type = _check_segmentation_config(folder, config)
    try:
        id2label = {int(k): str(v) for k, v in (config.get("id2label") or {}).items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise ModelFolderError(f"{MASK_ROLE}: '{folder / CONFIG_FILE}' has an id2label that is not class number -> "
                               f"name ({exc}); copy the model's {CONFIG_FILE} again. {MASK_FIX}") from exc
    classes = subject_classes(id2label, labels, folder)
    check_weight_files(folder, MASK_ROLE, MASK_FIX)
    if not (folder / PREPROCESSOR_FILE).is_file():
        raise ModelFolderError(f"{MASK_ROLE}: '{folder}' has no {PREPROCESSOR_FILE} (how frames are resized and "
                               f"normalised); copy it from the model's repository. {MASK_FIX}")
    from safetensors import SafetensorError
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

    try:
        processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelFolderError(f"{MASK_ROLE}: cannot read '{folder / PREPROCESSOR_FILE}' ({exc}); copy it again. "
                               f"{MASK_FIX}") from exc
    dtype = dtype or torch.float32
    try:
        model, info = AutoModelForSemanticSegmentation.from_pretrained(
            folder, local_files_only=True, output_loading_info=True, dtype=dtype)
    except (SafetensorError, OSError, RuntimeError, ValueError, KeyError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFolderError(f"{MASK_ROLE}: cannot load the weights in '{folder}' ({first}): the file is damaged "
                               f"or incomplete, or does not fit {CONFIG_FILE}; copy the model again. {MASK_FIX}") from exc
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        raise ModelFolderError(f"{MASK_ROLE}: the weights in '{folder}' lack {len(missing)} tensors its {CONFIG_FILE} "
                               f"describes (e.g. {', '.join(missing[:3])}); keep one model's config and weights "
                               f"together. {MASK_FIX}")
    model = model.to(torch.device(device)).eval().requires_grad_(False)
    return MaskModel(model, processor, classes, f"{model_type}:{folder.name}", id2label)


class MaskModel:
    """A loaded segmentation model (make one with ``load_mask_model``).

    Attributes:
        id: '<model_type>:<folder name>', e.g. 'segformer:segformer-b2-finetuned-ade-512-512'.
        classes: the subject's class ids; ``labels`` their names.
    """

    def __init__(self, model, processor, classes: list[int], model_id: str, id2label: dict[int, str]):
        self.model, self.processor, self.classes, self.id = model, processor, classes, model_id
        self.labels = [id2label[i] for i in classes]
        # Logits must cover the whole frame: no centre crop or padding (MobileViT crops by default).
        self._call_kwargs = {k: False for k in ("do_center_crop", "do_pad") if getattr(processor, k, False)}

    def masks(self, frames: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """Subject masks of ``frames`` uint8 [T, H, W, 3] -> uint8 [T, H, W], 1 on the subject."""
        import torch
        import torch.nn.functional as F

        frames = _check_frames(frames)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
        T, H, W = frames.shape[:3]
        param = next(self.model.parameters())
        subject = torch.tensor(self.classes, device=param.device)
        out = np.zeros((T, H, W), np.uint8)
        with torch.inference_mode():
            for a in range(0, T, batch_size):
                inputs = self.processor(images=list(frames[a:a + batch_size]), return_tensors="pt",
                                        **self._call_kwargs)
                pixels = inputs["pixel_values"].to(device=param.device, dtype=param.dtype)
                logits = self.model(pixel_values=pixels).logits  # (B, C, h, w)
                for i, frame_logits in enumerate(logits):  # one frame at a time: C x H x W floats each
                    up = F.interpolate(frame_logits[None].float(), size=(H, W), mode="bilinear", align_corners=False)
                    out[a + i] = torch.isin(up[0].argmax(0), subject).cpu().numpy()
        return out


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not frames.shape[0]:
        raise ValueError(f"frames must be uint8 [T, H, W, 3] with T >= 1; got {frames.dtype} {frames.shape}.")
    return frames


# -- static-camera fallback -------------------------------------------------------------------------

def _sample_indices(n: int, k: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(int))


def _blur(image: np.ndarray) -> np.ndarray:
    sigma = BLUR_SIGMA * max(1.0, min(image.shape[:2]) / 256)
    return ndimage.gaussian_filter(image.astype(np.float32), (sigma, sigma, 0))


def estimate_background(frames: np.ndarray, samples: int = BACKGROUND_SAMPLES) -> np.ndarray:
    """Per-pixel temporal median of ``samples`` frames spread through ``frames`` uint8 [T, H, W, 3]
    -> float32 [H, W, 3] (0..255)."""
    frames = _check_frames(frames)
    return np.median(frames[_sample_indices(len(frames), samples)], axis=0).astype(np.float32)


def _distance(frame: np.ndarray, background_blur: np.ndarray) -> np.ndarray:
    """Colour distance [H, W] of ``frame`` to the (blurred) background after a per-channel gain fix."""
    x = _blur(frame)
    gain = np.median((x + 1.0) / (background_blur + 1.0), axis=(0, 1))  # (3,): mostly background pixels
    return np.linalg.norm(x / gain - background_blur, axis=-1)


def noise_sigma(frame: np.ndarray) -> float:
    """Per-channel sensor noise sigma of ``frame`` uint8 [H, W, 3] (Immerkaer, "Fast Noise Variance
    Estimation", CVIU 1996: mean |Laplacian difference| * sqrt(pi/2) / 6)."""
    x = frame.astype(np.float32)
    r = np.stack([ndimage.convolve(x[..., c], _IMMERKAER, mode="reflect") for c in range(3)])[:, 1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(r).mean() / 6)


def _blur_gain(shape: tuple[int, ...]) -> float:
    """How much ``_blur`` scales the standard deviation of white noise."""
    delta = np.zeros((9, 9, 1), np.float32)
    delta[4, 4] = 1.0
    sigma = BLUR_SIGMA * max(1.0, min(shape[:2]) / 256)
    return float(np.sqrt((ndimage.gaussian_filter(delta, (sigma, sigma, 0)) ** 2).sum()))


def background_mismatch(frames: np.ndarray, background: np.ndarray | None = None) -> float:
    """Fraction of a typical frame (median over sampled frames) that differs from the background by more
    than the sensor noise explains: the dancer's share for a static camera, most of the frame for a
    moving one."""
    frames = _check_frames(frames)
    bg = _blur(estimate_background(frames) if background is None else background)
    idx = _sample_indices(len(frames), BACKGROUND_SAMPLES)
    sigma = float(np.median([noise_sigma(frames[i]) for i in idx[::4]]))
    limit = max(STATIC_MIN_DISTANCE, STATIC_NOISE_SIGMAS * sigma * _blur_gain(frames.shape[1:]))
    return float(np.median([np.mean(_distance(frames[i], bg) > limit) for i in idx]))


def is_static_camera(frames: np.ndarray, background: np.ndarray | None = None) -> bool:
    """True when the median background explains most of each frame (``background_mismatch`` <=
    STATIC_MAX_MISMATCH), i.e. ``static_camera_masks`` can be used."""
    return background_mismatch(frames, background) <= STATIC_MAX_MISMATCH


def _video_threshold(distances: np.ndarray) -> float:
    """Otsu's threshold over the distances of sampled frames, floored above the background noise."""
    from skimage.filters import threshold_otsu

    values = distances.ravel()
    noise = float(np.median(values))  # most pixels are background
    floor = max(NOISE_FLOOR, NOISE_FACTOR * noise)
    if values.max() <= floor:
        return floor
    return max(floor, float(threshold_otsu(values[values > noise])))


def _clean(mask: np.ndarray, radius: int) -> np.ndarray:
    """Open (radius), close (twice the radius: rejoins limbs split where they cross background of their
    colour), fill holes, keep the largest piece and those above KEEP_FRACTION of it."""
    disk = _disk(radius)
    mask = ndimage.binary_opening(mask, disk)
    mask = ndimage.binary_closing(np.pad(mask, 2 * radius), _disk(2 * radius))[2 * radius:-2 * radius,
                                                                              2 * radius:-2 * radius]
    mask = ndimage.binary_fill_holes(mask)
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    areas = np.bincount(labels.ravel())[1:]
    keep = (areas >= KEEP_FRACTION * areas.max()) & (areas >= MIN_AREA_FRACTION * mask.size)
    return keep[labels - 1] & (labels > 0)


def _disk(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    return x * x + y * y <= radius * radius


def static_camera_masks(frames: np.ndarray, background: np.ndarray | None = None) -> np.ndarray:
    """Subject masks without a model for a static camera: ``frames`` uint8 [T, H, W, 3] -> uint8 [T, H, W].

    Args:
        background: float32 [H, W, 3] (``estimate_background`` of the whole shot); default: of ``frames``.
    """
    from skimage.filters import apply_hysteresis_threshold

    frames = _check_frames(frames)
    T, H, W = frames.shape[:3]
    if background is None:
        background = estimate_background(frames)
    if background.shape != (H, W, 3):
        raise ValueError(f"background must be [H, W, 3] = {(H, W, 3)} like the frames; got {background.shape}.")
    bg = _blur(background)
    dist = np.stack([_distance(f, bg) for f in frames])  # (T, H, W)
    high = _video_threshold(dist[_sample_indices(T, BACKGROUND_SAMPLES)])
    low = max(HYSTERESIS_LOW * high, min(NOISE_FLOOR, high))
    radius = max(1, round(min(H, W) / 128))
    out = np.empty((T, H, W), np.uint8)
    for t in range(T):
        out[t] = _clean(apply_hysteresis_threshold(dist[t], low, high), radius)
    return out
