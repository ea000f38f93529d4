"""Frames + music -> mp4: :class:`VideoWriter` and :func:`write_video`.

The writer streams frames (numpy or torch, uint8 or float 0..1, any device) to H.264 ``yuv420p``
(plays everywhere; MPEG-4 Part 2 if the PyAV build lacks ``libx264``) with AAC audio, in chunks,
so memory stays bounded however long the video is. The audio is cut or padded with silence to
exactly the video's duration, ``num_frames / fps``; fractional rates are exact (see
``frame_rate``). Files appear atomically: everything goes to a hidden temporary file in the same
folder, renamed over ``path`` only when the video is complete.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..audio.io import Audio, resample
from ..errors import VideoError
from .frame_rate import fps_to_fraction, track_timescale
from .frames import check_batch, frame_batches, pad_even, to_uint8

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
CONVERT_CHUNK = 16  # frames converted to uint8 at a time: bounds the extra memory of a write

# Container format by file extension (all ISO-BMFF, so the same muxer options apply).
_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}
VIDEO_SUFFIXES = tuple(_CONTAINERS)


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
    its neighbour. ``reader.read_video`` returns that even size.

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
        self._said: set[str] = set()  # the notes to_uint8 gave already
        self._closed = False

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{name}.{secrets.token_hex(4)}.partial")
        timescale = str(track_timescale(self.rate))
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
                values are clipped to 0..1; NaN counts as 0 (with a note).

        Raises:
            VideoError: wrong shape, size or dtype (nothing of this call is written), the writer
                is closed, or the encoder failed (the writer is then aborted).
        """
        import av

        if self._closed:
            raise VideoError(f"'{self.path.name}' is already closed; create a new VideoWriter.")
        batches = list(frame_batches(frames))
        for batch in batches:  # check every batch before encoding any
            check_batch(batch, self.path.name, (self.height, self.width))
        try:
            for batch in batches:
                for lo in range(0, int(batch.shape[0]), CONVERT_CHUNK):
                    chunk = to_uint8(batch[lo:lo + CONVERT_CHUNK], self.path.name, self._said)
                    self._encode_video(pad_even(chunk))
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
    batches = list(frame_batches(frames))
    for batch in batches:
        check_batch(batch, name, None)
    if sum(int(batch.shape[0]) for batch in batches) == 0:
        raise VideoError(f"frames for '{name}' is empty; give at least one [H, W, 3] frame.")
    height, width = (int(s) for s in batches[0].shape[1:3])
    with VideoWriter(path, fps, width, height, audio=audio, **kw) as writer:
        writer.write(batches)
    return writer.path


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

