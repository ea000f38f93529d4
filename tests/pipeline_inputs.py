"""Inputs the sampling tests share: a tiny model's conditions from a synthetic groove."""

from __future__ import annotations

from musedance_core.audio.analysis import analyze
from musedance_core.audio.beats import track_beats
from musedance_core.audio.encoders import SpectralEncoder
from musedance_core.audio.synth import Groove, render_groove


def groove_conditions(seconds: float, fps: float, seed: int = 3):
    """(MusicFeatures, BeatTrack) of a 120 BPM groove, from one shared analysis."""
    track = render_groove(Groove(bpm=120.0, seconds=seconds), seed=seed)
    analysis = analyze(track.samples, track.sample_rate)
    beats = track_beats(track.samples, track.sample_rate, fps, analysis=analysis)
    music = SpectralEncoder().encode(track.samples, track.sample_rate, fps, analysis=analysis)
    return music, beats
