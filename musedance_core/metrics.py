"""Measures: beat-tracking accuracy, and how well a video's motion follows the music's beats.

- ``beat_f_measure`` and ``beat_continuity``: the MIREX beat-tracking measures, written to give
  the same numbers as ``mir_eval.beat.f_measure`` / ``continuity`` (the tests check this), so the
  core needs no mir_eval at run time. No beats are trimmed: callers trim if they want to.
- ``beat_alignment_score``: Bailando's BAS in DESIGN.md section 6's form.
- ``beat_phase_vector_strength``: the style-agnostic companion of BAS.
- ``motion_energy`` / ``subject_speed`` / ``motion_beats``: per-frame motion of a 2D video (or of a
  tracked subject) and its beats.
"""

from __future__ import annotations

import numpy as np

from .audio.beats import pulse_and_phase

F_MEASURE_WINDOW_S = 0.07  # MIREX / mir_eval default tolerance
CONTINUITY_PHASE = 0.175  # mir_eval continuity thresholds (fractions of the beat interval)
CONTINUITY_PERIOD = 0.175
BAS_SIGMA_FRAMES = 2.0  # default BAS tolerance, in video frames (2 frames = 83 ms at 24 fps)
BAILANDO_SIGMA_S = 0.05  # Bailando's own tolerance: sigma^2 = 9 frames^2 at its 60 fps = 50 ms
MOTION_SMOOTH_FRAMES = 1.0  # Gaussian smoothing of the motion speed curve before finding minima


def match_events(reference: np.ndarray, estimated: np.ndarray, window: float) -> int:
    """Size of the largest one-to-one matching with |ref - est| <= window (greedy is optimal in 1-D)."""
    reference, estimated = np.sort(reference), np.sort(estimated)
    i = j = matched = 0
    while i < len(reference) and j < len(estimated):
        d = estimated[j] - reference[i]
        if abs(d) <= window:
            matched, i, j = matched + 1, i + 1, j + 1
        elif d < 0:
            j += 1
        else:
            i += 1
    return matched


def beat_f_measure(reference: np.ndarray, estimated: np.ndarray, window: float = F_MEASURE_WINDOW_S) -> float:
    """F-measure of estimated beat times against reference beat times (seconds).

    0.0 when either list is empty (as mir_eval).
    """
    reference, estimated = np.asarray(reference, float), np.asarray(estimated, float)
    if reference.size == 0 or estimated.size == 0:
        return 0.0
    matched = match_events(reference, estimated, window)
    if matched == 0:
        return 0.0
    precision, recall = matched / estimated.size, matched / reference.size
    return 2 * precision * recall / (precision + recall)


def beat_continuity(reference: np.ndarray, estimated: np.ndarray) -> dict[str, float]:
    """Continuity measures CMLc, CMLt, AMLc, AMLt (Hainsworth; Klapuri et al.), as mir_eval.

    CML = correct metrical level; AML also accepts double, half and off-beat tracking.
    c = longest continuous correct run, t = total correct, both as fractions.
    """
    reference, estimated = np.asarray(reference, float), np.asarray(estimated, float)
    zero = {"CMLc": 0.0, "CMLt": 0.0, "AMLc": 0.0, "AMLt": 0.0}
    if reference.size < 2 or estimated.size < 2:
        return zero
    doubled = np.interp(np.arange(0, reference.size - 0.5, 0.5), np.arange(reference.size), reference)
    variations = (reference, doubled[1::2], doubled, reference[::2], reference[1::2])
    runs, totals = [], []
    for ref in variations:
        if ref.size < 2:
            runs.append(0.0), totals.append(0.0)
            continue
        ok = _continuity_hits(ref, estimated)
        breaks = np.flatnonzero(np.concatenate([[0], ok, [0]]) == 0)
        runs.append(float(np.max(np.diff(breaks)) - 1) / ok.size)
        totals.append(float(ok.sum()) / ok.size)
    return {"CMLc": runs[0], "CMLt": totals[0], "AMLc": max(runs), "AMLt": max(totals)}


def _continuity_hits(ref: np.ndarray, est: np.ndarray) -> np.ndarray:
    """1 for each estimated beat whose phase and period both agree with its nearest reference.

    Padded with zeros to max(len(ref), len(est)): missed references count against the score.
    """
    used = np.zeros(max(ref.size, est.size), bool)
    ok = np.zeros(max(ref.size, est.size))
    for m, beat in enumerate(est):
        diffs = np.abs(beat - ref)
        k = int(np.argmin(diffs))
        if used[k]:
            continue
        if m == 0 or k == 0:  # first beat or first annotation: look forward
            ref_iv = ref[k + 1] - ref[k] if k + 1 < ref.size else ref[k] - ref[k - 1]
            est_iv = est[m + 1] - est[m] if m + 1 < est.size else est[m] - est[m - 1]
        else:
            ref_iv = ref[k] - ref[k - 1]
            est_iv = est[m] - est[m - 1]
        if ref_iv == 0:
            phase = 1.0 if diffs[k] == 0 else np.inf
            period = 0.0 if est_iv == 0 else np.inf
        else:
            phase, period = abs(diffs[k] / ref_iv), abs(1 - est_iv / ref_iv)
        if phase < CONTINUITY_PHASE and period < CONTINUITY_PERIOD:
            used[k] = True
            ok[m] = 1.0
    return ok


def beat_alignment_score(music_beats: np.ndarray, motion_beats: np.ndarray, fps: float,
                         sigma_frames: float = BAS_SIGMA_FRAMES) -> float:
    """Beat Alignment Score (Bailando; DESIGN.md section 6).

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
