"""Music encoders: row alignment with the beat features, normalisation, registry."""

from __future__ import annotations

import numpy as np
import pytest

from musedance_core.audio.analysis import analyze, pool_to_frames
from musedance_core.audio.beats import track_beats
from musedance_core.audio.encoders import (
    SPECTRAL_DIM,
    SpectralEncoder,
    get_music_encoder,
    music_encoder_names,
    register_music_encoder,
)
from musedance_core.errors import InputError


@pytest.mark.parametrize("fps", [8.0, 24.0, 29.97, 60.0])
def test_rows_align_with_beat_features(groove_120, fps):
    analysis = analyze(groove_120.samples, groove_120.sample_rate)
    music = SpectralEncoder().encode(groove_120.samples, groove_120.sample_rate, fps, analysis=analysis)
    beats = track_beats(groove_120.samples, groove_120.sample_rate, fps, analysis=analysis)
    assert music.features.shape == (beats.num_frames, SPECTRAL_DIM)
    assert music.num_frames == int(round(12.0 * fps))
    assert music.features.dtype == np.float32
    assert np.isfinite(music.features).all()
    assert music.encoder == "spectral-v1" and music.fps == fps


def test_features_are_normalised_per_track(groove_120):
    loud = SpectralEncoder().encode(groove_120.samples, groove_120.sample_rate, 24.0).features
    quiet = SpectralEncoder().encode(groove_120.samples * 0.05, groove_120.sample_rate, 24.0).features
    z = loud[:, :-6]
    assert np.abs(z.mean(axis=0)).max() < 1e-4
    assert np.allclose(z.std(axis=0)[z.std(axis=0) > 0], 1.0, atol=1e-3)
    # A 26 dB quieter copy gives nearly the same features (level only moves normalised columns).
    assert np.corrcoef(loud.ravel(), quiet.ravel())[0, 1] > 0.98


def test_features_follow_the_music(groove_120):
    """Frames on kicks differ from frames between beats (the features carry rhythm)."""
    fps = 24.0
    music = SpectralEncoder().encode(groove_120.samples, groove_120.sample_rate, fps).features
    onset_col = 32 + 20 + 12  # first timbre column = onset strength
    on = np.round(groove_120.beat_times * fps).astype(int)
    off = on[:-1] + 3  # a sixteenth after each beat at 120 BPM: nothing plays there
    assert music[on[on < len(music)], onset_col].mean() > music[off, onset_col].mean() + 0.5


def test_tiny_audio_gives_zero_rows():
    music = SpectralEncoder().encode(np.full(220, 0.3, np.float32), 22050, 24.0)
    assert music.features.shape == (0, SPECTRAL_DIM)


def test_silence_gives_finite_zeros():
    music = SpectralEncoder().encode(np.zeros(22050 * 2, np.float32), 22050, 24.0)
    assert music.features.shape == (48, SPECTRAL_DIM)
    assert np.isfinite(music.features).all()


def test_registry():
    assert "spectral" in music_encoder_names()
    assert isinstance(get_music_encoder("spectral"), SpectralEncoder)
    with pytest.raises(InputError, match="unknown music encoder 'mert'.*spectral"):
        get_music_encoder("mert")

    class Constant:
        id, dim = "constant-test", 3

    register_music_encoder("constant-test", Constant)
    assert isinstance(get_music_encoder("constant-test"), Constant)


def test_pool_to_frames_mean_and_max():
    values = np.arange(100, dtype=np.float32)  # 100 analysis frames at 10 fps = 10 s
    mean = pool_to_frames(values, 10.0, 2.0, 20)  # 2 fps: 5 analysis frames per video frame
    np.testing.assert_allclose(mean[:3], [2.0, 7.0, 12.0])
    peak = pool_to_frames(values, 10.0, 2.0, 20, how="max")
    np.testing.assert_allclose(peak[:3], [4.0, 9.0, 14.0])
    # more video frames than analysis frames: each takes the nearest analysis frame
    up = pool_to_frames(values[:3], 1.0, 4.0, 12)
    assert up.shape == (12,) and np.isfinite(up).all()
