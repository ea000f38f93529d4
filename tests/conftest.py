"""Shared fixtures: music made on the spot with known beats (nothing downloaded or shipped)."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from musedance_core.audio.io import Audio, save_audio
from musedance_core.audio.synth import Groove, SynthTrack, render_groove


@pytest.fixture(scope="session")
def groove_120() -> SynthTrack:
    """12 s of 4/4 drums + bass + chords at 120 BPM."""
    return render_groove(Groove(bpm=120.0, seconds=12.0), seed=1)


@pytest.fixture(scope="session")
def groove_file(tmp_path_factory, groove_120) -> "Path":
    """The 120 BPM groove as a stereo 44.1 kHz mp3."""
    import soxr

    path = tmp_path_factory.mktemp("music") / "groove_120.mp3"
    wave = soxr.resample(groove_120.samples, groove_120.sample_rate, 44100).astype(np.float32)
    save_audio(path, Audio(np.stack([wave, 0.8 * wave]), 44100, 44100))
    return path


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test; the Hub client is told it is offline."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
