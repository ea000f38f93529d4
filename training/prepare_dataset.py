"""Build a MuseDance training data set from a folder of dance videos with sound.

    python training/prepare_dataset.py --videos my_dances --out data/dances --fps 12 --size 256 \\
        --clip-seconds 4 --stride-seconds 4 --workers 2
    python training/prepare_dataset.py --videos my_dances --out data/dances --width 320 --height 512 \\
        --masks my_dances_densepose --caption-hook my_captioner:describe

Every video (mp4, mov, webm, mkv, m4v; found recursively) is read once, streaming:

* Frames are resampled to ``--fps`` by timestamp (output frame k shows the source frame whose time
  is nearest k / fps, so variable-frame-rate files work), rotated as the file's display matrix says,
  resized to cover ``width x height`` and centre-cropped.
* The soundtrack is analysed once as a whole (music features, ``--music-encoder``, and tracked
  beats), then sliced per clip, so clip edges have no edge effects; feature rows are aligned with
  frames (row k = frame k).
* Clips of ``--clip-seconds`` start every ``--stride-seconds``; ``--max-clips-per-video N`` keeps N
  of them spread evenly over the video. Each clip's audio span is saved as ``audio/<id>.flac``.

Captions, per clip, first found wins:
  1. ``--captions-from sidecar`` (default): ``<video>.txt`` (the whole text) or ``<video>.json``
     holding ``{"caption": "..."}`` or ``{"captions": [{"start": s, "end": e, "text": "..."}]}``
     (the entry overlapping the clip most; ``caption`` is the fallback). ``<video>`` is the file
     name with or without its extension (``dance.txt`` or ``dance.mp4.txt``).
  2. ``--caption-hook module:function``: a local function ``(frames, fps) -> str`` called per clip
     with ``frames`` uint8 [T, H, W, 3] (the clip as saved) and ``fps``. ``module`` is imported
     (the current folder is on the path), once per worker process, and must not need the network
     at import or call; it runs in the worker processes, so keep it light or use ``--workers 1``.
  3. ``DEFAULT_CAPTION``.

Masks (optional, ``--masks DIR``): for ``<videos>/<sub>/<stem>.<ext>`` either a mask video
``DIR/<sub>/<stem>.<any video ext>`` (resampled by timestamp like the video) or a folder of
per-source-frame PNGs ``DIR/<sub>/<stem>/00001.png ...`` (sorted by name; PNG i is source frame i).
White (>= 128) is the subject. Videos without a mask get no ``mask`` array (the trainer uses all ones).

Split: whole videos are 'val' when a hash of their relative path falls below ``--val-fraction``
(deterministic; a video keeps its split when others are added).

Resuming: a rerun skips clips already in ``manifest.jsonl`` (a video whose clips are all there is
not decoded again). ``dataset.json`` records the settings; a rerun with different ones is refused.
Unusable videos (unreadable, no audio stream, silent, too short, bad sidecar or mask) are skipped
and listed in ``skipped.jsonl`` (rewritten each run) with the reason; a summary is printed.
The format is in ``musedance_core/training/dataset.py``.
"""

from __future__ import annotations


import argparse
import functools
import hashlib
import importlib
import json
import math
import os
import re
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from musedance_core.training import dataset as fmt

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
        if self.caption_hook is not None and not re.fullmatch(r"[\w.]+:\w+", self.caption_hook):
            raise ValueError(f"--caption-hook must look like 'module:function' (e.g. my_captioner:describe); "
                             f"got {self.caption_hook!r}.")


# -- names, splits, sidecars ------------------------------------------------------------------------

def find_videos(folder: Path, exclude: tuple[Path, ...] = ()) -> list[Path]:
    """Video files under ``folder`` (recursive, sorted), skipping hidden files and ``exclude`` folders."""
    excluded = [e.resolve() for e in exclude]
    found = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in VIDEO_EXTS or not path.is_file() or path.name.startswith("."):
            continue
        resolved = path.resolve()
        if any(resolved.is_relative_to(e) for e in excluded):
            continue
        found.append(path)
    return found


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def video_key(folder: Path, video: Path) -> str:
    """The video's path relative to the videos folder, with '/' separators."""
    return video.relative_to(folder).as_posix()


def video_split(key: str, val_fraction: float) -> str:
    """'val' when the hash of ``key`` maps below ``val_fraction`` in [0, 1), else 'train'."""
    u = int(_hash(key)[:8], 16) / 2**32
    return "val" if u < val_fraction else "train"


def clip_id(key: str, start_frame: int) -> str:
    """``<slug>-<hash of the relative path>-<start frame>``: unique and stable per video and start."""
    stem = key.rsplit(".", 1)[0]
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", stem)[-ID_SLUG_CHARS:].strip("_") or "video"
    return f"{slug}-{_hash(key)[:ID_HASH_CHARS]}-{start_frame:06d}"


def _sidecar(video: Path, ext: str) -> Path | None:
    for candidate in (video.with_suffix(ext), video.with_name(video.name + ext)):
        if candidate.is_file():
            return candidate
    return None


def read_sidecar(video: Path) -> dict | None:
    """The caption sidecar of ``video`` as {"caption": str | None, "captions": [(start, end, text)]}, or None.

    Raises SkipVideo when a sidecar exists but cannot be used.
    """
    txt, js = _sidecar(video, ".txt"), _sidecar(video, ".json")
    if js is not None:
        try:
            data = json.loads(js.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SkipVideo(f"caption sidecar '{js.name}' is not valid JSON ({exc}).") from exc
        if not isinstance(data, dict):
            raise SkipVideo(f"caption sidecar '{js.name}' must be an object with 'caption' or 'captions'.")
        spans = []
        for n, item in enumerate(data.get("captions") or []):
            try:
                spans.append((float(item["start"]), float(item["end"]), str(item["text"]).strip()))
            except (KeyError, TypeError, ValueError) as exc:
                raise SkipVideo(f"caption sidecar '{js.name}': captions[{n}] needs numeric 'start', 'end' "
                                f"and a 'text'; got {item!r}.") from exc
        caption = data.get("caption")
        return {"caption": str(caption).strip() if caption else None, "captions": spans}
    if txt is not None:
        try:
            text = txt.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SkipVideo(f"caption sidecar '{txt.name}' cannot be read as UTF-8 text ({exc}).") from exc
        return {"caption": text or None, "captions": []}
    return None


def sidecar_caption(sidecar: dict | None, start: float, end: float) -> str | None:
    """The timed caption overlapping [start, end) most, else the whole-video caption, else None."""
    if sidecar is None:
        return None
    best, best_overlap = None, 0.0
    for s, e, text in sidecar["captions"]:
        overlap = min(e, end) - max(s, start)
        if text and overlap > best_overlap:
            best, best_overlap = text, overlap
    return best or sidecar["caption"]


def load_hook(spec: str | None) -> Callable[[np.ndarray, float], str] | None:
    """Import ``module:function`` (the current folder is on the path)."""
    if spec is None:
        return None
    module_name, func_name = spec.split(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"--caption-hook: cannot import '{module_name}' ({exc}); put {module_name}.py in "
                         "the current folder or install it.") from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ValueError(f"--caption-hook: '{module_name}' has no function '{func_name}'.")  # noqa: TRY004 (a user setting)
    return func


def find_mask(masks: Path, key: str) -> Path | None:
    """The mask video or PNG folder for video ``key`` under ``masks``, or None."""
    stem = masks / key.rsplit(".", 1)[0]
    if stem.is_dir():
        return stem
    for ext in VIDEO_EXTS:
        for candidate in (stem.with_name(stem.name + ext), stem.with_name(stem.name + ext.upper())):
            if candidate.is_file():
                return candidate
    return None


# -- frames -----------------------------------------------------------------------------------------

def cover_size(width: int, height: int, out_w: int, out_h: int) -> tuple[int, int]:
    """Size (w, h) that covers ``out_w x out_h`` keeping the aspect ratio (fit_image's rule)."""
    scale = max(out_w / width, out_h / height)
    return max(out_w, round(width * scale)), max(out_h, round(height * scale))


def centre_crop(image: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    h, w = image.shape[:2]
    top, left = (h - out_h) // 2, (w - out_w) // 2
    return image[top:top + out_h, left:left + out_w]


class FrameConverter:
    """Decoded av.VideoFrame -> uint8 [H, W, 3] (or [H, W] for masks) at the output size.

    Scaling is done by FFmpeg (area filter) straight from the decoder's pixel format, rotation
    by the frame's display matrix, then the centre crop.
    """

    def __init__(self, out_w: int, out_h: int, gray: bool = False):
        self.out_w, self.out_h, self.gray = out_w, out_h, gray
        self._plan = None

    def __call__(self, frame) -> np.ndarray:
        if self._plan is None:
            turns = round((getattr(frame, "rotation", 0) or 0) / 90) % 4
            w, h = (frame.height, frame.width) if turns % 2 else (frame.width, frame.height)
            cw, ch = cover_size(w, h, self.out_w, self.out_h)
            self._plan = (turns, (ch, cw) if turns % 2 else (cw, ch))
        turns, (sw, sh) = self._plan
        image = frame.to_ndarray(width=sw, height=sh, format="gray" if self.gray else "rgb24",
                                 interpolation="AREA", src_color_range=frame.color_range or None)
        if turns:
            image = np.rot90(image, k=turns)
        return np.ascontiguousarray(centre_crop(image, self.out_w, self.out_h))


def resampled_frames(path: Path, fps: float, limit: int, convert: FrameConverter) -> Iterator[tuple[int, np.ndarray]]:
    """Stream ``(source frame index, converted frame)`` for output frames k = 0.. limit-1 at ``fps``.

    Output frame k shows the source frame whose timestamp (from the first frame) is nearest k / fps;
    only picked frames are converted. Raises SkipVideo on an unreadable file.
    """
    import av

    from musedance_core.errors import MuseDanceError
    from musedance_core.video.reader import open_video

    try:
        container = open_video(path)
    except MuseDanceError as exc:
        raise SkipVideo(str(exc)) from exc
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or 30)
        k, t0, prev = 0, None, None  # prev: (time, index, frame)
        index = -1
        try:
            for index, frame in enumerate(container.decode(stream)):
                t = frame.time if frame.time is not None else index / rate
                if t0 is None:
                    t0 = t
                t -= t0
                while k < limit and k / fps <= t + TIME_EPS:
                    tk = k / fps
                    pick = prev if prev is not None and tk - prev[0] < t - tk - TIME_EPS else (t, index, frame)
                    yield pick[1], convert(pick[2])
                    k += 1
                if k >= limit:
                    return
                prev = (t, index, frame)
        except av.error.FFmpegError as exc:
            if prev is None:
                raise SkipVideo(f"cannot decode '{path.name}': {exc}.") from exc
        if prev is None:
            raise SkipVideo(f"'{path.name}' has no decodable video frames.")
        while k < limit and k / fps < prev[0] + 1.0 / rate - TIME_EPS:  # the last frame's display span
            yield prev[1], convert(prev[2])
            k += 1


def png_masks(folder: Path, picks: Iterator[tuple[int, np.ndarray]], out_w: int, out_h: int
              ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Attach PNG masks (one per source frame, sorted by name) to ``picks``: (index, frame, mask 0/1)."""
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    for index, frame in picks:
        if index >= len(files):
            raise SkipVideo(f"mask folder '{folder.name}' has {len(files)} PNGs; source frame {index + 1} "
                            "has none (one PNG per source frame is expected).")
        with Image.open(files[index]) as img:
            gray = np.asarray(img.convert("L").resize(cover_size(*img.size, out_w, out_h), Image.Resampling.BILINEAR))
        yield index, frame, (centre_crop(gray, out_w, out_h) >= MASK_THRESHOLD).astype(np.uint8)


def video_masks(path: Path, picks: Iterator[tuple[int, np.ndarray]], fps: float, limit: int,
                out_w: int, out_h: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Attach masks from a mask video, resampled by timestamp like the video."""
    masks = resampled_frames(path, fps, limit, FrameConverter(out_w, out_h, gray=True))
    for index, frame in picks:
        item = next(masks, None)
        if item is None:
            raise SkipVideo(f"mask video '{path.name}' is shorter than its video.")
        yield index, frame, (item[1] >= MASK_THRESHOLD).astype(np.uint8)


# -- one video --------------------------------------------------------------------------------------

@dataclass
class VideoResult:
    key: str
    records: list[dict] = field(default_factory=list)
    existing: int = 0
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def plan_starts(total: int, cfg: PrepareConfig) -> list[int]:
    """Start frames of the clips of a video with ``total`` usable frames."""
    starts = list(range(0, total - cfg.clip_frames + 1, cfg.stride_frames))
    n = cfg.max_clips_per_video
    if n is not None and len(starts) > n:
        picks = sorted(set(np.linspace(0, len(starts) - 1, n).round().astype(int).tolist()))
        starts = [starts[i] for i in picks]
    return starts


_HOOKS: dict[str, Callable] = {}


def _hook(cfg: PrepareConfig):
    if cfg.caption_hook is None:
        return None
    if cfg.caption_hook not in _HOOKS:
        _HOOKS[cfg.caption_hook] = load_hook(cfg.caption_hook)
    return _HOOKS[cfg.caption_hook]


def process_video(cfg: PrepareConfig, root: Path, videos: Path, video: Path, done: set[str]) -> VideoResult:
    """Write the missing clips of one video; never raises for a bad video (see ``VideoResult.skipped``)."""
    t0 = time.perf_counter()
    result = VideoResult(video_key(videos, video))
    try:
        _process(cfg, root, videos, video, done, result)
    except SkipVideo as exc:
        result.skipped = str(exc)
    except (ValueError, OSError) as exc:  # MuseDanceError, AudioError, VideoError are ValueErrors
        result.skipped = f"{type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - t0
    return result


@functools.lru_cache(maxsize=1)
def _encoder(name: str, dirs: tuple[str, ...]):
    """The music encoder, loaded once per worker process (a learned one has ~100 M parameters)."""
    from musedance_core.audio.backbones.selection import music_encoder

    return music_encoder(name, dirs)


def _process(cfg: PrepareConfig, root: Path, videos: Path, video: Path, done: set[str], result: VideoResult) -> None:
    from musedance_core.audio.analysis import analyze
    from musedance_core.audio.beats import track_beats
    from musedance_core.audio.io import MAX_AUDIO_SECONDS, Audio, load_audio
    from musedance_core.errors import MuseDanceError
    from musedance_core.video.reader import probe_video

    key = result.key
    try:
        info = probe_video(video)
    except MuseDanceError as exc:
        raise SkipVideo(f"unreadable video: {exc}") from exc
    if not info.has_audio:
        raise SkipVideo("no audio stream (MuseDance learns from the music; give videos with sound).")
    sidecar = read_sidecar(video) if cfg.captions_from == "sidecar" else None
    mask_src = find_mask(Path(cfg.masks), key) if cfg.masks else None
    if cfg.masks and mask_src is None:
        result.notes.append("no mask found; clips have no mask")

    seconds = info.duration
    if seconds > MAX_AUDIO_SECONDS:
        result.notes.append(f"only the first {MAX_AUDIO_SECONDS / 60:.0f} minutes are used")
        seconds = MAX_AUDIO_SECONDS
    try:
        audio = load_audio(video, mono=True, duration=seconds)
    except MuseDanceError as exc:
        raise SkipVideo(f"unreadable audio: {exc}") from exc
    samples, sr = audio.samples[0], audio.sample_rate
    # Usable frames: the video's frames at fps (by its header) and the soundtrack's feature rows.
    total = min(math.ceil(info.duration * cfg.fps - TIME_EPS), round(audio.duration * cfg.fps))
    if total < cfg.clip_frames:
        raise SkipVideo(f"too short: {min(info.duration, audio.duration):.2f} s of video with sound; a clip "
                        f"needs {cfg.clip_seconds:g} s (--clip-seconds).")
    starts = plan_starts(total, cfg)
    ids = {s: clip_id(key, s) for s in starts}
    todo = [s for s in starts if ids[s] not in done]
    result.existing = len(starts) - len(todo)
    if not todo:
        return

    analysis = analyze(samples, sr)
    if analysis.is_silent:
        raise SkipVideo(f"silent audio (loudest moment {analysis.peak_dbfs:.0f} dBFS).")
    encoder = _encoder(cfg.music_encoder, cfg.audio_encoders)
    music = encoder.encode(samples, sr, cfg.fps, analysis=analysis).features  # [F, D]
    track = track_beats(samples, sr, cfg.fps, analysis=analysis)
    beats = track.frame_features  # [F, K]
    total = min(total, len(music), len(beats))
    todo = [s for s in todo if s + cfg.clip_frames <= total]
    if not todo:
        return
    split = video_split(key, cfg.val_fraction)
    hook = _hook(cfg)

    limit = todo[-1] + cfg.clip_frames
    picks = resampled_frames(video, cfg.fps, limit, FrameConverter(cfg.width, cfg.height))
    if mask_src is not None and mask_src.is_dir():
        items = png_masks(mask_src, picks, cfg.width, cfg.height)
    elif mask_src is not None:
        items = video_masks(mask_src, picks, cfg.fps, limit, cfg.width, cfg.height)
    else:
        items = ((i, f, None) for i, f in picks)

    n = cfg.clip_frames
    window: deque = deque(maxlen=n)  # the last n frames (and masks)
    wanted = iter(todo)
    start, k = next(wanted), -1
    for k, (_, frame, mask) in enumerate(items):
        window.append((frame, mask))
        if k != start + n - 1:
            continue
        frames = np.stack([f for f, _ in window])  # [T, H, W, 3]
        masks = np.stack([m for _, m in window]) if mask_src is not None else None
        record, arrays, clip_audio = make_clip(cfg, key, start, frames, masks, music, beats, track, samples, sr,
                                               split, sidecar, hook, encoder.id)
        audio_obj = Audio(clip_audio[None].astype(np.float32), sr, audio.source_sample_rate, record["start"], key)
        result.records.append(fmt.write_clip(root, record, arrays, audio=audio_obj))
        start = next(wanted, None)
        if start is None:
            break
    if start is not None:
        result.notes.append(f"the video ended at frame {k + 1} of {limit}; "
                            f"{len(todo) - len(result.records)} clip(s) not made")


def make_clip(cfg: PrepareConfig, key: str, start: int, frames: np.ndarray, masks: np.ndarray | None,
              music: np.ndarray, beats: np.ndarray, track, samples: np.ndarray, sr: int, split: str,
              sidecar: dict | None, hook, encoder_id: str) -> tuple[dict, dict, np.ndarray]:
    """Record, arrays and audio samples [N] of the clip of ``frames`` [T, H, W, 3] starting at frame ``start``."""
    n = len(frames)
    t_start, t_end = start / cfg.fps, (start + n) / cfg.fps

    def inside(times: np.ndarray) -> np.ndarray:
        times = np.asarray(times, np.float64)
        return times[(times >= t_start - TIME_EPS) & (times < t_end - TIME_EPS)] - t_start

    caption, source = sidecar_caption(sidecar, t_start, t_end), "sidecar"
    if caption is None and hook is not None:
        try:
            caption, source = hook(frames, cfg.fps), "hook"
        except Exception as exc:  # the user's own code: report it for this video, keep going
            raise SkipVideo(f"--caption-hook failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(caption, str):
            raise SkipVideo(f"--caption-hook returned {type(caption).__name__}, not str.")
        caption = caption.strip()
    if not caption:
        caption, source = DEFAULT_CAPTION, "default"
    near = track.beat_times[(track.beat_times > t_start - 1.5) & (track.beat_times < t_end + 1.5)]
    bpm = float(60.0 / np.median(np.diff(near))) if len(near) >= 2 else float(track.tempo)
    a = round(t_start * sr)
    record = {
        "id": clip_id(key, start), "caption": caption, "fps": float(cfg.fps), "num_frames": n,
        "width": cfg.width, "height": cfg.height, "split": split, "source": GENERATOR, "style": None,
        "bpm": round(bpm, 2), "beats_per_bar": int(track.beats_per_bar), "music_id": key,
        "music_encoder": encoder_id, "start": round(t_start, 6), "video": key, "caption_source": source,
        "has_mask": masks is not None,
    }
    arrays = {
        "frames": frames, "music": music[start:start + n].astype(np.float32),
        "beats": beats[start:start + n].astype(np.float32),
        "beat_times": inside(track.beat_times), "downbeat_times": inside(track.downbeat_times),
    }
    if masks is not None:
        arrays["mask"] = masks.astype(np.uint8)
    return record, arrays, samples[a:a + round(n / cfg.fps * sr)]


def _video_job(job: tuple) -> VideoResult:
    cfg, root, videos, video, done = job
    return process_video(cfg, Path(root), Path(videos), Path(video), done)


# -- the run ----------------------------------------------------------------------------------------

def dataset_info(cfg: PrepareConfig, videos: Path) -> dict:
    from musedance_core.types import BEAT_FEATURE_NAMES

    return {"generator": GENERATOR, "generator_version": GENERATOR_VERSION, "config": asdict(cfg),
            "videos": str(videos), "music_encoder": cfg.music_encoder, "beat_features": list(BEAT_FEATURE_NAMES),
            "default_caption": DEFAULT_CAPTION,
            "val_rule": "whole videos: 'val' when int(sha1(relative path)[:8], 16) / 2**32 < val_fraction"}


def prepare(cfg: PrepareConfig, videos: str | Path, root: str | Path, workers: int = 1, log=print) -> dict:
    """Make the data set under ``root`` from the videos under ``videos``; returns run statistics.

    Returns {"videos", "written", "existing", "skipped": [{"video", "reason"}], "seconds", "clips_per_second"}.
    """
    cfg.check()
    videos, root = Path(videos), Path(root)
    if not videos.is_dir():
        raise ValueError(f"--videos '{videos}' is not a folder.")
    if cfg.masks and not Path(cfg.masks).is_dir():
        raise ValueError(f"--masks '{cfg.masks}' is not a folder.")
    _hook(cfg)  # fail now, not in every worker
    info = json.loads(json.dumps(dataset_info(cfg, videos)))  # as stored (tuples become lists)
    old = fmt.read_info(root)
    if old is not None and old.get("config") != info["config"]:
        changed = {k: (old.get("config", {}).get(k), v) for k, v in info["config"].items()
                   if old.get("config", {}).get(k) != v}
        raise ValueError(f"'{root}' holds a data set made with other settings (old, new): {changed}. "
                         "Use another --out folder or the same settings.")
    fmt.check_same_beat_features(root, old, info)
    fmt.write_info(root, info)
    exclude = (root,) + ((Path(cfg.masks),) if cfg.masks else ())
    files = find_videos(videos, exclude)
    done = {r["id"] for r in fmt.read_manifest(root)}
    skipped_path = root / SKIPPED_NAME
    skipped_path.write_text("")
    log(f"[prepare] {videos}: {len(files)} videos, {len(done)} clips already in {root}, {workers} worker(s)")
    tasks = []
    for video in files:
        prefix = clip_id(video_key(videos, video), 0)[:-6]
        tasks.append((cfg, str(root), str(videos), str(video), {d for d in done if d.startswith(prefix)}))
    if workers > 1 and len(tasks) > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(min(workers, len(tasks)))
        results = pool.imap(_video_job, tasks)
    else:
        pool, results = None, map(_video_job, tasks)
    t0 = time.perf_counter()
    written = existing = 0
    skipped: list[dict] = []
    try:
        for n, result in enumerate(results, 1):
            for record in result.records:
                fmt.append_manifest(root, record)
            written += len(result.records)
            existing += result.existing
            if result.skipped:
                entry = {"video": result.key, "reason": result.skipped}
                skipped.append(entry)
                with open(skipped_path, "a") as f:
                    f.write(json.dumps(entry) + "\n")
                log(f"[prepare] {n}/{len(tasks)} {result.key}: skipped: {result.skipped}")
            else:
                notes = f" ({'; '.join(result.notes)})" if result.notes else ""
                log(f"[prepare] {n}/{len(tasks)} {result.key}: {len(result.records)} new clip(s), "
                    f"{result.existing} already there, {result.seconds:.1f} s{notes}")
    finally:
        if pool is not None:
            pool.terminate()
    seconds = time.perf_counter() - t0
    return {"videos": len(files), "written": written, "existing": existing, "skipped": skipped,
            "seconds": seconds, "clips_per_second": written / seconds if seconds > 0 else 0.0}


def summary(root: Path, stats: dict) -> str:
    records = fmt.read_manifest(root)
    splits = Counter(r["split"] for r in records)
    vids = {s: len({r["video"] for r in records if r["split"] == s and "video" in r}) for s in fmt.SPLITS}
    reasons = Counter(s["reason"].split(":")[0].split(" (")[0] for s in stats["skipped"])
    lines = [
        (f"[prepare] wrote {stats['written']} clips in {stats['seconds']:.1f} s "
         f"({stats['clips_per_second']:.2f} clips/s); {stats['existing']} were already there."),
        (f"[prepare] {root}: {len(records)} clips: train {splits['train']} ({vids['train']} videos), "
         f"val {splits['val']} ({vids['val']} videos)."),
    ]
    if stats["skipped"]:
        lines.append(f"[prepare] skipped {len(stats['skipped'])} of {stats['videos']} videos "
                     f"({', '.join(f'{k}: {v}' for k, v in reasons.most_common())}); see {root / SKIPPED_NAME}.")
    if records and not splits["val"]:
        lines.append("[prepare] note: no validation clips (too few videos for --val-fraction).")
    return "\n".join(lines)


# -- command line -----------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=Path, required=True, help="folder of dance videos with sound (searched recursively)")
    p.add_argument("--out", type=Path, required=True, help="data-set folder (created; a rerun resumes)")
    p.add_argument("--fps", type=float, default=12.0, help="frame rate of the clips")
    p.add_argument("--size", type=int, default=256, help="frame width and height (unless --width/--height)")
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--height", type=int, default=None)
    p.add_argument("--clip-seconds", type=float, default=4.0)
    p.add_argument("--stride-seconds", type=float, default=4.0, help="start of one clip to the next")
    p.add_argument("--max-clips-per-video", type=int, default=None, help="keep at most N clips per video, spread evenly")
    p.add_argument("--val-fraction", type=float, default=0.05, help="fraction of videos held out as 'val'")
    p.add_argument("--workers", type=int, default=2, help="parallel processes (one video at a time each)")
    p.add_argument("--captions-from", choices=("sidecar", "none"), default="sidecar")
    p.add_argument("--caption-hook", default=None, help="module:function, (frames uint8 [T,H,W,3], fps) -> str")
    p.add_argument("--masks", type=Path, default=None, help="folder of mask videos or per-frame PNG folders")
    p.add_argument("--music-encoder", default="spectral",
                   help="spectral (default), a folder name in --audio-encoders, or a MERT/HuBERT/wav2vec2/CLAP folder")
    p.add_argument("--audio-encoders", type=Path, action="append", default=[], metavar="DIR",
                   help="folder of music encoder folders, e.g. ComfyUI/models/audio_encoders (repeatable)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    width, height = args.width or args.size, args.height or args.size
    cfg = PrepareConfig(fps=args.fps, width=width, height=height, clip_seconds=args.clip_seconds,
                        stride_seconds=args.stride_seconds, max_clips_per_video=args.max_clips_per_video,
                        val_fraction=args.val_fraction, captions_from=args.captions_from,
                        caption_hook=args.caption_hook,
                        masks=str(args.masks.resolve()) if args.masks else None, music_encoder=args.music_encoder,
                        audio_encoders=tuple(str(d.resolve()) for d in args.audio_encoders))
    try:
        stats = prepare(cfg, args.videos, args.out, workers=max(1, args.workers))
    except ValueError as exc:
        raise SystemExit(f"prepare_dataset: {exc}") from exc
    except KeyboardInterrupt:
        raise SystemExit("prepare_dataset: interrupted; run the same command again to resume.") from None
    print(summary(args.out, stats))


if __name__ == "__main__":
    main()
