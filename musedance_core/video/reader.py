"""Reading videos: :func:`probe_video` reads the headers (counting packets when a file does not
state its frame count); :func:`read_video` also decodes every frame to uint8 RGB [N, H, W, 3].
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from ..errors import VideoError
from ..notes import note

AV_TIME_BASE = 1_000_000  # FFmpeg's container duration unit (microseconds)


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
            note(f"'{path.name}': decoding stopped early ({exc}); using the {count} "
                 "frames read before the damage.")
    frames = np.concatenate([buffer, np.stack(extra)]) if extra else buffer[:count]
    if len(frames) == 0:
        raise VideoError(f"'{path.name}' contains no video frames; give a file with pictures in it.")
    duration = info.duration if count == info.num_frames else count / info.fps
    return dataclasses.replace(info, frames=frames, num_frames=len(frames), duration=duration)


def open_video(path: str | os.PathLike):
    """Open ``path`` for reading, with VideoErrors that say what is wrong."""
    from ..audio.io import open_media

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
