"""Reference-image rules: any mode, any size in, an RGB tensor of the requested size out.

Rules (documented in the README):
- Alpha (RGBA, LA, P with transparency) is composited over white.
- Grayscale and palette images become RGB.
- The image is scaled to *cover* the requested width x height (aspect ratio kept) and
  centre-cropped, so nothing is stretched.
- width and height are rounded down to a multiple of 8 (the VAE's stride); each must end up
  between MIN_SIZE and MAX_SIZE.
- Images smaller than MIN_IMAGE_SIDE pixels on a side are refused (nothing to animate).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .errors import InputError
from .notes import note

SIZE_MULTIPLE = 8
MIN_SIZE, MAX_SIZE = 64, 2048
MIN_IMAGE_SIDE = 16


def check_size(width: int, height: int, multiple: int = SIZE_MULTIPLE) -> tuple[int, int, list[str]]:
    """Validate an output size; round each side down to ``multiple``.

    Returns (width, height, notes): the size to use and a note for each side that changed
    (the caller says them, see notes.py)."""
    out, notes = [], []
    for name, value in (("width", width), ("height", height)):
        value = int(value)
        if not (MIN_SIZE <= value <= MAX_SIZE):
            raise InputError(f"{name} must be between {MIN_SIZE} and {MAX_SIZE} pixels; got {value}.")
        rounded = value - value % multiple
        if rounded != value:
            notes.append(f"{name} {value} is not a multiple of {multiple}; using {rounded}.")
        out.append(rounded)
    return out[0], out[1], notes


def to_rgb_array(image) -> np.ndarray:
    """A PIL image, a numpy array ([H, W], [H, W, 1|3|4], uint8 or float 0..1) or a torch tensor
    ([H, W, C] or ComfyUI's [1, H, W, C]) -> float32 RGB [H, W, 3] in 0..1, alpha over white."""
    if hasattr(image, "mode") and hasattr(image, "convert"):  # PIL
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            image = image.convert("RGBA")
        elif image.mode != "RGB":
            image = image.convert("RGB")
        array = np.asarray(image, dtype=np.float32) / 255.0
    else:
        if torch.is_tensor(image):
            image = image.detach().to("cpu", torch.float32).numpy()
        array = np.asarray(image)
        if array.ndim == 4:
            if array.shape[0] != 1:
                note(f"reference image batch of {array.shape[0]}; using the first.")
            array = array[0]
        array = array.astype(np.float32) / 255.0 if array.dtype == np.uint8 else array.astype(np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise InputError(f"image must be [H, W], [H, W, C] or [1, H, W, C] with C in 1..4; got {array.shape}.")
    if array.shape[2] in (2, 4):  # gray+alpha or RGBA: composite over white
        alpha = np.clip(array[:, :, -1:], 0.0, 1.0)
        array = array[:, :, :-1] * alpha + (1.0 - alpha)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if not np.isfinite(array).all():
        raise InputError("image contains NaN or infinite values.")
    h, w = array.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        raise InputError(f"image is {w}x{h} pixels; MuseDance needs at least {MIN_IMAGE_SIDE} pixels on each side.")
    return np.clip(array, 0.0, 1.0)


def fit_image(image, width: int, height: int) -> torch.Tensor:
    """Reference image -> float32 tensor [1, 3, height, width] in [-1, 1] (cover-resize + centre crop)."""
    from PIL import Image

    array = to_rgb_array(image)
    h, w = array.shape[:2]
    scale = max(width / w, height / h)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    pil = Image.fromarray((array * 255.0 + 0.5).astype(np.uint8))
    pil = pil.resize((new_w, new_h), Image.Resampling.LANCZOS)
    left, top = (new_w - width) // 2, (new_h - height) // 2
    pil = pil.crop((left, top, left + width, top + height))
    tensor = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 127.5 - 1.0)
    return tensor.permute(2, 0, 1)[None].contiguous()


# -- reading image files (the CLI and animate-batch; ComfyUI's LoadImage reads them for the nodes) --

# Largest image decoded: PIL's own limit (89.5 megapixels, a 12000x7450 photo). A file claiming
# more is refused from its header, before any pixel is decoded (a "decompression bomb").
MAX_IMAGE_PIXELS = 89_478_485
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def read_image(path):
    """An image file read as ComfyUI's LoadImage reads it: EXIF orientation applied, 16-bit
    grayscale scaled by 1/65535 (not clipped), float ('F') images kept as 0..1 floats.

    Returns a PIL image (8-bit modes) or a float32 [H, W] array in 0..1 (16-bit and float modes),
    both accepted by ``to_rgb_array``/``fit_image``. The first frame of an animation is used.

    Raises:
        InputError: the file is missing, not an image, larger than MAX_IMAGE_PIXELS (checked from
            the header, before decoding), or a float image with NaN or infinite values.
    """
    from pathlib import Path

    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "not found"
        raise InputError(f"image file {what}: '{path}'. Give a png, jpg or webp file.")
    too_big = (f"'{path.name}' is too large to read safely (over {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels, a "
               "possible decompression bomb); resize it below that, e.g. to 4096x4096, and try again.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            w, h = image.size
            if w * h > MAX_IMAGE_PIXELS:
                raise InputError(too_big + f" It says it is {w}x{h}.")
            image.load()
            image = ImageOps.exif_transpose(image)  # phone photos: upright, as ComfyUI's LoadImage
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(too_big) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"cannot read '{path.name}' as an image ({exc}); use png, jpg or webp.") from exc
    if image.mode in _SIXTEEN_BIT_MODES:
        array = np.asarray(image).astype(np.float32)
        return np.clip(array / 65535.0, 0.0, 1.0)
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float32)
        if not np.isfinite(array).all():
            bad = int((~np.isfinite(array)).sum())
            raise InputError(f"'{path.name}' is a float image with {bad} NaN or infinite pixel(s); MuseDance cannot "
                             "guess their colour. Fill them in an image editor, or save it as an 8- or 16-bit png.")
        lo, hi = float(array.min()), float(array.max())
        if lo < 0.0 or hi > 1.0:
            note(f"'{path.name}' is a float image spanning {lo:.3g}..{hi:.3g}; values outside 0..1 are "
                 "clipped, as in ComfyUI.")
        return np.clip(array, 0.0, 1.0)
    return image
