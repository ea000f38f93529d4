"""Frames <-> mp4: exact frame counts and durations, muxed audio, odd sizes, chunked and torch input,
colour fidelity, atomic writes, and the errors bad input gets."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from musedance_core.audio.io import Audio, save_audio
from musedance_core.errors import MuseDanceError, VideoError
from musedance_core.notes import collect_notes
from musedance_core.video import writer as writer_module
from musedance_core.video.frame_rate import fps_to_fraction
from musedance_core.video.reader import probe_video, read_video
from musedance_core.video.writer import AAC_FRAME_SIZE, VideoWriter, write_video

W, H = 64, 48
RATE = 44100
AAC_FRAME_SECONDS = AAC_FRAME_SIZE / RATE  # ~23 ms: the tolerance of audio vs video duration
COLOUR_TOLERANCE = 6  # of 255, on the mean of a solid frame after H.264 and YUV 4:2:0


def _frames(n: int, seed: int = 0, height: int = H, width: int = W) -> np.ndarray:
    """uint8 [n, H, W, 3] smooth moving gradients (compress like real video, not noise)."""
    y, x = np.mgrid[0:height, 0:width]
    t = np.arange(n)[:, None, None]
    base = np.stack([(x + 3 * t + seed) * 4, (y + 2 * t) * 5, (x + y + t) * 2], axis=-1)
    return (base % 256).astype(np.uint8)


def _tone(seconds: float, rate: int = RATE, channels: int = 2) -> Audio:
    t = np.arange(round(seconds * rate)) / rate
    rows = [0.5 * np.sin(2 * np.pi * 440 * (c + 1) * t) for c in range(channels)]
    return Audio(np.stack(rows).astype(np.float32), rate, rate)


def _decode_audio(path) -> np.ndarray:
    """All decoded samples of the first audio stream, float32 [C, N]."""
    with av.open(str(path)) as container:
        blocks = [frame.to_ndarray() for frame in container.decode(audio=0)]
    return np.concatenate(blocks, axis=1)


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- timing ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fps, exact", [(24, Fraction(24)), (30, Fraction(30)),
                                        (29.97, Fraction(30000, 1001)), (12.5, Fraction(25, 2))])
def test_frame_count_and_duration_are_exact(tmp_path, fps, exact):
    n = 37
    path = write_video(tmp_path / "v.mp4", _frames(n), fps, preset="ultrafast")
    info = probe_video(path)
    assert info.num_frames == n
    assert info.fps == pytest.approx(float(exact), abs=1e-9)
    assert info.duration == pytest.approx(float(n / exact), abs=1e-6)
    assert (info.width, info.height, info.video_codec) == (W, H, "h264")
    assert read_video(path).frames.shape == (n, H, W, 3)


def test_fps_fractions():
    assert fps_to_fraction(29.97) == Fraction(30000, 1001)
    assert fps_to_fraction(23.976) == Fraction(24000, 1001)
    assert fps_to_fraction(59.94) == Fraction(60000, 1001)
    assert fps_to_fraction(12.5) == Fraction(25, 2)
    assert fps_to_fraction(24) == Fraction(24)
    assert fps_to_fraction(Fraction(7, 3)) == Fraction(7, 3)


# -- audio -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("audio_seconds", [3.0, 0.5], ids=["audio-longer", "audio-shorter"])
def test_audio_is_cut_or_padded_to_the_video(tmp_path, audio_seconds):
    n, fps = 30, 15.0  # 2 s of video
    path = write_video(tmp_path / "v.mp4", _frames(n), fps, audio=_tone(audio_seconds), preset="ultrafast")
    info = probe_video(path)
    assert info.has_audio and info.audio_sample_rate == RATE and info.audio_channels == 2
    assert info.audio_duration == pytest.approx(info.duration, abs=AAC_FRAME_SECONDS)
    samples = _decode_audio(path)
    # The decoder keeps the encoder's padding of the last AAC frame: at most one frame more.
    assert 0 <= samples.shape[1] - round(2.0 * RATE) < AAC_FRAME_SIZE
    def rms(start: float, end: float) -> float:
        return float(np.sqrt(np.mean(samples[:, int(start * RATE):int(end * RATE)] ** 2)))

    assert rms(0.05, 0.45) > 0.2  # the tone is there from the start (priming removed)
    if audio_seconds < 2.0:
        assert rms(0.6, 1.95) < 1e-3  # silence after the music ends


def test_no_audio_stream_without_audio(tmp_path):
    info = probe_video(write_video(tmp_path / "v.mp4", _frames(5), 24))
    assert not info.has_audio
    assert info.audio_duration is None and info.audio_sample_rate is None


def test_mono_many_channels_and_odd_rates(tmp_path):
    six = Audio(np.tile(_tone(1.0, 22050, 1).samples, (6, 1)), 22050, 22050)
    info = probe_video(write_video(tmp_path / "six.mp4", _frames(24), 24, audio=six))
    assert (info.audio_channels, info.audio_sample_rate) == (1, 22050)
    odd_rate = _tone(1.0, 37000, 1)  # not an AAC rate: resampled to 48 kHz
    info = probe_video(write_video(tmp_path / "odd.mp4", _frames(24), 24, audio=odd_rate))
    assert (info.audio_channels, info.audio_sample_rate) == (1, 48000)
    assert info.audio_duration == pytest.approx(1.0, abs=AAC_FRAME_SIZE / 48000)


# -- frames --------------------------------------------------------------------------------------------

def test_odd_sizes_are_padded_to_even(tmp_path):
    frames = _frames(6, height=33, width=65)
    info = read_video(write_video(tmp_path / "odd.mp4", frames, 24, crf=0))
    assert (info.width, info.height, info.num_frames) == (66, 34, 6)
    got = info.frames.astype(int)
    assert np.abs(got[:, :33, :65] - frames).mean() < 3
    assert np.abs(got[:, :33, 65] - got[:, :33, 64]).mean() < 3  # edge repeated, not black


def test_chunked_writes_equal_one_shot(tmp_path):
    frames = _frames(40)
    one = read_video(write_video(tmp_path / "one.mp4", frames, 24, audio=_tone(1.0)))
    with VideoWriter(tmp_path / "chunks.mp4", 24, W, H, audio=_tone(1.0)) as writer:
        for lo, hi in [(0, 1), (1, 17), (17, 33), (33, 40)]:
            writer.write(frames[lo:hi])
    chunked = read_video(tmp_path / "chunks.mp4")
    assert chunked.num_frames == one.num_frames == 40
    assert chunked.duration == one.duration and chunked.audio_duration == one.audio_duration
    assert np.abs(chunked.frames.astype(int) - one.frames).mean() < 1.0


def test_solid_colours_survive(tmp_path):
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [30, 120, 200]], np.uint8)
    frames = np.repeat(np.broadcast_to(colours[:, None, None], (5, H, W, 3)), 2, axis=0)
    info = read_video(write_video(tmp_path / "c.mp4", frames, 24))
    means = info.frames.reshape(10, -1, 3).mean(axis=1)[::2]
    assert np.abs(means - colours).max() < COLOUR_TOLERANCE


def test_torch_float_and_list_input(tmp_path):
    frames = _frames(8)
    as_float = torch.from_numpy(frames).float() / 255.0
    a = read_video(write_video(tmp_path / "t.mp4", as_float, 24, crf=0)).frames
    b = read_video(write_video(tmp_path / "h.mp4", as_float.to(torch.bfloat16), 24)).frames
    c = read_video(write_video(tmp_path / "l.mp4", list(frames), 24, crf=0)).frames
    d = read_video(write_video(tmp_path / "n.mp4", frames, 24, crf=0)).frames
    assert a.shape == b.shape == c.shape == (8, H, W, 3)
    assert np.array_equal(a, d) and np.array_equal(c, d)
    assert np.abs(b.astype(int) - d).mean() < 3  # bfloat16 has ~3 significant digits


def test_nan_frames_get_a_note_and_become_black(tmp_path):
    frames = np.full((3, H, W, 3), np.nan, np.float32)
    with collect_notes() as notes:
        info = read_video(write_video(tmp_path / "nan.mp4", frames, 24))
    assert info.frames.max() < 8
    assert len(notes) == 1 and "NaN" in notes[0]  # once per video, not once per chunk


def test_out_of_range_floats_get_a_note_with_a_hint(tmp_path):
    with collect_notes() as notes:
        write_video(tmp_path / "big.mp4", _frames(2).astype(np.float32), 24)
    assert len(notes) == 1 and "0..255" in notes[0]


def test_mpeg4_fallback_when_libx264_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_module, "_video_codec", lambda: writer_module.FALLBACK_VIDEO_CODEC)
    info = read_video(write_video(tmp_path / "m.mp4", _frames(12), 29.97, audio=_tone(1.0)))
    assert info.video_codec == "mpeg4" and info.num_frames == 12 and info.has_audio
    assert info.duration == pytest.approx(12 * 1001 / 30000, abs=1e-6)


def test_probe_counts_packets_without_a_header_count(tmp_path):
    src = write_video(tmp_path / "v.mp4", _frames(17), 24)
    mkv = tmp_path / "v.mkv"  # Matroska states no frame count
    with av.open(str(src)) as inp, av.open(str(mkv), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    with av.open(str(mkv)) as container:
        assert not container.streams.video[0].frames
    assert probe_video(mkv).num_frames == 17
    assert read_video(mkv).frames.shape == (17, H, W, 3)


# -- atomic writing ------------------------------------------------------------------------------

def test_exception_inside_with_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), \
            VideoWriter(tmp_path / "v.mp4", 24, W, H, audio=_tone(1.0)) as writer:
        writer.write(_frames(10))
        raise RuntimeError("boom")
    assert _leftovers(tmp_path) == []


def test_failed_write_keeps_the_old_file(tmp_path):
    path = write_video(tmp_path / "v.mp4", _frames(3), 24)
    with pytest.raises(VideoError), VideoWriter(path, 24, W, H) as writer:
        writer.write(_frames(4))
        writer.write(_frames(1, width=W + 2))  # wrong size
    assert _leftovers(tmp_path) == ["v.mp4"]
    assert probe_video(path).num_frames == 3


def test_closing_without_frames_saves_nothing(tmp_path):
    writer = VideoWriter(tmp_path / "v.mp4", 24, W, H)
    with pytest.raises(VideoError, match="no frames"):
        writer.close()
    assert _leftovers(tmp_path) == []
    with pytest.raises(VideoError, match="closed"):
        writer.write(_frames(1))


# -- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("frames, match", [
    ([], "empty"),
    (np.zeros((0, H, W, 3), np.uint8), "empty"),
    (np.zeros((H, W, 3), np.uint8), r"\[N, H, W, 3\].*frames\[None\]"),
    (np.zeros((2, H, W, 4), np.uint8), r"\[N, H, W, 3\] RGB.*alpha"),
    (np.zeros((2, 3, H, W), np.float32), "Channels-first"),
    (np.zeros((2, H, W, 3), np.int64), "uint8.*float.*int64"),
])
def test_bad_frames_raise_video_error(tmp_path, frames, match):
    with pytest.raises(VideoError, match=match) as err:
        write_video(tmp_path / "bad.mp4", frames, 24)
    assert "bad.mp4" in str(err.value)
    assert isinstance(err.value, MuseDanceError)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("kw, match", [
    ({"fps": 0}, "fps must be between"),
    ({"fps": -24}, "fps must be between"),
    ({"fps": float("nan")}, "finite"),
    ({"width": 0}, "width"),
    ({"crf": 60}, "crf"),
    ({"preset": "fastest"}, "preset"),
    ({"path": "clip.avi"}, "extension"),
    ({"audio": {"waveform": None}}, "from_comfy_audio"),
])
def test_bad_settings_raise_video_error(tmp_path, kw, match):
    args = {"path": "v.mp4", "fps": 24, "width": W, "height": H, **kw}
    args["path"] = tmp_path / args["path"]
    with pytest.raises(VideoError, match=match):
        VideoWriter(**args)
    assert _leftovers(tmp_path) == []


def test_unreadable_files_raise_video_error(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        probe_video(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        probe_video(tmp_path / "empty.mp4")
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(VideoError, match="cannot read 'text.mp4'"):
        read_video(tmp_path / "text.mp4")
    save_audio(tmp_path / "music.m4a", _tone(0.5))
    with pytest.raises(VideoError, match="no video stream"):
        probe_video(tmp_path / "music.m4a")


def test_clean_float_input_gives_no_note(tmp_path):
    with collect_notes() as notes:
        write_video(tmp_path / "v.mp4", np.random.default_rng(0).random((3, H, W, 3)), 24)
    assert notes == []
