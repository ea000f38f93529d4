"""The settings that shape a data set made from videos (recorded in dataset.json; a resumed run must
use the same ones), and the reason a video is left out."""

from __future__ import annotations

import re
from dataclasses import dataclass

GENERATOR = "prepare_dataset"
GENERATOR_VERSION = 1
VIDEO_EXTS = (".mp4", ".mov", ".webm", ".mkv", ".m4v")
DEFAULT_CAPTION = "a person dances to the music"
SKIPPED_NAME = "skipped.jsonl"
SIZE_MULTIPLE = 8  # the VAE downsamples by 8
MIN_SIDE = 16
TIME_EPS = 1e-6  # seconds; timestamps closer than this count as equal
MASK_THRESHOLD = 128  # mask pixels at or above this (0..255) are the subject
ID_SLUG_CHARS = 40
ID_HASH_CHARS = 8


class SkipVideo(Exception):
    """A video cannot be used; the message is the reason listed in skipped.jsonl."""


@dataclass(frozen=True)
class PrepareConfig:
    """Settings that shape the data (recorded in dataset.json; a resumed run must use the same)."""

    fps: float = 12.0
    width: int = 256
    height: int = 256
    clip_seconds: float = 4.0
    stride_seconds: float = 4.0
    max_clips_per_video: int | None = None
    val_fraction: float = 0.05
    captions_from: str = "sidecar"
    caption_hook: str | None = None
    masks: str | None = None
    music_encoder: str = "spectral"  # or a folder name in audio_encoders, or a model folder path
    audio_encoders: tuple[str, ...] = ()  # folders holding music encoder folders (e.g. models/audio_encoders)

    @property
    def clip_frames(self) -> int:
        return round(self.clip_seconds * self.fps)

    @property
    def stride_frames(self) -> int:
        return max(1, round(self.stride_seconds * self.fps))

    def check(self) -> None:
        if not 1.0 <= self.fps <= 60.0:
            raise ValueError(f"--fps must be in 1..60; got {self.fps:g}.")
        for name, value in (("width", self.width), ("height", self.height)):
            if value < MIN_SIDE or value % SIZE_MULTIPLE:
                raise ValueError(f"--{name} must be a multiple of {SIZE_MULTIPLE} and >= {MIN_SIDE}; got {value}.")
        if self.clip_frames < 2:
            raise ValueError(f"--clip-seconds gives {self.clip_frames} frame(s) at {self.fps:g} fps; need >= 2.")
        if self.stride_seconds <= 0:
            raise ValueError(f"--stride-seconds must be > 0; got {self.stride_seconds:g}.")
        if self.max_clips_per_video is not None and self.max_clips_per_video < 1:
            raise ValueError(f"--max-clips-per-video must be >= 1; got {self.max_clips_per_video}.")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"--val-fraction must be in [0, 1); got {self.val_fraction:g}.")
        if self.captions_from not in ("sidecar", "none"):
            raise ValueError(f"--captions-from must be 'sidecar' or 'none'; got {self.captions_from!r}.")
        if self.caption_hook is not None and not re.fullmatch(r"(.+\.py|[\w.]+):\w+", self.caption_hook):
            raise ValueError(f"--caption-hook must look like 'file.py:function' or 'module:function' (e.g. "
                             f"my_captioner.py:describe); got {self.caption_hook!r}.")
