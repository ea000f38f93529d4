"""Frame rates as exact fractions, and mp4 clocks in which every frame lasts whole ticks.

NTSC rates written as decimals are their true fractions (29.97 -> 30000/1001); other rates the
nearest fraction with a small denominator (12.5 -> 25/2). The writer stores the rate and picks its
clocks from it, so a video's stored duration is exactly ``num_frames / fps`` (FFmpeg's default
1 ms movie clock would round it).
"""

from __future__ import annotations

import math
from fractions import Fraction

from ..errors import VideoError

MIN_FPS, MAX_FPS = 1e-3, 1000.0
MAX_FPS_DENOMINATOR = 1001  # fps are stored as fractions with at most this denominator
NTSC_FACTOR = Fraction(1000, 1001)  # 29.97 means 30 * 1000/1001 (and 23.976, 59.94, ...)
NTSC_TOLERANCE = 0.005  # |fps * 1.001 - round(fps * 1.001)| below this reads as an NTSC rate
MIN_NTSC_BASE = 10  # only 10 * 1000/1001 fps and up are read as NTSC rates
MIN_TRACK_TIMESCALE = 10_000  # FFmpeg's mov muxer doubles its track clock up to at least this


def fps_to_fraction(fps: float | Fraction, name: str = "fps") -> Fraction:
    """The exact frame rate ``fps`` stands for.

    NTSC rates written as decimals become their true fractions (29.97 -> 30000/1001, 23.976 ->
    24000/1001, 59.94 -> 60000/1001); any other rate becomes the nearest fraction with a
    denominator of at most 1001 (12.5 -> 25/2, 24 -> 24/1).
    """
    if isinstance(fps, Fraction):
        rate = fps
    else:
        try:
            value = float(fps)
        except (TypeError, ValueError):
            raise VideoError(f"{name} must be a number of frames per second; got {fps!r}.") from None
        if not math.isfinite(value):
            raise VideoError(f"{name} must be a finite number of frames per second; got {fps}.")
        base = round(value / NTSC_FACTOR)
        is_integer = abs(value - round(value)) < 1e-9
        if (not is_integer and base >= MIN_NTSC_BASE
                and abs(value / float(NTSC_FACTOR) - base) < NTSC_TOLERANCE):
            rate = base * NTSC_FACTOR
        else:
            rate = Fraction(value).limit_denominator(MAX_FPS_DENOMINATOR)
    if not (MIN_FPS <= rate <= MAX_FPS):
        raise VideoError(f"{name} must be between {MIN_FPS} and {MAX_FPS:g} frames per second; "
                         f"got {float(fps):g}. Pass the frame rate of the animation (e.g. 24).")
    return rate


def track_timescale(rate: Fraction) -> int:
    """An mp4 clock (ticks per second) in which every frame lasts a whole number of ticks.

    The same rule as FFmpeg's mov muxer (the rate's numerator, doubled up to >= 10000), set
    explicitly so the movie clock can use it too.
    """
    timescale = rate.numerator
    while timescale < MIN_TRACK_TIMESCALE:
        timescale *= 2
    return timescale

