"""Audio in and out: decode any common file, mix down, resample, trim, and convert to and
from ComfyUI's ``AUDIO`` dict.

Files are decoded with PyAV (FFmpeg's libraries inside the wheel, no system ffmpeg), so wav,
flac, mp3, ogg/vorbis, opus, m4a/aac and anything else FFmpeg reads all take the same path.
Decoding streams frame by frame and, when ``mono=True``, mixes down as it goes, so memory
follows the requested segment, not the file; a segment longer than ``max_seconds`` is refused
before it is decoded.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AudioError
from ..notes import note

# Longest segment decoded in one go: 20 minutes is far more than any dance video needs and keeps
# a mono 48 kHz float32 decode under ~250 MB. Callers pass start/duration for longer files.
MAX_AUDIO_SECONDS = 20 * 60.0
# What a user can do about a song over the limit (no option raises it).
CHOOSE_A_PART = ("Choose a part of it: --start and --seconds in 'animate' (--start and --duration in 'beats'), "
                 "a trim node such as TrimAudioDuration before it in ComfyUI, or cut the file shorter.")
# Below this, a sample rate is almost certainly a mistake (a value in kHz, say).
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000


@dataclass(frozen=True)
class Audio:
    """Decoded audio.

    Attributes:
        samples: float32 [C, N], nominally in [-1, 1].
        sample_rate: samples per second.
        source_sample_rate: rate of the file or dict it came from (before any resampling).
        start: where ``samples[0]`` lies in the source, in seconds.
        source: a short description of where it came from, used in messages.
    """

    samples: np.ndarray
    sample_rate: int
    source_sample_rate: int
    start: float = 0.0
    source: str = "audio"

    @property
    def num_channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        return self.num_samples / float(self.sample_rate)


def load_audio(
    path: str | os.PathLike,
    *,
    sample_rate: int | None = None,
    mono: bool = False,
    start: float = 0.0,
    duration: float | None = None,
    max_seconds: float = MAX_AUDIO_SECONDS,
) -> Audio:
    """Decode an audio file (or the audio track of a video file).

    Args:
        path: any file FFmpeg can read.
        sample_rate: resample to this rate; ``None`` keeps the file's rate.
        mono: mix all channels down to one (the mean).
        start: seconds to skip from the beginning.
        duration: seconds to keep from ``start``; ``None`` keeps the rest of the file.
        max_seconds: refuse a segment longer than this instead of decoding it.

    Returns:
        ``Audio`` with ``samples`` float32 [C, N] (C = 1 when ``mono``).

    Raises:
        AudioError: the file is missing, empty, not audio, corrupt, silent of samples, or the
            segment is longer than ``max_seconds``.
    """
    path = Path(path)
    name = path.name
    _check_segment_args(start, duration, name)
    container = open_media(path, AudioError, "audio", "wav, flac, mp3, ogg, opus, m4a/aac")
    with container:
        if not container.streams.audio:
            raise AudioError(f"'{name}' has no audio stream. Give a music file or a video with sound.")
        stream = container.streams.audio[0]
        src_rate = int(stream.rate or stream.codec_context.sample_rate or 0)
        if not (MIN_SAMPLE_RATE <= src_rate <= MAX_SAMPLE_RATE):
            raise AudioError(f"'{name}' reports sample rate {src_rate} Hz, outside "
                             f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz; the file is probably corrupt.")
        known = _container_duration(container, stream)
        wanted = duration if duration is not None else (None if known is None else max(known - start, 0.0))
        if wanted is not None and wanted > max_seconds:
            raise AudioError(
                f"'{name}' gives a {_clock(wanted)} segment; MuseDance analyses at most "
                f"{_clock(max_seconds)} at a time. {CHOOSE_A_PART}"
            )
        if known is not None and start >= known > 0:
            raise AudioError(f"start={start:.3f}s is past the end of '{name}' ({known:.3f}s long). "
                             "Choose a start inside the file.")
        samples = _decode(container, stream, name, src_rate, start, duration, mono, max_seconds)

    if samples.shape[1] == 0:
        raise AudioError(f"'{name}' contains no audio samples"
                         + (f" after start={start:.3f}s" if start > 0 else "")
                         + ". Give a file with sound in it.")
    audio = Audio(sanitize(samples, name), src_rate, src_rate, start=start, source=name)
    if sample_rate is not None:
        audio = resample(audio, sample_rate)
    return audio


def open_media(path: Path, error: type[Exception], kind: str, formats: str):
    """Open a media file with PyAV for reading; ``error`` (AudioError, VideoError) names the file,
    what is wrong and what to give instead."""
    import av

    if not path.is_file():
        raise error(f"{kind} file not found: '{path}'. Check the path (and its extension).")
    if path.stat().st_size == 0:
        raise error(f"{kind} file '{path.name}' is empty (0 bytes). Re-export or re-download it.")
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read '{path.name}' as {kind}: {exc}. Supported: {formats} and any other format "
                    "FFmpeg decodes; the file may be corrupt.") from exc


def _decode(container, stream, name: str, src_rate: int, start: float, duration: float | None,
            mono: bool, max_seconds: float) -> np.ndarray:
    """Stream-decode [start, start+duration) to float32 [C, N]; mono mixdown per frame."""
    import av

    if start > 0:
        try:  # seeks to a keyframe at or before `start`; exact trimming below
            container.seek(int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
        except av.error.FFmpegError:
            pass  # unseekable stream: decode from the beginning and discard
    first = int(round(start * src_rate))
    want = None if duration is None else int(round(duration * src_rate))
    limit = int(math.ceil(max_seconds * src_rate))
    chunks: list[np.ndarray] = []
    kept = 0
    position = None  # index in the source of the next decoded sample
    try:
        for frame in container.decode(stream):
            if frame.pts is not None:
                position = int(round(float(frame.pts * stream.time_base) * src_rate))
            elif position is None:
                position = 0
            block = _frame_to_float(frame)  # [C, n]
            lo = max(first - position, 0)
            position += block.shape[1]
            if lo >= block.shape[1]:
                continue
            block = block[:, lo:]
            if want is not None:
                block = block[:, : max(want - kept, 0)]
            if mono and block.shape[0] > 1:
                block = block.mean(axis=0, keepdims=True)
            chunks.append(np.ascontiguousarray(block))
            kept += block.shape[1]
            if kept > limit:
                raise AudioError(f"'{name}' is longer than the {_clock(max_seconds)} MuseDance "
                                 f"analyses at a time. {CHOOSE_A_PART}")
            if want is not None and kept >= want:
                break
    except av.error.FFmpegError as exc:
        if not chunks:
            raise AudioError(f"cannot decode '{name}': {exc}. The file is corrupt or truncated; "
                             "re-export it.") from exc
        note(f"'{name}': decoding stopped early ({exc}); using the {kept / src_rate:.2f}s "
             "read before the damage.")
    if not chunks:
        return np.zeros((1, 0), np.float32)
    channels = {c.shape[0] for c in chunks}
    if len(channels) > 1:  # a stream that changes layout mid-way: mix every chunk down
        chunks = [c.mean(axis=0, keepdims=True) for c in chunks]
    return np.concatenate(chunks, axis=1)


# Full-scale divisor of each integer sample format (FFmpeg names, planar 'p' suffix removed).
_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2.0**31, "s64": 2.0**63}


def _frame_to_float(frame) -> np.ndarray:
    """A decoded audio frame as float32 [C, n].

    Done by hand rather than with av.AudioResampler, which crashes the process on layouts
    without a channel order (e.g. a WAV with '8 channels').
    """
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:  # interleaved: [1, n*C] -> [C, n]
        data = data.reshape(-1, channels).T
    name = frame.format.name.rstrip("p")
    if name == "u8":
        return (data.astype(np.float32) - 128.0) / 128.0
    if name in _INT_SCALE:
        return (data / _INT_SCALE[name]).astype(np.float32)
    return data.astype(np.float32, copy=False)


def from_comfy_audio(audio: dict[str, Any], *, name: str = "AUDIO", max_seconds: float | None = None) -> Audio:
    """Convert ComfyUI's ``AUDIO`` dict (``waveform`` float [B, C, T], ``sample_rate``).

    Only the first batch item is used (ComfyUI's LoadAudio makes B = 1); a note says so when
    B > 1. ``max_seconds``: refuse longer audio (from its shape, before any copy or analysis),
    telling the user to trim it with ComfyUI's TrimAudioDuration.
    """
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise AudioError(f"{name} must be a ComfyUI AUDIO dict with 'waveform' and 'sample_rate'; "
                         f"got {type(audio).__name__}. Connect a LoadAudio (or another AUDIO) output.")
    try:
        rate = int(audio["sample_rate"])
    except (TypeError, ValueError, OverflowError):
        raise AudioError(f"{name} sample_rate must be a whole number of Hz; got {audio['sample_rate']!r}.") from None
    if not (MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE):
        raise AudioError(f"{name} sample_rate is {rate} Hz; expected {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz.")
    wave = audio["waveform"]
    shape = tuple(getattr(wave, "shape", ()))
    if max_seconds is not None and len(shape) == 3 and shape[2] / rate > max_seconds:
        raise AudioError(f"{name} lasts {_clock(shape[2] / rate)}, longer than the {_clock(max_seconds)} MuseDance "
                         "analyses at a time; cut the part you want with TrimAudioDuration (start_index, "
                         "duration) before this node.")
    if hasattr(wave, "detach"):  # torch tensor; any device, any float dtype
        wave = wave.detach().to("cpu").float().numpy()
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 3:
        raise AudioError(f"{name} waveform must have shape [batch, channels, samples]; got {tuple(wave.shape)}.")
    if wave.shape[0] > 1:
        note(f"{name} holds a batch of {wave.shape[0]} clips; MuseDance uses the first.")
    if wave.shape[0] == 0 or wave.shape[1] == 0 or wave.shape[2] == 0:
        raise AudioError(f"{name} contains no audio samples (waveform shape {tuple(wave.shape)}).")
    return Audio(sanitize(wave[0], name), rate, rate, source=name)


def to_comfy_audio(audio: Audio) -> dict[str, Any]:
    """Convert to ComfyUI's ``AUDIO`` dict: ``waveform`` float32 torch tensor [1, C, N]."""
    import torch

    return {"waveform": torch.from_numpy(np.ascontiguousarray(audio.samples))[None], "sample_rate": audio.sample_rate}


def to_mono(audio: Audio) -> Audio:
    """Mix all channels down to one (the mean)."""
    if audio.num_channels == 1:
        return audio
    return Audio(audio.samples.mean(axis=0, keepdims=True), audio.sample_rate,
                 audio.source_sample_rate, audio.start, audio.source)


def resample(audio: Audio, sample_rate: int) -> Audio:
    """Resample with soxr (high quality, linear phase); a no-op at the same rate."""
    if not (MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE):
        raise AudioError(f"target sample_rate must be {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz; got {sample_rate}.")
    if int(sample_rate) == audio.sample_rate:
        return audio
    import soxr

    out = soxr.resample(audio.samples.T, audio.sample_rate, int(sample_rate), quality="HQ").T
    return Audio(np.ascontiguousarray(out, dtype=np.float32), int(sample_rate),
                 audio.source_sample_rate, audio.start, audio.source)


def trim(audio: Audio, start: float = 0.0, duration: float | None = None) -> Audio:
    """Keep ``[start, start + duration)`` seconds (relative to ``audio``'s own first sample)."""
    _check_segment_args(start, duration, audio.source)
    if start >= audio.duration:
        raise AudioError(f"start={start:.3f}s is past the end of {audio.source} "
                         f"({audio.duration:.3f}s long). Choose a start inside the audio.")
    lo = int(round(start * audio.sample_rate))
    hi = audio.num_samples if duration is None else min(lo + int(round(duration * audio.sample_rate)), audio.num_samples)
    return Audio(audio.samples[:, lo:hi], audio.sample_rate, audio.source_sample_rate,
                 audio.start + start, audio.source)


def sanitize(samples: np.ndarray, name: str = "audio") -> np.ndarray:
    """Replace NaN/inf by 0 (with a note) and return C-contiguous float32 [C, N]."""
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if samples.ndim == 1:
        samples = samples[None]
    bad = ~np.isfinite(samples)
    if bad.any():
        note(f"{name}: {int(bad.sum())} NaN/inf samples replaced by silence.")
        samples = np.where(bad, np.float32(0.0), samples)
    return samples


def _check_segment_args(start: float, duration: float | None, name: str) -> None:
    if not math.isfinite(start) or start < 0:
        raise AudioError(f"start for {name} must be a number of seconds >= 0; got {start}.")
    if duration is not None and (not math.isfinite(duration) or duration <= 0):
        raise AudioError(f"duration for {name} must be > 0 seconds (or None for 'to the end'); got {duration}.")


def _container_duration(container, stream) -> float | None:
    """Best-effort duration in seconds from the stream or container header."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000.0  # av.time_base
    return None


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


# Container format and codec by file extension for save_audio.
_WRITERS: dict[str, tuple[str, str]] = {
    ".wav": ("wav", "pcm_s16le"),
    ".flac": ("flac", "flac"),
    ".mp3": ("mp3", "libmp3lame"),
    ".ogg": ("ogg", "vorbis"),
    ".opus": ("ogg", "libopus"),
    ".m4a": ("mp4", "aac"),
}


def save_audio(path: str | os.PathLike, audio: Audio) -> Path:
    """Encode ``audio`` to a file whose extension picks the format (wav, flac, mp3, ogg, opus, m4a).

    Written to a temporary name first and renamed, so a failure leaves no half-written file.
    """
    import av

    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _WRITERS:
        raise AudioError(f"cannot write '{path.name}': extension must be one of {sorted(_WRITERS)}.")
    fmt, codec = _WRITERS[ext]
    rate = audio.sample_rate
    if codec == "libopus" and rate not in (8000, 12000, 16000, 24000, 48000):
        audio, rate = resample(audio, 48000), 48000
    layout = {1: "mono", 2: "stereo"}.get(audio.num_channels)
    samples = audio.samples if layout else audio.samples.mean(axis=0, keepdims=True)
    layout = layout or "mono"
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with av.open(str(tmp), mode="w", format=fmt) as out:
            stream = out.add_stream(codec, rate=rate, layout=layout)
            if codec == "vorbis":  # FFmpeg's own Vorbis encoder is flagged experimental
                stream.codec_context.options = {"strict": "experimental"}
            frame_size = stream.codec_context.frame_size or 4096
            planar = np.ascontiguousarray(np.clip(samples, -1.0, 1.0), dtype=np.float32)
            for lo in range(0, planar.shape[1], frame_size):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar[:, lo:lo + frame_size]),
                                                   format="fltp", layout=layout)
                frame.sample_rate = rate
                frame.pts = lo
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
