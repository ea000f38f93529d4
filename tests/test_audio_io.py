"""Decoding, trimming, mixdown, resampling and ComfyUI AUDIO conversion, and bad input."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import soundfile
import torch

from musedance_core.audio.io import (
    Audio,
    from_comfy_audio,
    load_audio,
    resample,
    save_audio,
    to_comfy_audio,
    trim,
)
from musedance_core.errors import AudioError
from musedance_core.notes import collect_notes

RATE = 44100


def _tone(seconds: float = 2.0, rate: int = RATE, channels: int = 2) -> Audio:
    t = np.arange(int(seconds * rate)) / rate
    rows = [0.5 * np.sin(2 * np.pi * (220 * (c + 1)) * t) for c in range(channels)]
    return Audio(np.stack(rows).astype(np.float32), rate, rate)


@pytest.mark.parametrize("ext", [".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a"])
def test_every_common_format_decodes_with_its_length(tmp_path, ext):
    path = save_audio(tmp_path / f"tone{ext}", _tone(2.0))
    audio = load_audio(path)
    assert audio.num_channels == 2
    # Lossy codecs add up to ~60 ms of encoder padding; the content is still 2 s.
    assert audio.duration == pytest.approx(2.0, abs=0.07)
    assert np.abs(audio.samples).max() > 0.3


def test_start_and_duration_cut_exactly(tmp_path):
    rate = 16000
    ramp = (np.arange(rate * 4) / (rate * 4)).astype(np.float32)  # value encodes position
    path = tmp_path / "ramp.wav"
    soundfile.write(path, ramp, rate, subtype="FLOAT")
    audio = load_audio(path, start=1.0, duration=0.5)
    assert audio.num_samples == rate // 2
    assert audio.start == 1.0
    assert audio.samples[0, 0] == pytest.approx(0.25, abs=1e-4)
    assert audio.samples[0, -1] == pytest.approx(0.25 + 0.125, abs=1e-3)


def test_mono_mixdown_and_resample(tmp_path):
    path = save_audio(tmp_path / "st.wav", _tone(1.0))
    audio = load_audio(path, mono=True, sample_rate=22050)
    assert audio.samples.shape == (1, 22050)
    assert audio.source_sample_rate == RATE
    assert audio.samples.dtype == np.float32


@pytest.mark.parametrize("rate", [8000, 192000])
def test_extreme_sample_rates_resample(tmp_path, rate):
    path = tmp_path / f"r{rate}.wav"
    t = np.arange(rate) / rate
    soundfile.write(path, 0.5 * np.sin(2 * np.pi * 440 * t), rate)
    audio = load_audio(path, sample_rate=22050, mono=True)
    assert audio.sample_rate == 22050 and audio.num_samples == 22050
    spectrum = np.abs(np.fft.rfft(audio.samples[0]))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)  # 1 s signal: bin = Hz


def test_eight_channels_mix_down(tmp_path):
    path = tmp_path / "eight.wav"
    data = np.zeros((RATE, 8), np.float32)
    data[:, 5] = 0.8  # only one channel carries signal
    soundfile.write(path, data, RATE, subtype="FLOAT")
    audio = load_audio(path, mono=True)
    assert audio.samples.shape == (1, RATE)
    np.testing.assert_allclose(audio.samples, 0.1, atol=1e-6)  # mean of 8 channels


def test_missing_file_names_it(tmp_path):
    with pytest.raises(AudioError, match="not found: .*nope.mp3"):
        load_audio(tmp_path / "nope.mp3")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp3"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="empty.mp3' is empty"):
        load_audio(path)


@pytest.mark.parametrize("payload", [b"\x00\xff" * 3000, b"hello this is not audio at all " * 50])
def test_corrupt_or_foreign_file(tmp_path, payload):
    path = tmp_path / "broken.mp3"
    path.write_bytes(payload)
    with pytest.raises(AudioError, match="broken.mp3"):
        load_audio(path)


def test_image_renamed_to_wav_is_not_audio(tmp_path):
    from PIL import Image

    path = tmp_path / "picture.wav"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(path, format="PNG")
    with pytest.raises(AudioError, match="picture.wav"):
        load_audio(path)


def test_truncated_file_keeps_what_decodes(tmp_path):
    path = save_audio(tmp_path / "whole.mp3", _tone(3.0))
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    audio = load_audio(cut)
    assert 1.0 < audio.duration < 2.0


def test_zero_length_audio(tmp_path):
    path = tmp_path / "zero.wav"
    soundfile.write(path, np.zeros((0, 2), np.float32), RATE)
    with pytest.raises(AudioError, match="no audio samples"):
        load_audio(path)


def test_ten_millisecond_audio_loads(tmp_path):
    path = tmp_path / "blip.wav"
    soundfile.write(path, np.full(441, 0.5, np.float32), RATE)
    audio = load_audio(path)
    assert audio.num_samples == 441


def test_start_past_the_end(tmp_path):
    path = save_audio(tmp_path / "short.wav", _tone(1.0))
    with pytest.raises(AudioError, match="past the end"):
        load_audio(path, start=5.0)


@pytest.mark.parametrize("kwargs", [{"start": -1.0}, {"duration": 0.0}, {"duration": float("nan")}])
def test_bad_segment_arguments(tmp_path, kwargs):
    path = save_audio(tmp_path / "a.wav", _tone(1.0))
    with pytest.raises(AudioError, match="start|duration"):
        load_audio(path, **kwargs)


@pytest.fixture(scope="module")
def two_hour_file(tmp_path_factory):
    """A real 2-hour file: 8 kHz mono 16-bit WAV (115 MB), a quiet 220 Hz tone."""
    path = tmp_path_factory.mktemp("long") / "two_hours.wav"
    rate, block = 8000, 8000 * 60
    tone = (0.1 * np.sin(2 * np.pi * 220 * np.arange(block) / rate) * 32767).astype(np.int16)
    with soundfile.SoundFile(path, "w", rate, 1, subtype="PCM_16") as f:
        for _ in range(120):
            f.write(tone)
    return path


def test_two_hour_file_is_refused_before_decoding(two_hour_file):
    with pytest.raises(AudioError, match=r"2:00:00 segment.*--start and --seconds.*TrimAudioDuration"):
        load_audio(two_hour_file)


def test_two_hour_file_segment_decodes_in_bounded_memory(two_hour_file):
    tracemalloc.start()
    audio = load_audio(two_hour_file, start=3600.0, duration=10.0, mono=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert audio.num_samples == 80000
    assert peak < 20 * 2**20, f"decoding a 10 s segment used {peak / 2**20:.1f} MB"


def test_comfy_audio_round_trip():
    audio = _tone(0.5)
    comfy = to_comfy_audio(audio)
    assert isinstance(comfy["waveform"], torch.Tensor)
    assert comfy["waveform"].shape == (1, 2, audio.num_samples)
    back = from_comfy_audio(comfy)
    np.testing.assert_array_equal(back.samples, audio.samples)
    assert back.sample_rate == RATE


def test_comfy_audio_nan_and_inf_become_silence():
    wave = torch.zeros(1, 1, 1000)
    wave[0, 0, 10] = float("nan")
    wave[0, 0, 20] = float("inf")
    wave[0, 0, 30] = 0.5
    with collect_notes() as notes:
        audio = from_comfy_audio({"waveform": wave, "sample_rate": 16000})
    assert notes == ["AUDIO: 2 NaN/inf samples replaced by silence."]
    assert np.isfinite(audio.samples).all()
    assert audio.samples[0, 30] == 0.5


@pytest.mark.parametrize(
    "bad, message",
    [
        ("a string", "ComfyUI AUDIO dict"),
        ({"waveform": torch.zeros(2, 100), "sample_rate": 16000}, r"\[batch, channels, samples\]"),
        ({"waveform": torch.zeros(1, 1, 0), "sample_rate": 16000}, "no audio samples"),
        ({"waveform": torch.zeros(1, 1, 100), "sample_rate": 16}, "sample_rate is 16 Hz"),
    ],
)
def test_comfy_audio_rejects_malformed(bad, message):
    with pytest.raises(AudioError, match=message):
        from_comfy_audio(bad)


def test_comfy_audio_batch_uses_first_item():
    wave = torch.stack([torch.full((1, 100), 0.1), torch.full((1, 100), 0.9)])
    with collect_notes() as notes:
        audio = from_comfy_audio({"waveform": wave, "sample_rate": 16000})
    assert notes == ["AUDIO holds a batch of 2 clips; MuseDance uses the first."]
    assert audio.samples[0, 0] == pytest.approx(0.1)


def test_trim_and_resample_helpers():
    audio = _tone(2.0)
    part = trim(audio, 0.5, 1.0)
    assert part.num_samples == RATE and part.start == 0.5
    assert resample(part, 22050).num_samples == 22050
    with pytest.raises(AudioError, match="past the end"):
        trim(audio, 3.0)
