"""The settings that shape a data set made from videos (recorded in dataset.json; a resumed run must
use the same ones), and the reason a video is left out."""

from __future__ import annotations

import re
from dataclasses import dataclass

GENERATOR = "prepare_dataset"
GENERATOR_VERSION = 2  # 2: shot cuts, beat-aligned clips, subject checks, model masks/parts/captions
VIDEO_EXTS = (".mp4", ".mov", ".webm", ".mkv", ".m4v")
SKIPPED_NAME = "skipped.jsonl"
PROGRESS_NAME = "videos.jsonl"  # one line per finished video: a rerun skips it without decoding
ALIGNS = ("downbeat", "beat", "none")
MASKS_FROM = ("auto", "folder", "model", "static", "none")
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
    # clip selection
    cut_detection: bool = True  # False: every video is one shot (single takes, e.g. stage recordings)
    align: str = "downbeat"  # clips start on a downbeat (or beat; "none": every stride from the shot start)
    min_subject: float = 0.02  # mean subject area (frame fraction) a clip needs; with masks only
    max_subject: float = 0.9  # ... and at most this (a subject filling the frame shows no motion)
    min_visible: float = 0.8  # fraction of a clip's frames in which the subject must be seen
    # models (local folders; see README: Preparing your own videos)
    mask_model: str | None = None  # person / salient-object segmentation (transformers)
    mask_labels: tuple[str, ...] = ()  # its classes that are the subject (default: person-like labels)
    masks_from: str = "auto"  # auto: --masks folder, else --mask-model, else the static-camera fallback
    pose_model: str | None = None  # ViTPose: body-part maps for the stage-1 focus
    caption_model: str | None = None  # a vision-language model for motion captions
    caption_prompt: str | None = None  # file with the captioning instruction (default: the shipped one)
    caption_frames: int = 4  # frames of a clip the captioning model sees

    @property
    def clip_frames(self) -> int:
        return round(self.clip_seconds * self.fps)

    @property
    def mask_source(self) -> str:
        """Where the subject masks come from: folder, model, static (the fallback) or none."""
        if self.masks_from != "auto":
            return self.masks_from
        return "folder" if self.masks else "model" if self.mask_model else "static"

    @property
    def uses_models(self) -> bool:
        return bool(self.mask_model or self.pose_model or self.caption_model)

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
        if self.align not in ALIGNS:
            raise ValueError(f"--align must be one of {', '.join(ALIGNS)}; got {self.align!r}.")
        if self.masks_from not in MASKS_FROM:
            raise ValueError(f"--masks-from must be one of {', '.join(MASKS_FROM)}; got {self.masks_from!r}.")
        if self.masks_from == "folder" and not self.masks:
            raise ValueError("--masks-from folder needs --masks DIR.")
        if self.masks_from == "model" and not self.mask_model:
            raise ValueError("--masks-from model needs --mask-model DIR.")
        if not 0.0 <= self.min_subject < self.max_subject <= 1.0:
            raise ValueError(f"--min-subject and --max-subject must satisfy 0 <= min < max <= 1; got "
                             f"{self.min_subject:g} and {self.max_subject:g}.")
        if not 0.0 <= self.min_visible <= 1.0:
            raise ValueError(f"--min-visible must be in [0, 1]; got {self.min_visible:g}.")
        if not 1 <= self.caption_frames <= 16:
            raise ValueError(f"--caption-frames must be in 1..16; got {self.caption_frames}.")
        if self.caption_hook is not None and not re.fullmatch(r"(.+\.py|[\w.]+):\w+", self.caption_hook):
            raise ValueError(f"--caption-hook must look like 'file.py:function' or 'module:function' (e.g. "
                             f"my_captioner.py:describe); got {self.caption_hook!r}.")
