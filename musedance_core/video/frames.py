"""Frame batches for the writer: checked ([N, H, W, 3], uint8 or float) before anything is
encoded, then made uint8 a chunk at a time on their own device (floats clipped to 0..1, NaN as
black, with a note when the values look wrong) and padded to the even size yuv420p needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import VideoError
from ..notes import note

RANGE_SLACK = 0.01  # float frames this far outside 0..1 are clipped without a note


def is_torch(x: Any) -> bool:
    return hasattr(x, "detach") and hasattr(x, "is_floating_point")


def frame_batches(frames: Any) -> Iterator[Any]:
    """``frames`` as [N, H, W, C] batches (numpy or torch); a list's [H, W, C] items get N = 1."""
    if isinstance(frames, (list, tuple)):
        for item in frames:
            if not is_torch(item):
                item = np.asarray(item)
            yield item[None] if item.ndim == 3 else item
    else:
        yield frames if is_torch(frames) else np.asarray(frames)


def check_batch(batch: Any, name: str, size: tuple[int, int] | None) -> None:
    """Raise VideoError unless ``batch`` is [N, H, W, 3] uint8/float of size ``(H, W)``."""
    shape = tuple(int(s) for s in batch.shape)
    if len(shape) != 4 or shape[-1] != 3:
        hint = ""
        if len(shape) == 3 and shape[-1] == 3:
            hint = " A single [H, W, 3] frame needs a leading frame axis: frames[None]."
        elif len(shape) == 4 and shape[-1] == 4:
            hint = " For RGBA frames, drop the alpha channel (frames[..., :3]) or composite it first."
        elif len(shape) == 4 and shape[-1] == 1:
            hint = " For grey frames, repeat the channel: frames.repeat(3, axis=-1)."
        elif len(shape) == 4 and shape[1] in (1, 3, 4):
            hint = " Channels-first [N, 3, H, W] must be moved last: [N, H, W, 3]."
        raise VideoError(f"frames for '{name}' must be [N, H, W, 3] RGB; got shape {list(shape)}.{hint}")
    if is_torch(batch):
        ok = batch.is_floating_point() or str(batch.dtype) == "torch.uint8"
    else:
        ok = batch.dtype == np.uint8 or batch.dtype.kind == "f"
    if not ok:
        raise VideoError(f"frames for '{name}' must be uint8 (0..255) or float (0..1); got dtype "
                         f"{batch.dtype}. Convert them: to uint8, or to float and divide by 255.")
    if size is not None and shape[0] and shape[1:3] != size:
        raise VideoError(f"frames for '{name}' must be {size[1]}x{size[0]} (width x height, as "
                         f"given to VideoWriter); got {shape[2]}x{shape[1]}. Resize them, or "
                         "write them to a separate video.")


def to_uint8(chunk: Any, name: str, said: set[str]) -> np.ndarray:
    """A checked [n, H, W, 3] batch as uint8 numpy; floats clipped to 0..1, NaN -> 0.

    A note about NaN/inf and one about values far outside 0..1, each once per ``said`` set.
    """
    if is_torch(chunk):
        chunk = chunk.detach()
        if not chunk.is_floating_point():
            return np.ascontiguousarray(chunk.cpu().numpy())
        chunk = chunk.float()  # on its own device; half/bfloat16 included
        finite = bool(chunk.isfinite().all())
        if not finite:
            chunk = chunk.nan_to_num(nan=0.0, posinf=1.0, neginf=0.0)
        lo, hi = float(chunk.min()), float(chunk.max())
        out = chunk.clamp(0.0, 1.0).mul(255.0).add(0.5).byte().cpu().numpy()
    else:
        if chunk.dtype == np.uint8:
            return np.ascontiguousarray(chunk)
        chunk = chunk.astype(np.float32, copy=False)
        finite = bool(np.isfinite(chunk).all())
        if not finite:
            chunk = np.nan_to_num(chunk, nan=0.0, posinf=1.0, neginf=0.0)
        lo, hi = float(chunk.min()), float(chunk.max())
        out = (np.clip(chunk, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if not finite and "nan" not in said:
        said.add("nan")
        note(f"frames for '{name}' contain NaN/inf values; NaN is written as 0 (black) "
             "and inf clipped to 0..1. The model or VAE may have overflowed (try fp32).")
    if (lo < -RANGE_SLACK or hi > 1.0 + RANGE_SLACK) and "range" not in said:
        said.add("range")
        hint = (" They look like 0..255: divide by 255 or pass uint8." if hi > 2.0 else
                " They look like -1..1: pass (frames + 1) / 2." if lo < -0.5 else "")
        note(f"float frames for '{name}' span {lo:.3g}..{hi:.3g}; expected 0..1, values "
             f"outside are clipped.{hint}")
    return out


def pad_even(chunk: np.ndarray) -> np.ndarray:
    """Pad uint8 [n, H, W, 3] to even H and W by repeating the last row/column."""
    pad_h, pad_w = chunk.shape[1] % 2, chunk.shape[2] % 2
    if not (pad_h or pad_w):
        return chunk
    return np.pad(chunk, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")


