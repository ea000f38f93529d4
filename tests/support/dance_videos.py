"""Dance videos the tests make themselves: a static camera, a textured background, a two-colour
dancer (body and head) bouncing or swaying on the beat of rendered music, optionally a hard cut to
another scene; written as mp4 with the music, with the true subject mask of every frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from musedance_core.audio.io import Audio
from musedance_core.audio.synth import Groove, render_groove
from musedance_core.video.writer import write_video

FPS = 24


def background(width: int, height: int, seed: int) -> np.ndarray:
    """A static scene: a colour gradient with blotchy texture (float32 0..255 [H, W, 3])."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(60, 200, 3)
    tilt = rng.uniform(-40, 40, 3)
    image = base + tilt * (xx / width)[..., None] + 0.5 * tilt * (yy / height)[..., None]
    blotches = rng.normal(0, 18, (height // 8 + 1, width // 8 + 1, 3)).repeat(8, 0).repeat(8, 1)[:height, :width]
    return np.clip(image + blotches, 0, 255).astype(np.float32)


def dancer_mask(width: int, height: int, cx: float, cy: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(body, head) boolean masks of the dancer centred at (cx, cy) pixels."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rx, ry = 0.09 * width * scale, 0.2 * height * scale
    body = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
    hr = 0.07 * height * scale
    head = (xx - cx) ** 2 + (yy - (cy - ry - 0.8 * hr)) ** 2 <= hr**2
    return body, head


def make_dance_video(path: Path, seconds: float = 6.0, bpm: float = 120.0, style: str = "bounce",
                     cut_at: float | None = None, size: tuple[int, int] = (160, 120), seed: int = 0,
                     noise: float = 3.0) -> np.ndarray:
    """Write ``path`` (mp4 with music) and return the true subject masks uint8 [N, H, W] at FPS.
    The dancer moves around (a bounce travels, a sway crosses the frame): the static-camera fallback
    takes the background to be what most frames show at a pixel."""
    width, height = size
    rng = np.random.default_rng(seed)
    track = render_groove(Groove(bpm=bpm, seconds=seconds), seed=seed)
    scenes = [background(width, height, seed), background(width, height, seed + 100)]
    colors = [np.array([210.0, 40, 50]), np.array([40.0, 70, 200])]
    n = round(seconds * FPS)
    frames = np.zeros((n, height, width, 3), np.uint8)
    masks = np.zeros((n, height, width), np.uint8)
    beat = 60.0 / bpm
    for i in range(n):
        t = i / FPS
        phase = ((t - track.beat_times[0]) / beat) % 1.0 if len(track.beat_times) else 0.0
        cx, cy = 0.5 * width, 0.58 * height
        if style == "bounce":  # bouncing on every beat while travelling across the floor and back
            cx = (0.25 + 0.5 * abs(((t / 3.0) % 2.0) - 1.0)) * width
            cy -= 0.12 * height * np.sin(np.pi * phase)
        else:  # sway: one side per beat
            cx += 0.18 * width * np.sin(np.pi * t / beat)
        scene = 1 if cut_at is not None and t >= cut_at else 0
        image = scenes[scene].copy()
        body, head = dancer_mask(width, height, cx, cy, 1.0 + 0.05 * np.sin(2 * np.pi * phase))
        image[body] = colors[0]
        image[head] = colors[1]
        image += rng.normal(0, noise, image.shape)
        frames[i] = np.clip(image, 0, 255).astype(np.uint8)
        masks[i] = body | head
    audio = Audio(track.samples[None].astype(np.float32), track.sample_rate, track.sample_rate)
    write_video(path, frames, FPS, audio=audio, preset="ultrafast", crf=12)
    return masks
