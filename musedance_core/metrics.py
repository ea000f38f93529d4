"""Measures of how well a video's motion follows the music's beats.

Beat-tracking accuracy (F-measure, continuity) is mir_eval's: the benchmarks, the beat tracker's
training and the tests call ``mir_eval.beat.f_measure`` / ``continuity`` on the full beat lists
(mir_eval is a development dependency; ComfyUI users never need it). None of them trims the first
5 s as ``mir_eval.beat.evaluate`` does, so quiet intros and the first bars count.

- ``beat_alignment_score``: Bailando's Beat Alignment Score.
- ``beat_phase_vector_strength``: the style-agnostic companion of BAS.
- ``motion_energy`` / ``subject_speed`` / ``motion_beats``: per-frame motion of a 2D video (or of a
  tracked subject) and its beats.
"""

from __future__ import annotations

import numpy as np

from .audio.beats import pulse_and_phase

BAS_SIGMA_FRAMES = 2.0  # default BAS tolerance, in video frames (2 frames = 83 ms at 24 fps)
BAILANDO_SIGMA_S = 0.05  # Bailando's own tolerance: sigma^2 = 9 frames^2 at its 60 fps = 50 ms
MOTION_SMOOTH_FRAMES = 1.0  # Gaussian smoothing of the motion speed curve before finding minima


def beat_alignment_score(music_beats: np.ndarray, motion_beats: np.ndarray, fps: float,
                         sigma_frames: float = BAS_SIGMA_FRAMES) -> float:
    """Beat Alignment Score (Bailando, Li et al. 2022).

    For each music beat, exp(-d^2 / 2 sigma^2) with d the distance to the nearest motion beat,
    averaged over the music beats. Times in seconds; sigma = ``sigma_frames`` / ``fps``.
    0.0 when there are no music beats or no motion beats.
    """
    music_beats, motion_beats = np.asarray(music_beats, float), np.sort(np.asarray(motion_beats, float))
    if music_beats.size == 0 or motion_beats.size == 0:
        return 0.0
    sigma = sigma_frames / float(fps)
    pos = np.clip(np.searchsorted(motion_beats, music_beats), 1, motion_beats.size - 1) if motion_beats.size > 1 else None
    if pos is None:
        d = np.abs(music_beats - motion_beats[0])
    else:
        d = np.minimum(np.abs(music_beats - motion_beats[pos - 1]), np.abs(music_beats - motion_beats[pos]))
    return float(np.mean(np.exp(-(d**2) / (2 * sigma**2))))


def beat_phase_vector_strength(energy: np.ndarray, beat_times: np.ndarray, fps: float) -> float:
    """|sum_t e_t exp(2 pi i phi_t)| / sum_t e_t, phi_t the music's beat phase at frame t.

    1 = all motion at one phase of the beat; ~0 = motion unrelated to the beat. 0.0 without
    beats or without motion.
    """
    energy = np.asarray(energy, float)
    if energy.size == 0 or len(beat_times) < 2 or energy.sum() <= 0:
        return 0.0
    _, phase = pulse_and_phase(np.arange(energy.size) / float(fps), np.asarray(beat_times, float), 1.0)
    return float(np.abs(np.sum(energy * np.exp(2j * np.pi * phase))) / energy.sum())


def motion_energy(frames: np.ndarray) -> np.ndarray:
    """Per-frame motion of a video: mean absolute difference between neighbouring frames.

    Args:
        frames: [T, H, W, C] (any numeric dtype).

    Returns:
        [T] float64; frame t gets the mean of its two neighbouring steps,
        (mean|f[t] - f[t-1]| + mean|f[t+1] - f[t]|) / 2 (the one step at the ends), so a motion
        peak lands on the frame where the subject moves fastest.
    """
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 4:
        raise ValueError(f"frames must be [T, H, W, C]; got shape {frames.shape}")
    t = frames.shape[0]
    if t < 2:
        return np.zeros(t)
    step = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))  # [T-1], motion between t and t+1
    padded = np.concatenate([[step[0]], step, [step[-1]]])
    return (padded[:-1] + padded[1:]) / 2.0


def subject_speed(track: np.ndarray, radius: float) -> np.ndarray:
    """Per-frame speed of a tracked subject's points, in frame fractions per frame.

    Args:
        track: [T, 4] (x, y as frame fractions, angle in degrees, scale relative to rest), the
            SynthDance motion columns (or the evaluator's tracker output).
        radius: the subject's radius as a frame fraction: turning by d(angle) or growing by
            d(scale) moves its outline by radius * d(angle in radians) or radius * d(scale).
            Angle steps are taken the short way round (a jump of 360 deg is no motion).

    Returns:
        [T] float64, each frame the mean of its two neighbouring steps (as ``motion_energy``).
    """
    track = np.asarray(track, float)
    if track.ndim != 2 or track.shape[1] != 4:
        raise ValueError(f"track must be [T, 4] (x, y, angle, scale); got shape {track.shape}")
    if len(track) < 2:
        return np.zeros(len(track))
    d = np.diff(track, axis=0)
    turn = (d[:, 2] + 180.0) % 360.0 - 180.0  # a spin that ends at 360 = 0 deg is no backward jump
    step = np.sqrt(d[:, 0] ** 2 + d[:, 1] ** 2 + (radius * np.radians(turn)) ** 2 + (radius * d[:, 3]) ** 2)
    padded = np.concatenate([[step[0]], step, [step[-1]]])
    return (padded[:-1] + padded[1:]) / 2.0


def motion_beats(energy: np.ndarray, fps: float, smooth_frames: float = MOTION_SMOOTH_FRAMES,
                 subframe: bool = False) -> np.ndarray:
    """Motion beats: local minima of the smoothed motion speed, in seconds (Bailando's kinematic beats).

    ``subframe``: place each minimum at the vertex of the parabola through it and its neighbours,
    so that a tolerance finer than a frame (Bailando's 50 ms at 12 fps is 0.6 frames) is not
    dominated by rounding to frames.
    """
    from scipy.ndimage import gaussian_filter1d

    energy = np.asarray(energy, float)
    if energy.size < 3:
        return np.zeros(0)
    speed = gaussian_filter1d(energy, smooth_frames) if smooth_frames > 0 else energy
    inner = np.flatnonzero((speed[1:-1] < speed[:-2]) & (speed[1:-1] <= speed[2:])) + 1
    at = inner.astype(float)
    if subframe and inner.size:
        lo, mid, hi = speed[inner - 1], speed[inner], speed[inner + 1]
        curve = lo - 2 * mid + hi
        shift = np.where(curve > 1e-12, 0.5 * (lo - hi) / np.maximum(curve, 1e-12), 0.0)
        at = at + np.clip(shift, -0.5, 0.5)
    return at / float(fps)
