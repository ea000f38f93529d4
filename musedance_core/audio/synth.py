"""Procedural music with known beats: drums, bass and chords rendered with numpy.

Used by the tests (audio whose beats are known exactly, made on the spot, nothing shipped) and
by SynthDance (training/synth_dance.py). Deterministic for a seed. Not meant to sound good, only
to sound like music to an onset detector: percussive attacks, pitched bass, harmonic pads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SYNTH_SAMPLE_RATE = 22050


@dataclass(frozen=True)
class Groove:
    """A rhythm description.

    Attributes:
        bpm: tempo at the start; ``bpm_end`` (if given) is reached by a linear ramp in beat
            period over the track, which makes a tempo change.
        beats_per_bar: 3 or 4 (any >= 2 works).
        swing: 0 = straight eighths; 1/3 delays every off-beat eighth by a third of a beat
            (the classic 2:1 shuffle).
        intro_bars: bars at the start with only soft chords (a quiet intro).
        seconds: length of the track.
        drums, bass, chords: which parts play.
    """

    bpm: float = 120.0
    beats_per_bar: int = 4
    seconds: float = 12.0
    swing: float = 0.0
    bpm_end: float | None = None
    intro_bars: int = 0
    drums: bool = True
    bass: bool = True
    chords: bool = True


@dataclass(frozen=True)
class SynthTrack:
    samples: np.ndarray  # float32 [N] mono, peak 0.9
    sample_rate: int
    beat_times: np.ndarray  # seconds
    downbeat_times: np.ndarray  # seconds
    groove: Groove


def beat_grid(groove: Groove) -> np.ndarray:
    """Beat times (s) of ``groove``: constant period, or a period ramp from bpm to bpm_end."""
    p0 = 60.0 / groove.bpm
    p1 = 60.0 / (groove.bpm_end or groove.bpm)
    times = [0.0]
    while True:
        frac = min(times[-1] / groove.seconds, 1.0)
        t = times[-1] + p0 + (p1 - p0) * frac
        if t >= groove.seconds - 1e-9:
            return np.asarray(times)
        times.append(t)


def render_groove(groove: Groove, seed: int = 0, sample_rate: int = SYNTH_SAMPLE_RATE) -> SynthTrack:
    """Render ``groove`` to mono audio; returns the audio with its exact beats and downbeats."""
    rng = np.random.default_rng(seed)
    n = int(round(groove.seconds * sample_rate))
    out = np.zeros(n, np.float64)
    beats = beat_grid(groove)
    bpb = groove.beats_per_bar
    intro_beats = groove.intro_bars * bpb
    root = 40 + int(rng.integers(0, 12))  # MIDI note of the bass root (E2..D#3)
    progression = [0, 5, 7, 3] if rng.random() < 0.5 else [0, 8, 3, 10]

    def add(sig: np.ndarray, t: float, gain: float) -> None:
        i = int(round(t * sample_rate))
        if i >= n:
            return
        seg = sig[: n - i]
        out[i : i + len(seg)] += gain * seg

    kick, snare, hat = _kick(sample_rate), _snare(sample_rate, rng), _hat(sample_rate, rng)
    for k, t in enumerate(beats):
        period = (beats[k + 1] - t) if k + 1 < len(beats) else (t - beats[k - 1] if k else 60.0 / groove.bpm)
        pos = k % bpb
        chord = progression[(k // bpb) % len(progression)]
        if k < intro_beats:  # soft chords only, on the beat
            if groove.chords:
                add(_pad(sample_rate, root + 12 + chord, period * 0.9), t, 0.08)
            continue
        if groove.drums:
            if pos == 0 or (bpb == 4 and pos == 2 and rng.random() < 0.9):
                add(kick, t, 1.0)
            if (bpb == 4 and pos in (1, 3)) or (bpb == 3 and pos in (1, 2)):
                add(snare, t, 0.6 if bpb == 4 else 0.35)
            add(hat, t, 0.25)
            add(hat, t + period * (0.5 + groove.swing / 2), 0.15)
        if groove.bass:
            add(_pluck(sample_rate, root + chord, period * 0.8), t, 0.5 if pos == 0 else 0.3)
        if groove.chords and pos == 0:
            add(_pad(sample_rate, root + 12 + chord, period * bpb), t, 0.18)
    peak = np.abs(out).max()
    samples = (out * (0.9 / peak) if peak > 0 else out).astype(np.float32)
    return SynthTrack(samples, sample_rate, beats, beats[::bpb], groove)


def render_ambient(seconds: float = 12.0, seed: int = 0, sample_rate: int = SYNTH_SAMPLE_RATE) -> np.ndarray:
    """Beatless music: overlapping pads with slow swells at irregular times."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    out = np.zeros(n, np.float64)
    t = 0.0
    while t < seconds:
        length = float(rng.uniform(3.0, 6.0))
        pad = _pad(sample_rate, 48 + int(rng.integers(0, 12)), length, attack=length / 2)
        i = int(t * sample_rate)
        seg = pad[: n - i]
        out[i : i + len(seg)] += seg
        t += float(rng.uniform(1.3, 3.7))
    return (out * (0.5 / max(np.abs(out).max(), 1e-9))).astype(np.float32)


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def _kick(sr: int) -> np.ndarray:
    t = np.arange(int(0.25 * sr)) / sr
    freq = 50 + 100 * np.exp(-t * 30)
    return np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t * 12)


def _snare(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.2 * sr)) / sr
    noise = rng.standard_normal(len(t))
    return (0.7 * noise + 0.5 * np.sin(2 * np.pi * 190 * t)) * np.exp(-t * 20)


def _hat(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.05 * sr)) / sr
    noise = np.diff(rng.standard_normal(len(t) + 1))  # first difference = crude high-pass
    return noise * np.exp(-t * 80)


def _pluck(sr: int, note: float, seconds: float) -> np.ndarray:
    t = np.arange(int(max(seconds, 0.05) * sr)) / sr
    f = _midi_hz(note)
    wave = np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)
    return wave * np.exp(-t * 6) * np.minimum(t * 200, 1.0)


def _pad(sr: int, note: float, seconds: float, attack: float = 0.02) -> np.ndarray:
    t = np.arange(int(max(seconds, 0.05) * sr)) / sr
    wave = sum(np.sin(2 * np.pi * _midi_hz(note + i) * t) for i in (0, 4, 7))
    env = np.minimum(t / attack, 1.0) * np.minimum((seconds - t) / 0.05, 1.0).clip(0, 1)
    return wave * env / 3.0
