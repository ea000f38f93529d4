"""Shared fixtures: music made on the spot with known beats (nothing downloaded or shipped)."""

from __future__ import annotations

import os
import re
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


def pytest_configure(config):
    """One torch thread in the test process, unless ``OMP_NUM_THREADS`` asks for more.

    On the 2-core test machine with other jobs running, torch's two OpenMP threads spin waiting for
    each other: ``pytest -m "not integration"`` took 302 s with them and 113 s with one, at the same
    load. The tiny test models gain nothing from a second thread, and the processes the tests start
    already run with ``OMP_NUM_THREADS=1``.
    """
    if "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Leave out the ``slow`` tests unless the ``-m`` expression names them.

    pyproject's addopts cannot hold ``-m 'not slow'``: a ``-m`` on the command line replaces it,
    and ``pytest -m "not integration"`` (the fast inner loop) would then run the slow tests too.
    So ``pytest`` and ``pytest -m "not integration"`` skip them, and ``pytest -m slow`` (or any
    expression with ``slow`` in it, such as ``-m "slow or integration"``) decides for itself.
    """
    if re.search(r"\bslow\b", config.getoption("markexpr") or ""):
        return
    kept, slow = [], []
    for item in items:
        (slow if item.get_closest_marker("slow") else kept).append(item)
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = kept
