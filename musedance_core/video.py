"""Frames <-> mp4 with the music muxed in, through PyAV (FFmpeg inside the wheel, no system ffmpeg).

Writing: :class:`VideoWriter` streams frames (numpy or torch, uint8 or float 0..1, any device) to
H.264 ``yuv420p`` (plays everywhere; MPEG-4 Part 2 if the PyAV build lacks ``libx264``) with AAC
audio, in chunks, so memory stays bounded however long the video is. The audio is cut or padded
with silence to exactly the video's duration, ``num_frames / fps``. Fractional rates are exact:
29.97 is stored as 30000/1001 and 12.5 as 25/2, and the mp4 clocks are chosen so the stored
duration is exactly ``num_frames / fps`` (FFmpeg's default 1 ms movie clock would round it).
Files appear atomically: everything goes to a hidden temporary file in the same folder, renamed
over ``path`` only when the video is complete.

Reading: :func:`probe_video` reads the headers (counting packets when a file does not state its
frame count); :func:`read_video` also decodes every frame to uint8 RGB [N, H, W, 3].
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import secrets
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .audio.io import Audio, resample
from .errors import MuseDanceError


class VideoError(MuseDanceError):
    """A video cannot be written or read: bad frames, bad settings, or an unreadable file."""


VIDEO_CODEC = "libx264"
FALLBACK_VIDEO_CODEC = "mpeg4"  # in every FFmpeg build; used when libx264 is missing
AUDIO_CODEC = "aac"
PIXEL_FORMAT = "yuv420p"  # 4:2:0 is what every player and browser decodes; needs even sizes
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow", "placebo")
MAX_CRF = 51  # x264's 8-bit scale: 0 = lossless, 18 ~ visually lossless, 23 = default
MPEG4_MAX_QSCALE = 31
FF_QP2LAMBDA = 118  # FFmpeg's quantiser -> lambda factor, for the mpeg4 fallback's global_quality
# Sample rates the AAC encoder accepts; audio at any other rate is resampled to AAC_DEFAULT_RATE.
AAC_SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025,
                    8000, 7350)
AAC_DEFAULT_RATE = 48000
AAC_FRAME_SIZE = 1024  # samples per AAC frame (the encoder reports it once opened)
AUDIO_BITRATE_PER_CHANNEL = 96_000  # 192 kb/s stereo: transparent for FFmpeg's AAC on music
MIN_FPS, MAX_FPS = 1e-3, 1000.0
MAX_FPS_DENOMINATOR = 1001  # fps are stored as fractions with at most this denominator
NTSC_FACTOR = Fraction(1000, 1001)  # 29.97 means 30 * 1000/1001 (and 23.976, 59.94, ...)
NTSC_TOLERANCE = 0.005  # |fps * 1.001 - round(fps * 1.001)| below this reads as an NTSC rate
MIN_NTSC_BASE = 10  # only 10 * 1000/1001 fps and up are read as NTSC rates
MIN_TRACK_TIMESCALE = 10_000  # FFmpeg's mov muxer doubles its track clock up to at least this
CONVERT_CHUNK = 16  # frames converted to uint8 at a time: bounds the extra memory of a write
RANGE_SLACK = 0.01  # float frames this far outside 0..1 are clipped without a warning
AV_TIME_BASE = 1_000_000  # FFmpeg's container duration unit (microseconds)

# Container format by file extension (all ISO-BMFF, so the same muxer options apply).
_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}
VIDEO_SUFFIXES = tuple(_CONTAINERS)


def fps_to_fraction(fps: float | Fraction, name: str = "fps") -> Fraction:
    """The exact frame rate ``fps`` stands for.

    NTSC rates written as decimals become their true fractions (29.97 -> 30000/1001, 23.976 ->
    24000/1001, 59.94 -> 60000/1001); any other rate becomes the nearest fraction with a
    denominator of at most 1001 (12.5 -> 25/2, 24 -> 24/1).
    """
    if isinstance(fps, Fraction):
        rate = fps
    else:
        try:
            value = float(fps)
        except (TypeError, ValueError):
            raise VideoError(f"{name} must be a number of frames per second; got {fps!r}.") from None
        if not math.isfinite(value):
            raise VideoError(f"{name} must be a finite number of frames per second; got {fps}.")
        base = round(value / NTSC_FACTOR)
        is_integer = abs(value - round(value)) < 1e-9
        if (not is_integer and base >= MIN_NTSC_BASE
                and abs(value / float(NTSC_FACTOR) - base) < NTSC_TOLERANCE):
            rate = base * NTSC_FACTOR
        else:
            rate = Fraction(value).limit_denominator(MAX_FPS_DENOMINATOR)
    if not (MIN_FPS <= rate <= MAX_FPS):
        raise VideoError(f"{name} must be between {MIN_FPS} and {MAX_FPS:g} frames per second; "
                         f"got {float(fps):g}. Pass the frame rate of the animation (e.g. 24).")
    return rate


def _track_timescale(rate: Fraction) -> int:
    """An mp4 clock (ticks per second) in which every frame lasts a whole number of ticks.

    The same rule as FFmpeg's mov muxer (the rate's numerator, doubled up to >= 10000), set
    explicitly so the movie clock can use it too.
    """
    timescale = rate.numerator
    while timescale < MIN_TRACK_TIMESCALE:
        timescale *= 2
    return timescale


def _video_codec() -> str:
    """``libx264`` when this PyAV build can encode with it, else ``mpeg4``."""
    import av

    try:
        av.Codec(VIDEO_CODEC, "w")
    except (av.error.FFmpegError, ValueError):  # UnknownCodecError is a ValueError subclass
        return FALLBACK_VIDEO_CODEC
    return VIDEO_CODEC


class VideoWriter:
    """Streaming mp4 writer: H.264 yuv420p video plus, optionally, AAC audio.

    Use as a context manager::

        with VideoWriter("out.mp4", fps=24, width=512, height=768, audio=music) as writer:
            for chunk in chunks:          # [n, H, W, 3] each
                writer.write(chunk)

    Frames may be appended in any number of chunks; each is converted ``CONVERT_CHUNK`` frames at
    a time and encoded at once, so memory does not grow with the video's length.

    Odd ``width``/``height``: yuv420p stores colour at half resolution and needs even sizes, so
    the encoded video is one pixel wider and/or taller than asked, the last column/row repeating
    its neighbour. :func:`read_video` returns that even size.

    Audio (``Audio.samples`` float32 [C, N]) starts with the first frame; at ``close`` it is cut,
    or padded with silence, to exactly ``num_frames / fps`` seconds. Mono and stereo are kept;
    more channels are mixed down to mono (``Audio`` carries no channel layout to down-mix by).
    Rates the AAC encoder does not take are resampled to 48 kHz.

    The file is written to a hidden temporary name in the same folder (created if missing) and
    renamed to ``path`` at ``close``; if the ``with`` block raises, or ``abort`` is called, the
    temporary file is deleted and ``path`` is left untouched. Call ``close`` (or use ``with``):
    an unclosed writer leaves its temporary file behind.

    Args:
        path: output file, ``.mp4`` (or ``.m4v``/``.mov``); replaced if it exists.
        fps: frames per second, > 0; fractional rates are exact (29.97 = 30000/1001).
        width, height: frame size in pixels of the frames that will be written.
        audio: music to mux in, or ``None`` for a silent video (no audio stream).
        crf: x264 constant rate factor, 0 (lossless) .. 51; 18 is visually lossless.
        preset: x264 speed/size trade-off, ``ultrafast`` .. ``placebo``.
    """

    def __init__(self, path: str | os.PathLike, fps: float | Fraction, width: int, height: int,
                 audio: Audio | None = None, crf: int = 18, preset: str = "medium") -> None:
        import av

        self.path = Path(path)
        name = self.path.name
        fmt = _CONTAINERS.get(self.path.suffix.lower())
        if fmt is None:
            raise VideoError(f"cannot write '{name}': the extension must be one of "
                             f"{sorted(_CONTAINERS)} (H.264 + AAC in an MP4 container).")
        self.rate = fps_to_fraction(fps)
        for arg, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise VideoError(f"{arg} for '{name}' must be a positive whole number of pixels; "
                                 f"got {value!r}.")
        if isinstance(crf, bool) or not isinstance(crf, (int, np.integer)) or not 0 <= crf <= MAX_CRF:
            raise VideoError(f"crf for '{name}' must be a whole number 0..{MAX_CRF} "
                             f"(0 = lossless, 18 = visually lossless, 23 = x264's default); got {crf!r}.")
        if preset not in X264_PRESETS:
            raise VideoError(f"preset for '{name}' must be one of {', '.join(X264_PRESETS)}; got {preset!r}.")
        self.width, self.height = int(width), int(height)
        self._coded_size = (self.height + self.height % 2, self.width + self.width % 2)  # (H, W)
        self._audio = _prepare_audio(audio, name)
        self.num_frames = 0
        self._audio_pos = 0  # samples of audio encoded so far
        self._warned: set[str] = set()
        self._closed = False

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{name}.{secrets.token_hex(4)}.partial")
        timescale = str(_track_timescale(self.rate))
        self._container = None
        try:
            self._container = av.open(str(self._tmp), mode="w", format=fmt, options={
                "movflags": "+faststart",  # index first: browsers start playing at once
                # Reproducible files: no creation time and no "Lavf<version>" encoder tag, so the
                # same frames give the same bytes (see _add_video_stream for the codec's part).
                "fflags": "+bitexact",
                "video_track_timescale": timescale,
                "movie_timescale": timescale,  # edit-list durations exact, not rounded to 1 ms
            })
            self._video = self._add_video_stream(int(crf), preset)
            self._audio_stream = None
            if self._audio is not None:
                samples, rate = self._audio
                layout = "mono" if samples.shape[0] == 1 else "stereo"
                self._audio_stream = self._container.add_stream(AUDIO_CODEC, rate=rate, layout=layout)
                self._audio_stream.codec_context.bit_rate = AUDIO_BITRATE_PER_CHANNEL * samples.shape[0]
                self._audio_stream.codec_context.time_base = Fraction(1, rate)
            self._container.start_encoding()  # opens the encoders: settings fail here, not later
        except BaseException as exc:  # a signal (KeyboardInterrupt, cli.Stopped) too: no file left behind
            self.abort()
            if not isinstance(exc, (av.error.FFmpegError, OSError)):
                raise
            raise VideoError(f"cannot start writing '{name}': {exc}. Check that the folder "
                             f"'{self.path.parent}' is writable and the size {self.width}x"
                             f"{self.height} is reasonable.") from exc
        self._audio_frame_size = AAC_FRAME_SIZE
        if self._audio_stream is not None and self._audio_stream.codec_context.frame_size:
            self._audio_frame_size = int(self._audio_stream.codec_context.frame_size)

    def _add_video_stream(self, crf: int, preset: str):
        from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

        codec = _video_codec()
        stream = self._container.add_stream(codec, rate=self.rate)
        stream.height, stream.width = self._coded_size
        stream.pix_fmt = PIXEL_FORMAT
        ctx = stream.codec_context
        ctx.time_base = 1 / self.rate
        # Tag BT.709 limited range (what the frames are converted with), so players agree.
        ctx.colorspace, ctx.color_range = Colorspace.ITU709, ColorRange.MPEG
        ctx.color_primaries, ctx.color_trc = ColorPrimaries.BT709, ColorTrc.BT709
        # Deterministic encoding: one encoder thread. x264's output depends on its thread count
        # (frame threads change rate control and lookahead), which by default follows the CPU count,
        # so the same frames gave different bytes on different machines. With one thread, fixed
        # crf/preset and the container's +bitexact, the same frames give a byte-identical mp4 for the
        # same PyAV/FFmpeg/x264 build. Not reproducible across builds: x264 writes its version and
        # settings into the stream (an SEI message), and FFmpeg's AAC encoder (float maths, changed
        # between releases, possibly SIMD-dependent) may round the soundtrack differently.
        ctx.thread_count = 1
        if codec == VIDEO_CODEC:
            stream.options = {"crf": str(crf), "preset": preset, "threads": "1"}
        else:  # constant quantiser, roughly matching the crf's quality
            qscale = max(2, min(MPEG4_MAX_QSCALE, round(crf / 6)))
            stream.options = {"flags": "+qscale", "global_quality": str(qscale * FF_QP2LAMBDA)}
        return stream

    # -- writing -------------------------------------------------------------------------------

    @property
    def duration(self) -> float:
        """Seconds of video written so far (``num_frames / fps``)."""
        return float(self.num_frames / self.rate)

    def write(self, frames: Any) -> None:
        """Append frames.

        Args:
            frames: [N, H, W, 3] RGB, uint8 0..255 or float 0..1, as a numpy array or a torch
                tensor on any device, or a list of such batches or of [H, W, 3] frames. Float
                values are clipped to 0..1; NaN counts as 0 (with a warning).

        Raises:
            VideoError: wrong shape, size or dtype (nothing of this call is written), the writer
                is closed, or the encoder failed (the writer is then aborted).
        """
        import av

        if self._closed:
            raise VideoError(f"'{self.path.name}' is already closed; create a new VideoWriter.")
        batches = list(_batches(frames))
        for batch in batches:  # check every batch before encoding any
            _check_batch(batch, self.path.name, (self.height, self.width))
        try:
            for batch in batches:
                for lo in range(0, int(batch.shape[0]), CONVERT_CHUNK):
                    chunk = _to_uint8(batch[lo:lo + CONVERT_CHUNK], self.path.name, self._warned)
                    self._encode_video(_pad_even(chunk))
                    # Audio keeps pace with the video, so the muxer can interleave the two.
                    self._encode_audio(self._audio_samples_at(self.num_frames), final=False)
        except av.error.FFmpegError as exc:
            self.abort()
            raise VideoError(f"encoding '{self.path.name}' failed at frame {self.num_frames}: "
                             f"{exc}.") from exc

    def _encode_video(self, chunk: np.ndarray) -> None:
        """Encode uint8 [n, H, W, 3] (even H, W) frames."""
        import av
        from av.video.reformatter import ColorRange, Colorspace

        for image in chunk:
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame = frame.reformat(format=PIXEL_FORMAT, dst_colorspace=Colorspace.ITU709,
                                   dst_color_range=ColorRange.MPEG)
            frame.pts = self.num_frames  # in the codec's 1/fps time base
            frame.time_base = self._video.codec_context.time_base
            self._container.mux(self._video.encode(frame))
            self.num_frames += 1

    def _audio_samples_at(self, num_frames: int) -> int:
        """Audio samples that fit in ``num_frames`` frames (rounded down)."""
        rate = self._audio[1] if self._audio is not None else 0
        return math.floor(num_frames * rate / self.rate)

    def _encode_audio(self, end: int, final: bool) -> None:
        """Encode audio up to sample ``end``: whole AAC frames only, unless ``final``.

        Past the end of the music, frames are silence.
        """
        if self._audio_stream is None:
            return
        import av

        samples, rate = self._audio
        layout = "mono" if samples.shape[0] == 1 else "stereo"
        size = self._audio_frame_size
        while self._audio_pos + (1 if final else size) <= end:
            lo = self._audio_pos
            n = min(size, end - lo)
            block = np.zeros((samples.shape[0], n), np.float32)
            have = samples[:, lo:lo + n]
            block[:, :have.shape[1]] = have
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            frame.sample_rate = rate
            frame.pts = lo  # in 1/rate
            frame.time_base = Fraction(1, rate)
            self._container.mux(self._audio_stream.encode(frame))
            self._audio_pos += n

    # -- finishing -----------------------------------------------------------------------------

    def close(self) -> Path:
        """Finish the audio, flush the encoders and move the file into place.

        Returns:
            The path of the finished video (closing twice is a no-op).

        Raises:
            VideoError: no frames were written, or the encoder/muxer failed; in both cases no
                file is left behind.
        """
        import av

        if self._closed:
            return self.path
        if self.num_frames == 0:
            self.abort()
            raise VideoError(f"no frames were written to '{self.path.name}'; call write() with "
                             "[N, H, W, 3] frames before close(). Nothing was saved.")
        try:
            self._container.mux(self._video.encode(None))
            if self._audio_stream is not None:
                total = round(Fraction(self.num_frames * self._audio[1]) / self.rate)
                self._encode_audio(total, final=True)
                self._container.mux(self._audio_stream.encode(None))
            self._container.close()
            os.replace(self._tmp, self.path)
        except BaseException as exc:  # a signal during the finish too: the temporary file goes
            self.abort()
            if not isinstance(exc, (av.error.FFmpegError, OSError)):
                raise
            raise VideoError(f"cannot finish '{self.path}': {exc}. Nothing was saved; check the "
                             "free disk space and that the file is not open elsewhere.") from exc
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Stop without saving: close the encoders and delete the temporary file."""
        import av

        self._closed = True
        if self._container is not None:
            with contextlib.suppress(av.error.FFmpegError, OSError):
                self._container.close()  # a half-written file; deleted below either way
            self._container = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(path: str | os.PathLike, frames: Any, fps: float | Fraction, audio: Audio | None = None,
                **kw: Any) -> Path:
    """Write ``frames`` ([N, H, W, 3], see :meth:`VideoWriter.write`) as one mp4.

    ``kw`` goes to :class:`VideoWriter` (``crf``, ``preset``). Returns the path written.
    """
    name = Path(path).name
    batches = list(_batches(frames))
    for batch in batches:
        _check_batch(batch, name, None)
    if sum(int(batch.shape[0]) for batch in batches) == 0:
        raise VideoError(f"frames for '{name}' is empty; give at least one [H, W, 3] frame.")
    height, width = (int(s) for s in batches[0].shape[1:3])
    with VideoWriter(path, fps, width, height, audio=audio, **kw) as writer:
        writer.write(batches)
    return writer.path


# -- frame conversion ---------------------------------------------------------------------------

def _is_torch(x: Any) -> bool:
    return hasattr(x, "detach") and hasattr(x, "is_floating_point")


def _batches(frames: Any) -> Iterator[Any]:
    """``frames`` as [N, H, W, C] batches (numpy or torch); a list's [H, W, C] items get N = 1."""
    if isinstance(frames, (list, tuple)):
        for item in frames:
            if not _is_torch(item):
                item = np.asarray(item)
            yield item[None] if item.ndim == 3 else item
    else:
        yield frames if _is_torch(frames) else np.asarray(frames)


def _check_batch(batch: Any, name: str, size: tuple[int, int] | None) -> None:
    """Raise VideoError unless ``batch`` is [N, H, W, 3] uint8/float of size ``(H, W)``."""
    shape = tuple(int(s) for s in batch.shape)
    if len(shape) != 4 or shape[-1] != 3:
        hint = ""
        if len(shape) == 3 and shape[-1] == 3:
            hint = " A single [H, W, 3] frame needs a leading frame axis: frames[None]."
        elif len(shape) == 4 and shape[-1] == 4:
            hint = " For RGBA frames, drop the alpha channel (frames[..., :3]) or composite it first."
        elif len(shape) == 4 and shape[-1] == 1:
            hint = " For grey frames, repeat the channel: frames.repeat(3, axis=-1)."
        elif len(shape) == 4 and shape[1] in (1, 3, 4):
            hint = " Channels-first [N, 3, H, W] must be moved last: [N, H, W, 3]."
        raise VideoError(f"frames for '{name}' must be [N, H, W, 3] RGB; got shape {list(shape)}.{hint}")
    if _is_torch(batch):
        ok = batch.is_floating_point() or str(batch.dtype) == "torch.uint8"
    else:
        ok = batch.dtype == np.uint8 or batch.dtype.kind == "f"
    if not ok:
        raise VideoError(f"frames for '{name}' must be uint8 (0..255) or float (0..1); got dtype "
                         f"{batch.dtype}. Convert them: to uint8, or to float and divide by 255.")
    if size is not None and shape[0] and shape[1:3] != size:
        raise VideoError(f"frames for '{name}' must be {size[1]}x{size[0]} (width x height, as "
                         f"given to VideoWriter); got {shape[2]}x{shape[1]}. Resize them, or "
                         "write them to a separate video.")


def _to_uint8(chunk: Any, name: str, warned: set[str]) -> np.ndarray:
    """A checked [n, H, W, 3] batch as uint8 numpy; floats clipped to 0..1, NaN -> 0.

    Warns once per ``warned`` set about NaN/inf and about values far outside 0..1.
    """
    if _is_torch(chunk):
        chunk = chunk.detach()
        if not chunk.is_floating_point():
            return np.ascontiguousarray(chunk.cpu().numpy())
        chunk = chunk.float()  # on its own device; half/bfloat16 included
        finite = bool(chunk.isfinite().all())
        if not finite:
            chunk = chunk.nan_to_num(nan=0.0, posinf=1.0, neginf=0.0)
        lo, hi = float(chunk.min()), float(chunk.max())
        out = chunk.clamp(0.0, 1.0).mul(255.0).add(0.5).byte().cpu().numpy()
    else:
        if chunk.dtype == np.uint8:
            return np.ascontiguousarray(chunk)
        chunk = chunk.astype(np.float32, copy=False)
        finite = bool(np.isfinite(chunk).all())
        if not finite:
            chunk = np.nan_to_num(chunk, nan=0.0, posinf=1.0, neginf=0.0)
        lo, hi = float(chunk.min()), float(chunk.max())
        out = (np.clip(chunk, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if not finite and "nan" not in warned:
        warned.add("nan")
        warnings.warn(f"frames for '{name}' contain NaN/inf values; NaN is written as 0 (black) "
                      "and inf clipped to 0..1. The model or VAE may have overflowed (try fp32).",
                      stacklevel=3)
    if (lo < -RANGE_SLACK or hi > 1.0 + RANGE_SLACK) and "range" not in warned:
        warned.add("range")
        hint = (" They look like 0..255: divide by 255 or pass uint8." if hi > 2.0 else
                " They look like -1..1: pass (frames + 1) / 2." if lo < -0.5 else "")
        warnings.warn(f"float frames for '{name}' span {lo:.3g}..{hi:.3g}; expected 0..1, values "
                      f"outside are clipped.{hint}", stacklevel=3)
    return out


def _pad_even(chunk: np.ndarray) -> np.ndarray:
    """Pad uint8 [n, H, W, 3] to even H and W by repeating the last row/column."""
    pad_h, pad_w = chunk.shape[1] % 2, chunk.shape[2] % 2
    if not (pad_h or pad_w):
        return chunk
    return np.pad(chunk, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def _prepare_audio(audio: Audio | None, name: str) -> tuple[np.ndarray, int] | None:
    """``audio`` as (float32 [1 or 2, N] clipped to -1..1, AAC-compatible rate), or None."""
    if audio is None:
        return None
    if not isinstance(audio, Audio):
        raise VideoError(f"audio for '{name}' must be a musedance_core Audio (samples [C, N], "
                         f"sample_rate); got {type(audio).__name__}. Convert a ComfyUI AUDIO dict "
                         "with musedance_core.audio.io.from_comfy_audio.")
    samples = np.asarray(audio.samples, dtype=np.float32)
    if samples.ndim != 2 or samples.shape[0] == 0:
        raise VideoError(f"audio for '{name}' must have samples [channels, samples]; got shape "
                         f"{list(samples.shape)}.")
    if audio.sample_rate not in AAC_SAMPLE_RATES:
        audio = resample(audio, AAC_DEFAULT_RATE)
        samples = audio.samples
    if samples.shape[0] > 2:
        samples = samples.mean(axis=0, keepdims=True)
    samples = np.clip(np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    return np.ascontiguousarray(samples, dtype=np.float32), int(audio.sample_rate)


# -- reading -------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, eq=False)  # eq would compare frame arrays
class VideoInfo:
    """What a video file holds.

    Attributes:
        path: the file.
        frames: uint8 [N, H, W, 3] RGB from :func:`read_video`; ``None`` from :func:`probe_video`.
        fps: frames per second (29.97... for 30000/1001).
        duration: seconds of video.
        num_frames: N.
        width, height: decoded frame size (even for files from VideoWriter, see its padding).
        has_audio: whether there is an audio stream.
        audio_duration: its seconds, or ``None``.
        audio_sample_rate, audio_channels: its format, or ``None``.
        video_codec: e.g. ``"h264"``.
    """

    path: Path
    frames: np.ndarray | None
    fps: float
    duration: float
    num_frames: int
    width: int
    height: int
    has_audio: bool
    audio_duration: float | None
    audio_sample_rate: int | None
    audio_channels: int | None
    video_codec: str


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read a video's format without decoding its frames (``frames`` is ``None``).

    The frame count comes from the header; files without one (mkv, webm, some streams) are
    demuxed, which reads the file but decodes nothing.
    """
    with open_video(path) as container:
        return _info(Path(path), container, frames=None)


def read_video(path: str | os.PathLike) -> VideoInfo:
    """Decode a whole video to uint8 RGB [N, H, W, 3] (BT.601/709 as the file says).

    Memory is N * H * W * 3 bytes; for long videos probe first.
    """
    import av

    path = Path(path)
    with open_video(path) as container:
        info = _info(path, container, frames=None)
        stream = container.streams.video[0]
        buffer = np.empty((info.num_frames, info.height, info.width, 3), np.uint8)
        extra: list[np.ndarray] = []  # frames beyond the counted ones, if a header undercounts
        count = 0
        try:
            for frame in container.decode(stream):
                image = frame.to_ndarray(format="rgb24", src_color_range=frame.color_range or None)
                if image.shape != buffer.shape[1:]:
                    raise VideoError(f"'{path.name}' changes frame size mid-stream "
                                     f"({buffer.shape[2]}x{buffer.shape[1]} -> "
                                     f"{image.shape[1]}x{image.shape[0]}); re-encode it first.")
                if count < len(buffer):
                    buffer[count] = image
                else:
                    extra.append(image)
                count += 1
        except av.error.FFmpegError as exc:
            if count == 0:
                raise VideoError(f"cannot decode '{path.name}': {exc}. The file is corrupt or "
                                 "truncated; re-export it.") from exc
            warnings.warn(f"'{path.name}': decoding stopped early ({exc}); using the {count} "
                          "frames read before the damage.", stacklevel=2)
    frames = np.concatenate([buffer, np.stack(extra)]) if extra else buffer[:count]
    if len(frames) == 0:
        raise VideoError(f"'{path.name}' contains no video frames; give a file with pictures in it.")
    duration = info.duration if count == info.num_frames else count / info.fps
    return dataclasses.replace(info, frames=frames, num_frames=len(frames), duration=duration)


def open_video(path: str | os.PathLike):
    """Open ``path`` for reading, with VideoErrors that say what is wrong."""
    from .audio.io import open_media

    path = Path(path)
    container = open_media(path, VideoError, "video", "mp4, mov, mkv, webm")
    if not container.streams.video:
        container.close()
        raise VideoError(f"'{path.name}' has no video stream. Give a video file (it may be audio only).")
    return container


def _info(path: Path, container, frames: np.ndarray | None) -> VideoInfo:
    """VideoInfo from headers, counting packets if the header gives no frame count."""
    stream = container.streams.video[0]
    audio = container.streams.audio[0] if container.streams.audio else None
    num_frames = int(stream.frames or 0)
    if num_frames <= 0:
        num_frames = _count_packets(container, stream)
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    duration = _stream_seconds(stream)
    if duration is None and container.duration:
        duration = container.duration / AV_TIME_BASE
    fps = float(rate) if rate else (num_frames / duration if duration else 0.0)
    if duration is None:
        duration = num_frames / fps if fps else 0.0
    ctx = stream.codec_context
    return VideoInfo(
        path=path, frames=frames, fps=fps, duration=float(duration), num_frames=num_frames,
        width=int(ctx.width), height=int(ctx.height), has_audio=audio is not None,
        audio_duration=_stream_seconds(audio) if audio is not None else None,
        audio_sample_rate=int(audio.codec_context.sample_rate) if audio is not None else None,
        audio_channels=int(audio.codec_context.channels) if audio is not None else None,
        video_codec=ctx.name,
    )


def _stream_seconds(stream) -> float | None:
    """A stream's duration in seconds from its header (after edit lists), or None."""
    if stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def _count_packets(container, stream) -> int:
    """Frames of ``stream`` counted by demuxing (no decoding)."""
    import av

    count = sum(1 for packet in container.demux(stream) if packet.size)
    try:
        container.seek(0)  # back to the start for a decode that may follow
    except av.error.FFmpegError as exc:
        raise VideoError(f"cannot rewind '{container.name}' after counting its frames: {exc}.") from exc
    return count
