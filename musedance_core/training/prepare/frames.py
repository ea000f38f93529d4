"""Frames of a video at the data set's fps and size, streamed: resampled by timestamp, rotated as the
file says, resized to cover and centre-cropped; subject masks resampled the same way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .config import MASK_THRESHOLD, TIME_EPS, SkipVideo

# -- frames -----------------------------------------------------------------------------------------

def cover_size(width: int, height: int, out_w: int, out_h: int) -> tuple[int, int]:
    """Size (w, h) that covers ``out_w x out_h`` keeping the aspect ratio (fit_image's rule)."""
    scale = max(out_w / width, out_h / height)
    return max(out_w, round(width * scale)), max(out_h, round(height * scale))


def centre_crop(image: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    h, w = image.shape[:2]
    top, left = (h - out_h) // 2, (w - out_w) // 2
    return image[top:top + out_h, left:left + out_w]


class FrameConverter:
    """Decoded av.VideoFrame -> uint8 [H, W, 3] (or [H, W] for masks) at the output size.

    Scaling is done by FFmpeg (area filter) straight from the decoder's pixel format, rotation
    by the frame's display matrix, then the centre crop.
    """

    def __init__(self, out_w: int, out_h: int, gray: bool = False):
        self.out_w, self.out_h, self.gray = out_w, out_h, gray
        self._plan = None

    def __call__(self, frame) -> np.ndarray:
        if self._plan is None:
            turns = round((getattr(frame, "rotation", 0) or 0) / 90) % 4
            w, h = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
            cw, ch = cover_size(w, h, self.out_w, self.out_h)
            self._plan = (turns, (ch, cw) if turns % 2 else (cw, ch))
        turns, (sw, sh) = self._plan
        image = frame.to_ndarray(width=sw, height=sh, format="gray" if self.gray else "rgb24",
                                 interpolation="AREA", src_color_range=frame.color_range or None)
        if turns:
            image = np.rot90(image, k=turns)
        return np.ascontiguousarray(centre_crop(image, self.out_w, self.out_h))


def resampled_frames(path: Path, fps: float, limit: int, convert: FrameConverter) -> Iterator[tuple[int, np.ndarray]]:
    """Stream ``(source frame index, converted frame)`` for output frames k = 0.. limit-1 at ``fps``.

    Output frame k shows the source frame whose timestamp (from the first frame) is nearest k / fps;
    only picked frames are converted. Raises SkipVideo on an unreadable file.
    """
    import av

    from ...errors import MuseDanceError
    from ...video.reader import open_video

    try:
        container = open_video(path)
    except MuseDanceError as exc:
        raise SkipVideo(str(exc)) from exc
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 30)
        k, t0, prev = 0, None, None  # prev: (time, index, frame)
        index = -1
        try:
            for index, frame in enumerate(container.decode(stream)):
                t = frame.time if frame.time is not None else index / rate
                if t0 is None:
                    t0 = t
                t -= t0
                while k < limit and k / fps <= t + TIME_EPS:
                    tk = k / fps
                    pick = prev if prev is not None and tk - prev[0] < t - tk - TIME_EPS else (t, index, frame)
                    yield pick[1], convert(pick[2])
                    k += 1
                if k >= limit:
                    return
                prev = (t, index, frame)
        except av.error.FFmpegError as exc:
            if prev is None:
                raise SkipVideo(f"cannot decode '{path.name}': {exc}.") from exc
        if prev is None:
            raise SkipVideo(f"'{path.name}' has no decodable video frames.")
        while k < limit and k / fps < prev[0] + 1.0 / rate - TIME_EPS:  # the last frame's display span
            yield prev[1], convert(prev[2])
            k += 1


def png_masks(folder: Path, picks: Iterator[tuple[int, np.ndarray]], out_w: int, out_h: int
              ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Attach PNG masks (one per source frame, sorted by name) to ``picks``: (index, frame, mask 0/1)."""
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    for index, frame in picks:
        if index >= len(files):
            raise SkipVideo(f"mask folder '{folder.name}' has {len(files)} PNGs; source frame {index + 1} "
                            "has none (one PNG per source frame is expected).")
        with Image.open(files[index]) as img:
            gray = np.asarray(img.convert("L").resize(cover_size(*img.size, out_w, out_h), Image.Resampling.BILINEAR))
        yield index, frame, (centre_crop(gray, out_w, out_h) >= MASK_THRESHOLD).astype(np.uint8)


def video_masks(path: Path, picks: Iterator[tuple[int, np.ndarray]], fps: float, limit: int,
                out_w: int, out_h: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Attach masks from a mask video, resampled by timestamp like the video."""
    masks = resampled_frames(path, fps, limit, FrameConverter(out_w, out_h, gray=True))
    for index, frame in picks:
        item = next(masks, None)
        if item is None:
            raise SkipVideo(f"mask video '{path.name}' is shorter than its video.")
        yield index, frame, (item[1] >= MASK_THRESHOLD).astype(np.uint8)
