"""A look at SynthDance without writing a data set: every style side by side in one mp4 with its
music, and a contact sheet that marks the beats and downbeats."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...audio.synth import (
    SYNTH_SAMPLE_RATE,
)
from .generator import SynthDanceConfig, make_clip, make_song
from .motion import STYLES

# -- preview --------------------------------------------------------------------------------------

def _label(img: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    draw.rectangle((0, 0, 6 * len(text) + 3, 11), fill=(0, 0, 0))
    draw.text((2, 0), text, fill=(255, 255, 255))
    return np.asarray(pil)


def write_preview(cfg: SynthDanceConfig, path: str | Path, songs: int = 3, seconds: float = 6.0,
                  tile: int = 128) -> tuple[Path, Path]:
    """An mp4 with sound: for each of ``songs`` songs, every style side by side over the same span,
    with a beat strip (white flash = beat, red = downbeat); and a PNG contact sheet of the first song.
    """
    from ...audio.io import Audio
    from ...video.writer import write_video

    path = Path(path)
    n = round(seconds * cfg.fps)
    up = max(1, tile // cfg.size)
    video, audio, sheet_rows = [], [], []
    for j in range(songs):
        song = make_song(cfg, j)
        intro = song.track.groove.intro_bars * song.track.groove.beats_per_bar
        start = math.floor(song.track.beat_times[min(intro, len(song.track.beat_times) - 1)] * cfg.fps)
        tiles, clip_audio = [], None
        for s, style in enumerate(STYLES):
            _, arrays, clip_audio = make_clip(cfg, song, 10_000 * (j + 1) + s, style=style,
                                                   start_frame=start, num_frames=n)
            big = arrays["frames"].repeat(up, axis=1).repeat(up, axis=2)
            tiles.append(np.stack([_label(f, style) for f in big]))
            if j == 0:
                sheet_rows.append((style, arrays["frames"], arrays["beat_times"], arrays["downbeat_times"]))
        grid = np.concatenate([np.concatenate(tiles[:3], axis=2), np.concatenate(tiles[3:], axis=2)], axis=1)
        feats = arrays["beats_true"]
        strip = np.zeros((n, 10, grid.shape[2], 3), np.float32)
        strip[:] = (feats[:, 0, None, None, None] * np.array([255, 255, 255])
                    + feats[:, 3, None, None, None] * np.array([0, -255, -255]))
        grid = np.concatenate([grid, strip.clip(0, 255).astype(np.uint8)], axis=1)
        video.append(grid)
        audio.append(clip_audio)
    frames = np.concatenate(video)
    samples = np.concatenate(audio)[None].astype(np.float32)
    write_video(path, frames, cfg.fps, audio=Audio(samples, SYNTH_SAMPLE_RATE, SYNTH_SAMPLE_RATE))
    png = path.with_suffix(".png")
    contact_sheet(sheet_rows, png, cfg.fps, columns=min(n, 20))
    return path, png


def contact_sheet(rows: list[tuple], path: Path, fps: float, columns: int = 24, zoom: int = 2) -> Path:
    """Frames side by side, one row per (label, frames [T,H,W,3], beat_times, downbeat_times); the frame
    nearest each downbeat has a red border, the one nearest each other beat a yellow one."""
    from PIL import Image, ImageDraw

    h, w = (zoom * d for d in rows[0][1].shape[1:3])
    pad, label_w = 3, 48
    sheet = Image.new("RGB", (label_w + columns * (w + 2 * pad), len(rows) * (h + 2 * pad)), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    for r, (label, frames, beat_times, downbeat_times) in enumerate(rows):
        y = r * (h + 2 * pad)
        draw.text((2, y + h // 2 - 5), label, fill=(255, 255, 255))
        on_beat = set(np.round(np.asarray(beat_times) * fps).astype(int).tolist())
        on_downbeat = set(np.round(np.asarray(downbeat_times) * fps).astype(int).tolist())
        for c in range(min(columns, len(frames))):
            x = label_w + c * (w + 2 * pad)
            color = (230, 30, 30) if c in on_downbeat else (240, 220, 40) if c in on_beat else (40, 40, 40)
            draw.rectangle((x, y, x + w + 2 * pad - 1, y + h + 2 * pad - 1), fill=color)
            sheet.paste(Image.fromarray(frames[c]).resize((w, h), Image.NEAREST), (x + pad, y + pad))
    sheet.save(path)
    return path
