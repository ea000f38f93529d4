"""One video to clips. Its soundtrack is analysed once (music features, beats); a first pass over
its frames finds the shot cuts (and, for the static-camera fallback, each shot's background); the
clips are planned inside shots on the downbeats (selection.py); a second pass cuts them, gives
each its subject masks (a mask folder, a segmentation model or the fallback), refuses those whose
subject is missing, tiny or fills the frame, adds body-part maps (a pose model) and a caption
(sidecar, hook, captioning model, else a template from the music and the motion), and writes it
with its slice of music, beats and audio."""

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
from .config import GENERATOR, TIME_EPS, PrepareConfig, SkipVideo
from .frames import FrameConverter, png_masks, resampled_frames, video_masks
from .selection import plan_clips, shots_from_cuts, subject_check
from .shots import ShotCutDetector
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

BACKGROUND_FRAMES = 48  # frames per shot the static-camera background is the median of


class BackgroundSamples:
    """Frames spread evenly over a shot of unknown length, at most 2 * BACKGROUND_FRAMES of them:
    every frame at first, then every other one kept and the step doubled each time it fills up."""

    def __init__(self):
        self.frames: list[np.ndarray] = []
        self.step, self.seen = 1, 0

    def add(self, frame: np.ndarray) -> None:
        if self.seen % self.step == 0:
            self.frames.append(frame)
            if len(self.frames) >= 2 * BACKGROUND_FRAMES:
                self.frames, self.step = self.frames[::2], self.step * 2
        self.seen += 1


@dataclass
class VideoResult:
    key: str
    records: list[dict] = field(default_factory=list)
    existing: int = 0
    planned: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> clips
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


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


@functools.lru_cache(maxsize=1)
def models(cfg: PrepareConfig) -> Models:
    """The model folders ``cfg`` names, loaded once per process (on the GPU when there is one)."""
    from ...devices import pick_device
    from .captions import load_caption_model, read_prompt
    from .poses import load_pose_model
    from .subject_masks import load_mask_model

    device = pick_device("auto") if cfg.uses_models else "cpu"
    mask = (load_mask_model(cfg.mask_model, device, list(cfg.mask_labels) or None)
            if cfg.mask_model and cfg.mask_source == "model" else None)
    pose = load_pose_model(cfg.pose_model, device) if cfg.pose_model else None
    caption = load_caption_model(cfg.caption_model, device) if cfg.caption_model else None
    prompt = read_prompt(cfg.caption_prompt) if caption is not None else ""
    return Models(mask, pose, caption, prompt)


@dataclass(frozen=True)
class Models:
    mask: object | None
    pose: object | None
    caption: object | None
    prompt: str


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
    source = cfg.mask_source
    mask_src = find_mask(Path(cfg.masks), key) if cfg.masks and source == "folder" else None
    if source == "folder" and mask_src is None:
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
    analysis = analyze(samples, sr)
    if analysis.is_silent:
        raise SkipVideo(f"silent audio (loudest moment {analysis.peak_dbfs:.0f} dBFS).")
    track = track_beats(samples, sr, cfg.fps, analysis=analysis)
    encoder = _encoder(cfg.music_encoder, cfg.audio_encoders)
    music = encoder.encode(samples, sr, cfg.fps, analysis=analysis).features  # [F, D]
    beats = track.frame_features  # [F, K]
    total = min(total, len(music), len(beats))

    # pass 1: shot cuts (and, for the static-camera fallback, each shot's background frames)
    convert = FrameConverter(cfg.width, cfg.height)
    # one frame of lookahead: a new look must last past one frame, so a flash on the beat is no cut
    detector, cuts = ShotCutDetector(lookahead=1), []
    samples_of: dict[int, BackgroundSamples] = {}
    decode = cfg.cut_detection or source == "static"  # else nothing to look for: one shot, no decoding
    shot, k, previous = 0, -1 if decode else total - 1, None
    for k, (_, frame) in enumerate(resampled_frames(video, cfg.fps, total, convert) if decode else ()):
        if cfg.cut_detection and detector.push(frame) and k > 1:  # the answer is about frame k - 1
            cuts.append(k - 1)
            shot += 1
        if source == "static" and previous is not None:
            samples_of.setdefault(shot, BackgroundSamples()).add(previous)
        previous = frame
    if source == "static" and previous is not None:
        samples_of.setdefault(shot, BackgroundSamples()).add(previous)
    total = min(total, k + 1)
    shots = shots_from_cuts(cuts, total)
    plan = plan_clips(shots, track.beat_times, track.downbeat_times, cfg)
    if not plan:
        longest = max((b - a for a, b in shots), default=0) / cfg.fps
        raise SkipVideo(f"no shot is long enough for a clip: the longest is {longest:.1f} s ({len(shots)} shots); "
                        f"a clip needs {cfg.clip_seconds:g} s (--clip-seconds).")
    todo = [(start, s) for start, s in plan if clip_id(key, start) not in done]
    result.existing = len(plan) - len(todo)
    result.planned = len(plan)
    if not todo:
        return
    backgrounds = {}
    if source == "static":
        from .subject_masks import estimate_background, is_static_camera

        for s, kept in samples_of.items():
            stack = np.stack(kept.frames)
            background = estimate_background(stack)
            backgrounds[s] = background if len(stack) >= 3 and is_static_camera(stack, background) else None
    split = video_split(key, cfg.val_fraction)
    hook = caption_hook(cfg)
    loaded = models(cfg)

    # pass 2: the planned clips
    n = cfg.clip_frames
    limit = todo[-1][0] + n
    picks = resampled_frames(video, cfg.fps, limit, FrameConverter(cfg.width, cfg.height))
    if mask_src is not None and mask_src.is_dir():
        items = png_masks(mask_src, picks, cfg.width, cfg.height)
    elif mask_src is not None:
        items = video_masks(mask_src, picks, cfg.fps, limit, cfg.width, cfg.height)
    else:
        items = ((i, f, None) for i, f in picks)
    window: deque = deque(maxlen=n)  # the last n frames (and masks)
    wanted = iter(todo)
    (start, s), k = next(wanted), -1
    made = 0
    for k, (_, frame, mask) in enumerate(items):
        window.append((frame, mask))
        if k != start + n - 1:
            continue
        frames = np.stack([f for f, _ in window])  # [T, H, W, 3]
        masks, how = clip_masks(frames, [m for _, m in window], source, loaded, backgrounds.get(s))
        reason, area = subject_check(masks, cfg) if masks is not None else (None, None)
        if reason is not None:
            kind = reason.split(" (")[0]  # counted by kind, without the clip's own figures
            result.rejected[kind] = result.rejected.get(kind, 0) + 1
        else:
            parts = None
            if loaded.pose is not None:
                from .poses import mask_boxes, part_maps

                boxes = mask_boxes(masks) if masks is not None else None
                parts = part_maps(loaded.pose.keypoints(frames, boxes), masks, frames.shape[1:3])
            record, arrays, clip_audio = make_clip(cfg, key, start, frames, masks, music, beats, track, samples, sr,
                                                   split, sidecar, hook, encoder.id, loaded, parts)
            record |= {"shot": s, "mask_source": how, "subject_area": None if area is None else round(area, 4)}
            audio_obj = Audio(clip_audio[None].astype(np.float32), sr, audio.source_sample_rate, record["start"], key)
            result.records.append(fmt.write_clip(root, record, arrays, audio=audio_obj))
        made += 1
        nxt = next(wanted, None)
        if nxt is None:
            start = None
            break
        start, s = nxt
    if start is not None:
        result.notes.append(f"the video ended at frame {k + 1} of {limit}; {len(todo) - made} clip(s) not made")
    if sum(result.rejected.values()):
        result.notes.append("rejected clips: " + ", ".join(f"{r}: {c}" for r, c in sorted(result.rejected.items())))
    if source == "static" and not any(b is not None for b in backgrounds.values()):
        result.notes.append("the camera moves, so the static-camera fallback made no masks (give --mask-model)")


def clip_masks(frames: np.ndarray, given: list, source: str, loaded: Models, background) -> tuple[np.ndarray | None, str]:
    """The clip's subject masks uint8 [T, H, W] (or None) and where they came from."""
    if source == "folder" and given[0] is not None:
        return np.stack(given), "folder"
    if source == "model" and loaded.mask is not None:
        return loaded.mask.masks(frames), "model"
    if source == "static" and background is not None:
        from .subject_masks import static_camera_masks

        return static_camera_masks(frames, background), "static"
    return None, "none"


def make_clip(cfg: PrepareConfig, key: str, start: int, frames: np.ndarray, masks: np.ndarray | None,
              music: np.ndarray, beats: np.ndarray, track, samples: np.ndarray, sr: int, split: str,
              sidecar: dict | None, hook, encoder_id: str, loaded: Models | None = None,
              parts: np.ndarray | None = None) -> tuple[dict, dict, np.ndarray]:
    """Record, arrays and audio samples [N] of the clip of ``frames`` [T, H, W, 3] starting at frame ``start``."""
    n = len(frames)
    t_start, t_end = start / cfg.fps, (start + n) / cfg.fps

    def inside(times: np.ndarray) -> np.ndarray:
        times = np.asarray(times, np.float64)
        return times[(times >= t_start - TIME_EPS) & (times < t_end - TIME_EPS)] - t_start

    near = track.beat_times[(track.beat_times > t_start - 1.5) & (track.beat_times < t_end + 1.5)]
    bpm = float(60.0 / np.median(np.diff(near))) if len(near) >= 2 else float(track.tempo)
    a = round(t_start * sr)
    clip_audio = samples[a:a + round(n / cfg.fps * sr)]
    caption, source = sidecar_caption(sidecar, t_start, t_end), "sidecar"
    if caption is None and hook is not None:
        try:
            caption, source = hook(frames, cfg.fps), "hook"
        except Exception as exc:  # the user's own code: report it for this video, keep going
            raise SkipVideo(f"--caption-hook failed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(caption, str):
            raise SkipVideo(f"--caption-hook returned {type(caption).__name__}, not str.")
        caption = caption.strip()
    if not caption and loaded is not None and loaded.caption is not None:
        shown = np.linspace(0, n - 1, min(cfg.caption_frames, n)).round().astype(int)
        caption, source = loaded.caption.caption(frames[shown], loaded.prompt), "model"
    if not caption:  # what the clip measurably does: tempo, energy, the subject's moves
        from .template_captions import subject_motion, template_caption

        caption, source = template_caption(subject_motion(frames, masks), bpm, clip_audio), "template"
    record = {
        "id": clip_id(key, start), "caption": caption, "fps": float(cfg.fps), "num_frames": n,
        "width": cfg.width, "height": cfg.height, "split": split, "source": GENERATOR, "style": None,
        "bpm": round(bpm, 2), "beats_per_bar": int(track.beats_per_bar), "music_id": key,
        "music_encoder": encoder_id, "start": round(t_start, 6), "video": key, "caption_source": source,
        "has_mask": masks is not None, "has_parts": parts is not None,
    }
    arrays = {
        "frames": frames, "music": music[start:start + n].astype(np.float32),
        "beats": beats[start:start + n].astype(np.float32),
        "beat_times": inside(track.beat_times), "downbeat_times": inside(track.downbeat_times),
    }
    if masks is not None:
        arrays["mask"] = masks.astype(np.uint8)
    if parts is not None:
        arrays["parts"] = parts.astype(np.uint8)
    return record, arrays, clip_audio


def video_job(job: tuple) -> VideoResult:
    cfg, root, videos, video, done = job
    return process_video(cfg, Path(root), Path(videos), Path(video), done)
