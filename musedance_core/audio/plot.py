"""Beat plot: the waveform and onset curve with beats and downbeats marked.

Drawn with Pillow only (no matplotlib), as an RGB uint8 array [H, W, 3] that saves as PNG and
converts to a ComfyUI IMAGE ([1, H, W, 3] float 0..1) without loss.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..types import BeatTrack, beat_feature_names

BACKGROUND = (250, 250, 248)
WAVE_COLOUR = (170, 178, 190)
ONSET_COLOUR = (235, 140, 40)
BEAT_COLOUR = (60, 110, 220)
DOWNBEAT_COLOUR = (210, 40, 60)
TEXT_COLOUR = (30, 30, 30)
GRID_COLOUR = (215, 215, 215)
HEADER_PX = 22
FOOTER_PX = 18


def beat_plot(samples: np.ndarray, sample_rate: int, beats: BeatTrack, *, width: int = 1200,
              height: int = 320) -> np.ndarray:
    """Draw ``samples`` (mono [N]) with ``beats``; returns uint8 [height, width, 3].

    Waveform: min/max per pixel column (grey). Onset strength (orange): the beat track's own
    per-frame onset feature. Beats: thin blue lines; downbeats: thick red lines.
    """
    from PIL import Image, ImageDraw

    width, height = max(int(width), 200), max(int(height), 120)
    img = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(img)
    top, bottom = HEADER_PX, height - FOOTER_PX
    mid, half = (top + bottom) / 2, (bottom - top) / 2 - 2
    duration = max(beats.duration, len(samples) / float(sample_rate), 1e-6)

    def x_of(t: float) -> float:
        return t / duration * (width - 1)

    # Time grid with second labels at a readable step.
    step = next(s for s in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600) if duration / s <= 12)
    for k in range(int(duration / step) + 1):
        x = x_of(k * step)
        draw.line([(x, top), (x, bottom)], fill=GRID_COLOUR)
        draw.text((x + 2, bottom + 3), f"{k * step:g}s", fill=TEXT_COLOUR)

    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    if samples.size:
        peak = float(np.abs(samples).max()) or 1.0
        columns = min(width, samples.size)
        starts = np.linspace(0, samples.size, columns, endpoint=False).astype(np.int64)
        lows, highs = np.minimum.reduceat(samples, starts), np.maximum.reduceat(samples, starts)
        span = samples.size / float(sample_rate)
        for x, lo, hi in zip(starts, lows, highs):
            xx = x_of(x / float(sample_rate)) if span else 0.0
            draw.line([(xx, mid - hi / peak * half), (xx, mid - lo / peak * half)], fill=WAVE_COLOUR)

    names = beat_feature_names(beats.frame_features.shape[1])
    onset = beats.frame_features[:, names.index("onset_strength")] if beats.num_frames else np.zeros(0)
    if onset.size > 1:
        pts = [(x_of((i + 0.5) / beats.fps), bottom - float(v) * (bottom - top) * 0.9) for i, v in enumerate(onset)]
        draw.line(pts, fill=ONSET_COLOUR, width=2)

    for t in beats.beat_times:
        draw.line([(x_of(t), top), (x_of(t), bottom)], fill=BEAT_COLOUR, width=1)
    for t in beats.downbeat_times:
        draw.line([(x_of(t), top), (x_of(t), bottom)], fill=DOWNBEAT_COLOUR, width=3)

    if len(beats.beat_times):
        title = (f"{beats.tempo:.1f} BPM   {len(beats.beat_times)} beats   {len(beats.downbeat_times)} downbeats "
                 f"({beats.beats_per_bar}/bar)   {beats.num_frames} frames @ {beats.fps:g} fps")
    else:
        title = f"no beat found   {beats.num_frames} frames @ {beats.fps:g} fps"
    draw.text((6, 5), title, fill=TEXT_COLOUR)
    draw.text((width - 230, 5), "| beat", fill=BEAT_COLOUR)
    draw.text((width - 180, 5), "| downbeat", fill=DOWNBEAT_COLOUR)
    draw.text((width - 100, 5), "~ onset", fill=ONSET_COLOUR)
    return np.array(img, dtype=np.uint8)  # a writable copy (torch.from_numpy warns on read-only arrays)


def save_png(image: np.ndarray, path: str | os.PathLike) -> Path:
    """Save an RGB uint8 [H, W, 3] array as PNG."""
    from PIL import Image

    path = Path(path)
    Image.fromarray(image).save(path, format="PNG")
    return path
