"""One video to clips: its soundtrack analysed once (music features, beats), its frames streamed,
and each planned clip written with its slice of music, beats, audio, caption and mask."""

from __future__ import annotations

import functools
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import dataset as fmt
from .config import DEFAULT_CAPTION, GENERATOR, TIME_EPS, PrepareConfig, SkipVideo
from .frames import FrameConverter, png_masks, resampled_frames, video_masks
from .sources import (
    clip_id,
    find_mask,
    load_hook,
    read_sidecar,
    sidecar_caption,
    video_key,
    video_split,
)

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


def caption_hook(cfg: PrepareConfig):
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
    from ...audio.backbones.selection import music_encoder

    return music_encoder(name, dirs)


def _process(cfg: PrepareConfig, root: Path, videos: Path, video: Path, done: set[str], result: VideoResult) -> None:
    from ...audio.analysis import analyze
    from ...audio.beats import track_beats
    from ...audio.io import MAX_AUDIO_SECONDS, Audio, load_audio
    from ...errors import MuseDanceError
    from ...video.reader import probe_video

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
    hook = caption_hook(cfg)

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


def video_job(job: tuple) -> VideoResult:
    cfg, root, videos, video, done = job
    return process_video(cfg, Path(root), Path(videos), Path(video), done)
