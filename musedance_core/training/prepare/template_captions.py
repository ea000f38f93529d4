"""Motion captions without a captioning model: a sentence built from what the clip measurably does.

The music gives the tempo (tracked beats) and the energy (loudness of the clip's audio); the
subject's mask track gives how much and which way it moves (the centroid's sway, bounce and drift,
the area's pulse). Without masks the frame-difference energy says only how much the frame moves.
The words are few and fixed, so captions of similar motion read alike, which is what a model
needs to learn that words steer motion (the prompt describes motion, not looks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUBJECT = "a dancer"
SLOW_BPM, FAST_BPM = 90.0, 128.0
QUIET_DBFS, LOUD_DBFS = -26.0, -14.0
STILL = 0.01  # centroid movement (std, frame fraction) below which the subject "barely moves"
BIG = 0.06  # ... above which its moves are big
DRIFT = 0.15  # net horizontal travel (frame fraction) that counts as moving to one side
PULSE = 0.08  # relative area change that counts as stepping toward / away from the camera


@dataclass(frozen=True)
class SubjectMotion:
    """How the subject moves over a clip, in frame fractions (None fields: no subject seen)."""

    sway: float | None  # std of the centroid's x around its trend
    bounce: float | None  # std of the centroid's y around its trend
    drift: float | None  # net travel of the centroid's x over the clip (positive: to the right)
    pulse: float | None  # std of the area relative to its mean, around its trend
    energy: float  # mean absolute frame difference, 0..1


def subject_motion(frames: np.ndarray, masks: np.ndarray | None) -> SubjectMotion:
    """Measure ``frames`` uint8 [T, H, W, 3] with their subject ``masks`` [T, H, W] (or None)."""
    small = frames[:, ::4, ::4].astype(np.float32) / 255.0
    energy = float(np.abs(np.diff(small, axis=0)).mean()) if len(frames) > 1 else 0.0
    if masks is None:
        return SubjectMotion(None, None, None, None, energy)
    t, h, w = masks.shape
    area = masks.reshape(t, -1).sum(1).astype(np.float64)
    seen = area > 0
    if seen.sum() < 2:
        return SubjectMotion(None, None, None, None, energy)
    ys, xs = np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64)
    m = masks[seen].astype(np.float64)
    cx = (m.sum(1) @ xs) / area[seen] / w
    cy = (m.sum(2) @ ys) / area[seen] / h
    rel = area[seen] / area[seen].mean()
    t = np.flatnonzero(seen).astype(np.float64)
    return SubjectMotion(_wiggle(t, cx), _wiggle(t, cy), float(np.polyfit(t, cx, 1)[0] * (t[-1] - t[0])),
                         _wiggle(t, rel), energy)


def _wiggle(t: np.ndarray, values: np.ndarray) -> float:
    """Std of ``values`` around a smooth (quadratic) trend: the dance's back and forth, not the
    subject's travel across the floor."""
    degree = min(2, len(t) - 1)
    return float(np.std(values - np.polyval(np.polyfit(t, values, degree), t)))


def tempo_words(bpm: float) -> str:
    if bpm <= 0:
        return "free-flowing"
    return "slow" if bpm < SLOW_BPM else "fast" if bpm >= FAST_BPM else "mid-tempo"


def energy_words(audio: np.ndarray) -> str:
    """'calm', '' or 'energetic' from the clip's loudness (RMS, dBFS)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    dbfs = 20 * np.log10(max(rms, 1e-9))
    return "calm" if dbfs < QUIET_DBFS else "energetic" if dbfs > LOUD_DBFS else ""


def motion_phrase(motion: SubjectMotion) -> str:
    if motion.sway is None:  # no subject track: only how much the picture moves
        return "dances with big moves" if motion.energy > 0.06 else "dances with small moves"
    moves = []
    if max(motion.sway, motion.bounce) < STILL and motion.pulse < PULSE / 2:
        moves.append("sways gently in place")
    else:
        if motion.bounce >= motion.sway and motion.bounce >= STILL:
            moves.append("bounces up and down on the beat" if motion.bounce < BIG else "jumps up and down")
        if motion.sway > motion.bounce and motion.sway >= STILL:
            moves.append("sways from side to side" if motion.sway < BIG else "steps widely from side to side")
        if motion.pulse >= PULSE:
            moves.append("steps toward and away from the camera")
    if abs(motion.drift) >= DRIFT:
        moves.append("travels to the " + ("right" if motion.drift > 0 else "left"))
    return " and ".join(moves[:2])


def template_caption(motion: SubjectMotion, bpm: float, audio: np.ndarray, subject: str = SUBJECT) -> str:
    """E.g. "a dancer bounces up and down on the beat to fast energetic music"."""
    music = " ".join(w for w in (tempo_words(bpm), energy_words(audio)) if w)
    return f"{subject} {motion_phrase(motion)} to {music} music"
