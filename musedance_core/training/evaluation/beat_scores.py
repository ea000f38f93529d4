"""Beat alignment of a video or of a tracked subject (BAS, beat-phase vector strength), and the
shuffled-music partner each clip is compared with."""

from __future__ import annotations

import numpy as np

from ...metrics import (
    BAILANDO_SIGMA_S,
    beat_alignment_score,
    beat_phase_vector_strength,
    motion_beats,
    motion_energy,
    subject_speed,
)

MIN_TEMPO_RATIO = 1.10  # shuffled music must differ in tempo by more than 10 %


# -- beat alignment -------------------------------------------------------------------------------

def beat_measures(frames: np.ndarray, beat_times: np.ndarray, fps: float, sigma_frames: float) -> dict[str, float]:
    """BAS and beat-phase vector strength of a video [T, H, W, 3] against music beats (seconds)."""
    energy = motion_energy(frames)
    beats = beat_times[beat_times < len(frames) / fps]
    return {"bas": beat_alignment_score(beats, motion_beats(energy, fps), fps, sigma_frames),
            "vs": beat_phase_vector_strength(energy, beats, fps)}


def track_bas(track: np.ndarray, radius: float, beat_times: np.ndarray, fps: float) -> float:
    """BAS with the motion beats of a tracked subject (docs/ARCHITECTURE.md, Measures: on SynthDance the
    sprite track) at Bailando's own tolerance (50 ms), minima placed between frames."""
    beats = beat_times[beat_times < len(track) / fps]
    speed = subject_speed(track, radius)
    return beat_alignment_score(beats, motion_beats(speed, fps, subframe=True), fps, BAILANDO_SIGMA_S * fps)


def pick_partners(records: list[dict], seed: int) -> list[tuple[int, bool]]:
    """For each clip, the index of its shuffled-music partner and whether it meets the rule (another
    song, tempo ratio > MIN_TEMPO_RATIO); otherwise the other-song clip with the largest tempo ratio."""
    rng = np.random.default_rng([seed, 17])
    out = []
    for i, r in enumerate(records):
        ratio = [max(o["bpm"], r["bpm"]) / max(min(o["bpm"], r["bpm"]), 1e-6) for o in records]
        other = [j for j, o in enumerate(records) if j != i and o.get("music_id") != r.get("music_id")]
        ok = [j for j in other if ratio[j] > MIN_TEMPO_RATIO]
        if ok:
            out.append((int(rng.choice(ok)), True))
        else:
            pool = other or [j for j in range(len(records)) if j != i] or [i]
            out.append((max(pool, key=lambda j: ratio[j]), False))
    return out
