"""SynthDance's dance styles as motion: the subject's track (position, angle, scale) locked to the
beats and downbeats, and the inverse, naming the style of a motion from its beat features
(training/evaluate.py's style check)."""

from __future__ import annotations

import numpy as np

SPIN_BEATS = 1.5  # a spin takes 1.5 beats from the downbeat, then the subject is still


STYLES = ("bounce", "sway", "spin", "jump", "pulse", "tilt")


def event_index_and_phase(t: np.ndarray, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the last event at or before ``t`` and the phase in [0, 1) since it (pulse_and_phase's)."""
    from ...audio.beats import pulse_and_phase

    _, phase = pulse_and_phase(t, events, 1.0)
    # np.interp is exact at an event and never below it just after, so 'right' agrees with the phase.
    return np.searchsorted(events, t, side="right") - 1, phase


def style_motion(style: str, t: np.ndarray, beat_times: np.ndarray, downbeat_times: np.ndarray,
                 beats_per_bar: int, params: dict) -> np.ndarray:
    """Subject track at times ``t`` (s): float32 [T, 4] = (x, y, angle, scale).

    x, y: subject centre as fractions of the frame width / height (y down); angle: degrees,
    counter-clockwise; scale: relative to the subject's rest size. ``params``: x0, y0 (rest
    position), amp (style amplitude: frame fraction, degrees or scale gain), direction (+-1, spin).
    """
    k, phi = event_index_and_phase(t, beat_times)
    m, psi = event_index_and_phase(t, downbeat_times)
    return motion_from_phases(style, k, phi, m, psi, beats_per_bar, params)


def motion_from_phases(style: str, k: np.ndarray, phi: np.ndarray, m: np.ndarray, psi: np.ndarray,
                       beats_per_bar: int, params: dict) -> np.ndarray:
    """``style_motion`` from beat index ``k`` and phase ``phi``, bar index ``m`` and phase ``psi`` ([T] each)."""
    n = len(phi)
    x, y = np.full(n, params["x0"], float), np.full(n, params["y0"], float)
    angle, scale = np.zeros(n), np.ones(n)
    amp = params["amp"]
    if style == "bounce":  # a hop per beat: on the floor at each beat, apex half way
        y = y - amp * 4 * phi * (1 - phi)
    elif style == "jump":  # a higher hop over two beats: lands on every other beat
        u = (np.mod(k, 2) + phi) / 2
        y = y - amp * 4 * u * (1 - u)
    elif style == "sway":  # one bar each way: extremes (and stillness) on the downbeats
        x = x + amp * np.cos(np.pi * (m + psi))
    elif style == "spin":  # a full turn eased over SPIN_BEATS beats from each downbeat, still otherwise
        progress = np.clip(psi * beats_per_bar / SPIN_BEATS, 0.0, 1.0)
        angle = params["direction"] * 360.0 * progress**2 * (3 - 2 * progress)
        angle = np.where(progress >= 1.0, 0.0, angle)  # a full turn is the rest pose again
    elif style == "pulse":  # grows to its largest on each beat
        scale = scale + amp * ((1 + np.cos(2 * np.pi * phi)) / 2) ** 2
    elif style == "tilt":  # a pendulum: extreme tilt (and stillness) on each beat, alternating sides
        angle = amp * np.cos(np.pi * (k + phi))
    else:
        raise ValueError(f"style must be one of {STYLES}; got {style!r}.")
    return np.stack([x, y, angle, scale], axis=1).astype(np.float32)


def phases_from_features(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(k, phi, m, psi) from beat features [T, K] (``beats`` or ``beats_true``): phases from the
    sin/cos columns, indices by counting wraps from 0 at the first frame (parity is relative)."""
    from ...types import BEAT_FEATURE_NAMES

    col = {name: i for i, name in enumerate(BEAT_FEATURE_NAMES)}
    out = []
    for prefix in ("beat", "bar"):
        phase = np.mod(np.arctan2(features[:, col[f"{prefix}_phase_sin"]],
                                  features[:, col[f"{prefix}_phase_cos"]]) / (2 * np.pi), 1.0)
        index = np.concatenate([[0], np.cumsum(np.diff(phase) < -0.5)])
        out += [index, phase]
    return tuple(out)


def style_params(style: str, rng: np.random.Generator, size: float, x0: float, floor_y: float) -> dict:
    """Random amplitude for a style, kept inside the frame."""
    half_width = 0.55 * size
    if style == "bounce":
        amp = rng.uniform(0.10, 0.16)
    elif style == "jump":
        amp = min(rng.uniform(0.18, 0.26), floor_y - size - 0.02)
    elif style == "sway":
        amp = min(rng.uniform(0.12, 0.20), x0 - half_width - 0.02, 0.98 - half_width - x0)
    elif style == "pulse":
        amp = rng.uniform(0.18, 0.30)
    elif style == "tilt":
        amp = rng.uniform(25.0, 38.0)  # a lean the 16x16 latent of a 64 px frame still shows
    else:
        amp = 0.0
    return {"x0": x0, "y0": floor_y - size / 2, "amp": float(amp), "direction": float(rng.choice([-1.0, 1.0]))}


STYLE_CHANNEL = {"bounce": 1, "jump": 1, "sway": 0, "spin": 2, "pulse": 3, "tilt": 2}  # motion column


def style_templates(beat_features: np.ndarray, beats_per_bar: int) -> dict[str, list[tuple[int, np.ndarray]]]:
    """Unit-amplitude motion of each style on the frames of ``beat_features`` [T, K]:
    style -> [(motion column, template [T]), ...] variants (jump parity, spin direction)."""
    k, phi, m, psi = phases_from_features(beat_features)
    unit = {"x0": 0.0, "y0": 0.0, "amp": 1.0, "direction": 1.0}
    out = {}
    for style in STYLES:
        ch = STYLE_CHANNEL[style]
        shifts = (0, 1) if style == "jump" else (0,)
        temps = [(ch, motion_from_phases(style, k + d, phi, m, psi, beats_per_bar, unit)[:, ch].astype(np.float64))
                 for d in shifts]
        if style == "spin":
            temps.append((ch, -temps[0][1]))
        out[style] = temps
    return out


def classify_motion(motion: np.ndarray, beat_features: np.ndarray, beats_per_bar: int
                    ) -> tuple[str, dict[str, float]]:
    """Which style a track [T, 4] (x, y, angle, scale) shows, given the music's beat features [T, K].

    Returns (style, {style: score}); score = max |Pearson r| of the style's motion column with its
    unit templates (0 for a still column). Works on ground-truth tracks and on tracks estimated
    from a generated video, with exact (``beats_true``) or tracked (``beats``) features.
    """
    scores = {}
    for style, variants in style_templates(beat_features, beats_per_bar).items():
        best = 0.0
        for ch, template in variants:
            a = motion[:, ch].astype(np.float64)
            if a.std() < 1e-6 or template.std() < 1e-9:
                continue
            best = max(best, abs(float(np.corrcoef(a, template)[0, 1])))
        scores[style] = best
    return max(scores, key=scores.get), scores
