"""The beat plot marks beats and downbeats where they are."""

from __future__ import annotations

import warnings

import numpy as np

from musedance_core.audio.beats import track_beats
from musedance_core.audio.plot import DOWNBEAT_COLOUR, HEADER_PX, beat_plot, save_png


def _column_has(image: np.ndarray, x: int, colour) -> bool:
    cols = image[HEADER_PX + 5 : -30, max(x - 2, 0) : x + 3]
    return bool((np.abs(cols.astype(int) - colour).sum(axis=-1) < 30).any())


def test_downbeats_are_drawn_at_their_times(groove_120, tmp_path):
    beats = track_beats(groove_120.samples, groove_120.sample_rate, 24.0)
    image = beat_plot(groove_120.samples, groove_120.sample_rate, beats, width=1200, height=300)
    assert image.shape == (300, 1200, 3) and image.dtype == np.uint8
    for t in beats.downbeat_times:
        assert _column_has(image, int(round(t / beats.duration * 1199)), DOWNBEAT_COLOUR)
    # half way between two downbeats there is no downbeat line
    mid = (beats.downbeat_times[1] + beats.downbeat_times[2]) / 2
    assert not _column_has(image, int(round(mid / beats.duration * 1199)), DOWNBEAT_COLOUR)
    path = save_png(image, tmp_path / "plot.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_beats_and_tiny_input():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        silent = np.zeros(22050, np.float32)
        beats = track_beats(silent, 22050, 24.0)
        image = beat_plot(silent, 22050, beats, width=50, height=10)  # clamped to a readable size
        assert image.shape == (120, 200, 3)
        assert not (np.abs(image[HEADER_PX:].astype(int) - DOWNBEAT_COLOUR).sum(axis=-1) < 30).any()
        blip = np.full(100, 0.5, np.float32)
        assert beat_plot(blip, 22050, track_beats(blip, 22050, 24.0)).shape == (320, 1200, 3)
