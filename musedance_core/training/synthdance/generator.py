"""SynthDance generation: songs rendered and analysed once, clips cut from them, written to the
data-set format (musedance_core/training/dataset.py) in parallel and resumably."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...audio.synth import (
    SYNTH_SAMPLE_RATE,
    Groove,
    SynthTrack,
    render_groove,
)
from ...models.text import fits_text_encoder
from .. import dataset as fmt
from .appearance import (
    BACKGROUNDS,
    CAPTION_TEMPLATES,
    PALETTE,
    SPIN_CLOCKWISE_PHRASES,
    STYLE_PHRASES,
    SUBJECT_NOUNS,
    SUBJECTS,
    ClipSpec,
    contrasting_color,
    jitter_color,
    render_frames,
)
from .motion import STYLES, style_motion, style_params

GENERATOR = "synthdance"
GENERATOR_VERSION = 2  # 2: tilts of 25-38 degrees (were 12-22), spin direction named by the caption, no cut captions


MIN_SONG_SECONDS = 12.0  # the beat tracker's tempogram wants >= 8 s of context
SONG_TAIL_S = 0.3  # clips end this far before the song's end (the last notes are cut off)
BPM_RANGE = (90.0, 150.0)


BEAT_EPS_S = 1e-9


@dataclass(frozen=True)
class SynthDanceConfig:
    """Generation parameters (recorded in dataset.json; a resumed run must use the same)."""

    seed: int = 0
    size: int = 64  # frame width = height, pixels
    fps: float = 12.0
    num_frames: int = 24
    clips_per_song: int = 4
    val_fraction: float = 0.05
    song_seconds: float = 16.0
    val_frames: int | None = None  # frames per validation clip (None: num_frames); longer = steadier metrics

    def frames_for(self, split: str) -> int:
        return self.val_frames if split == "val" and self.val_frames else self.num_frames

    def check(self) -> None:
        if self.size < 16 or self.size % 8:
            raise ValueError(f"size must be a multiple of 8 and >= 16; got {self.size}.")
        if not 1.0 <= self.fps <= 60.0:
            raise ValueError(f"fps must be in 1..60; got {self.fps}.")
        for name, frames in (("frames", self.num_frames), ("val_frames", self.val_frames)):
            if frames is not None and (frames < 2 or frames / self.fps > self.song_length - SONG_TAIL_S - 1.0):
                raise ValueError(f"{name} must be >= 2 and at least 1.3 s shorter than a song "
                                 f"({self.song_length:g} s, see song_seconds); got {frames} frames at {self.fps:g} fps.")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1); got {self.val_fraction}.")
        if self.clips_per_song < 1:
            raise ValueError(f"clips_per_song must be >= 1; got {self.clips_per_song}.")

    @property
    def song_length(self) -> float:
        return max(self.song_seconds, MIN_SONG_SECONDS)


# -- music ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Song:
    """One rendered piece with everything a clip slices out of it (rows at cfg.fps)."""

    index: int
    music_id: str
    split: str
    track: SynthTrack
    music: np.ndarray  # [F, D] SpectralEncoder features of the whole song
    beats: np.ndarray  # [F, K] tracked beat features
    beats_true: np.ndarray  # [F, K] the same features from the exact beats
    tracked_beat_times: np.ndarray
    encoder_id: str


def is_val_song(index: int, val_fraction: float) -> bool:
    """Every 1/val_fraction-th song is held out (evenly spread, the same for any number of clips)."""
    return math.floor((index + 1) * val_fraction) > math.floor(index * val_fraction)


def song_groove(cfg: SynthDanceConfig, index: int) -> tuple[Groove, int]:
    """The groove and render seed of song ``index``."""
    rng = np.random.default_rng([cfg.seed, index, 0])
    bpm = float(rng.uniform(*BPM_RANGE))
    groove = Groove(
        bpm=round(bpm, 2),
        beats_per_bar=4 if rng.random() < 0.7 else 3,
        seconds=cfg.song_length,
        swing=0.0 if rng.random() < 0.6 else round(float(rng.uniform(0.1, 1 / 3)), 3),
        bpm_end=None if rng.random() < 0.85 else round(bpm * float(rng.uniform(0.92, 1.08)), 2),
        intro_bars=0 if rng.random() < 0.8 else int(rng.integers(1, 3)),
        bass=bool(rng.random() < 0.85),
        chords=bool(rng.random() < 0.85),
    )
    return groove, int(rng.integers(0, 2**31 - 1))


def make_song(cfg: SynthDanceConfig, index: int) -> Song:
    """Render song ``index`` and compute its music and beat features over the whole song."""
    from ...audio.analysis import analyze
    from ...audio.beats import beat_frame_features, track_beats
    from ...audio.encoders import SpectralEncoder

    groove, render_seed = song_groove(cfg, index)
    track = render_groove(groove, render_seed)
    analysis = analyze(track.samples, track.sample_rate)
    encoder = SpectralEncoder()
    music = encoder.encode(track.samples, track.sample_rate, cfg.fps, analysis=analysis).features
    tracked = track_beats(track.samples, track.sample_rate, cfg.fps, analysis=analysis)
    beats_true = beat_frame_features(track.beat_times, track.downbeat_times, analysis, cfg.fps, music.shape[0])
    split = "val" if is_val_song(index, cfg.val_fraction) else "train"
    return Song(index, f"s{cfg.seed}-song{index:05d}", split, track, music, tracked.frame_features,
                beats_true, tracked.beat_times, encoder.id)


# -- clips --------------------------------------------------------------------------------------

def clip_spec(cfg: SynthDanceConfig, song: Song, index: int, *, style: str | None = None,
              start_frame: int | None = None, num_frames: int | None = None) -> ClipSpec:
    rng = np.random.default_rng([cfg.seed, index, 1])
    style = style or STYLES[index % len(STYLES)]
    subject = SUBJECTS[int(rng.integers(len(SUBJECTS)))]
    names = list(PALETTE)
    picked = [names[int(i)] for i in rng.choice(len(names), 3, replace=False)]
    colors = tuple(jitter_color(PALETTE[n], rng) for n in picked)
    background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    avoid = [colors[0], colors[1]] if subject in ("robot", "blob") else [colors[0]]
    bg_colors = (contrasting_color(rng, avoid), contrasting_color(rng, avoid))
    size = float(rng.uniform(0.35, 0.5))
    floor_y = float(rng.uniform(0.8, 0.9))
    x0 = float(rng.uniform(0.42, 0.58))
    params = style_params(style, rng, size, x0, floor_y)
    noun = SUBJECT_NOUNS[subject][int(rng.integers(len(SUBJECT_NOUNS[subject])))]
    phrases = SPIN_CLOCKWISE_PHRASES if style == "spin" and params["direction"] < 0 else STYLE_PHRASES[style]
    phrase = phrases[int(rng.integers(len(phrases)))]
    template = CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))]
    article = "an" if picked[0][0] in "aeiou" else "a"
    caption = template.format(a=article, color=picked[0], noun=noun, phrase=phrase, background=background)
    if not fits_text_encoder(caption):  # the text encoder would cut off the dance's words: drop the extras
        caption = CAPTION_TEMPLATES[0].format(a=article, color=picked[0], noun=noun, phrase=phrase)
    num_frames = num_frames or cfg.frames_for(song.split)
    if start_frame is None:
        last = int((cfg.song_length - SONG_TAIL_S) * cfg.fps) - num_frames
        start_frame = int(rng.integers(0, last + 1))
    return ClipSpec(index, style, subject, noun, picked[0], colors, background, bg_colors, size, floor_y,
                    params, caption, start_frame)


def make_clip(cfg: SynthDanceConfig, song: Song, index: int, **overrides) -> tuple[dict, dict, np.ndarray]:
    """Clip ``index`` of the data set (cut from ``song``): (record, arrays, audio samples [N])."""
    import mir_eval  # a training dependency (requirements-dev.txt)

    n = overrides.pop("num_frames", None) or cfg.frames_for(song.split)
    spec = clip_spec(cfg, song, index, num_frames=n, **overrides)
    k0, fps, track = spec.start_frame, cfg.fps, song.track
    t = (k0 + np.arange(n)) / fps  # song time of each frame
    motion = style_motion(spec.style, t, track.beat_times, track.downbeat_times, track.groove.beats_per_bar,
                          spec.params)
    frames, mask = render_frames(spec, motion, cfg.size, cfg.size)
    start, end = k0 / fps, (k0 + n) / fps

    def inside(times: np.ndarray) -> np.ndarray:  # event times within the clip, from its start
        return times[(times >= start - BEAT_EPS_S) & (times < end - BEAT_EPS_S)] - start

    beat_times, downbeat_times = inside(track.beat_times), inside(track.downbeat_times)
    near = track.beat_times[(track.beat_times > start - 1.5) & (track.beat_times < end + 1.5)]
    sr = track.sample_rate
    a = round(start * sr)
    audio = track.samples[a:a + round(n / fps * sr)]
    record = {
        "id": f"sd{cfg.seed}_{index:06d}", "caption": spec.caption, "fps": float(fps), "num_frames": n,
        "width": cfg.size, "height": cfg.size, "split": song.split, "source": GENERATOR, "style": spec.style,
        "bpm": round(float(60.0 / np.median(np.diff(near))), 2), "beats_per_bar": track.groove.beats_per_bar,
        "music_id": song.music_id, "music_encoder": song.encoder_id, "start": round(start, 6),
        "subject": spec.subject, "color": spec.color, "background": spec.background,
        "swing": track.groove.swing, "tracked_beat_f": round(float(mir_eval.beat.f_measure(beat_times, inside(song.tracked_beat_times))), 3),
    }
    arrays = {
        "frames": frames, "mask": mask,
        "music": song.music[k0:k0 + n].astype(np.float32), "beats": song.beats[k0:k0 + n].astype(np.float32),
        "beats_true": song.beats_true[k0:k0 + n].astype(np.float32),
        "beat_times": beat_times.astype(np.float64), "downbeat_times": downbeat_times.astype(np.float64),
        "motion": motion,
    }
    return record, arrays, audio


# -- generation -----------------------------------------------------------------------------------

def clip_id(cfg: SynthDanceConfig, index: int) -> str:
    return f"sd{cfg.seed}_{index:06d}"


def _song_job(job: tuple[SynthDanceConfig, str, int, list[int]]) -> list[dict]:
    """Worker: render one song and write its missing clips; returns their records in order."""
    from ...audio.io import Audio

    cfg, root, song_index, clip_indices = job
    song = make_song(cfg, song_index)
    records = []
    for index in clip_indices:
        record, arrays, samples = make_clip(cfg, song, index)
        audio = Audio(samples[None].astype(np.float32), SYNTH_SAMPLE_RATE, SYNTH_SAMPLE_RATE, record["start"],
                      song.music_id)
        records.append(fmt.write_clip(root, record, arrays, audio=audio))
    return records


def dataset_info(cfg: SynthDanceConfig) -> dict:
    from ...audio.encoders import SPECTRAL_ENCODER_ID
    from ...types import BEAT_FEATURE_NAMES

    return {"generator": GENERATOR, "generator_version": GENERATOR_VERSION, "config": asdict(cfg),
            "music_encoder": SPECTRAL_ENCODER_ID, "beat_features": list(BEAT_FEATURE_NAMES),
            "motion_columns": ["x", "y", "angle_deg", "scale"], "styles": list(STYLES),
            "style_phrases": {k: list(v) for k, v in STYLE_PHRASES.items()},
            "spin_clockwise_phrases": list(SPIN_CLOCKWISE_PHRASES), "subjects": list(SUBJECTS),
            "val_rule": "whole songs: song j is 'val' when floor((j+1)*val_fraction) > floor(j*val_fraction); "
                        "clip i belongs to song i // clips_per_song (record key 'music_id')"}


def generate(cfg: SynthDanceConfig, root: str | Path, num_clips: int, workers: int = 1,
             log=print) -> dict:
    """Write clips 0..num_clips-1 under ``root``, skipping those already in its manifest.

    Returns {"written", "skipped", "seconds", "clips_per_second"}.
    """
    cfg.check()
    root = Path(root)
    info = dataset_info(cfg)
    old = fmt.read_info(root)
    if old is not None and old.get("config") != info["config"]:
        raise ValueError(f"'{root}' holds a data set made with {old.get('config')}; this run asks for "
                         f"{info['config']}. Use another --out folder or the same parameters.")
    if old is not None and old.get("generator_version", 1) != GENERATOR_VERSION:  # other motion or captions
        raise ValueError(f"'{root}' was made by SynthDance generator v{old.get('generator_version', 1)}; this is "
                         f"v{GENERATOR_VERSION}, whose clips differ, and one data set must not mix them. Delete the "
                         "folder (or use another --out) to make it again.")
    fmt.check_same_beat_features(root, old, info)
    fmt.write_info(root, info)
    done = {r["id"] for r in fmt.read_manifest(root)}
    jobs: dict[int, list[int]] = {}
    for i in range(num_clips):
        if clip_id(cfg, i) not in done:
            jobs.setdefault(i // cfg.clips_per_song, []).append(i)
    todo = sum(len(v) for v in jobs.values())
    skipped = num_clips - todo
    log(f"[synthdance] {root}: {num_clips} clips wanted, {skipped} already there, {todo} to make "
        f"({len(jobs)} songs, {workers} worker(s))")
    tasks = [(cfg, str(root), song, clips) for song, clips in sorted(jobs.items())]
    t0 = last = time.perf_counter()
    written = 0
    if workers > 1 and len(tasks) > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers)
        results = pool.imap(_song_job, tasks)
    else:
        pool, results = None, map(_song_job, tasks)
    try:
        for records in results:
            for record in records:
                fmt.append_manifest(root, record)
            written += len(records)
            now = time.perf_counter()
            if now - last > 5.0 or written == todo:
                rate = written / (now - t0)
                log(f"[synthdance] {written}/{todo} clips, {rate:.1f} clips/s, "
                    f"ETA {(todo - written) / max(rate, 1e-9):.0f} s")
                last = now
    finally:
        if pool is not None:
            pool.terminate()
    seconds = time.perf_counter() - t0
    return {"written": written, "skipped": skipped, "seconds": seconds,
            "clips_per_second": written / seconds if seconds > 0 else 0.0}
