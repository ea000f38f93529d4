"""SynthDance: a procedurally generated music-dance data set with exact beats and exact motion.

    python training/synth_dance.py --out data/synthdance --clips 2000 --size 64 --fps 12 --frames 24 \\
        --seed 0 --workers 2 --val-fraction 0.05
    python training/synth_dance.py --out data/synthdance --preview preview.mp4   # also writes preview.png

Each clip is a simple subject (circle, square, star, triangle, stick figure, blob, robot) with random
colours on a plain, two-tone or gradient background, moving in one of ``STYLES`` locked to the beats
of procedural music (``musedance_core.audio.synth``), with a caption that names subject, colour and
style. Clips are cut from "songs": each song is rendered once, analysed once (music features and
tracked beats over the whole song, then sliced, so clips have no edge effects), and gives
``--clips-per-song`` clips with different subjects, styles and start times. Whole songs go to the
validation split, so validation music is never heard in training.

Everything is a pure function of (seed, index): clip ``i`` is the same whatever ``--clips`` is, a
rerun skips the clips already in the manifest, and ``--workers`` processes songs in parallel.
The format is in ``musedance_core/training/dataset.py``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from musedance_core.audio.synth import (
    SYNTH_SAMPLE_RATE,
    Groove,
    SynthTrack,
    render_groove,
)
from musedance_core.training import dataset as fmt

GENERATOR = "synthdance"
GENERATOR_VERSION = 2  # 2: tilts of 25-38 degrees (were 12-22), spin direction named by the caption, no cut captions
SUPERSAMPLE = 4  # subjects are drawn at 4x and box-filtered down (antialiasing)
MIN_SONG_SECONDS = 12.0  # the beat tracker's tempogram wants >= 8 s of context
SONG_TAIL_S = 0.3  # clips end this far before the song's end (the last notes are cut off)
BPM_RANGE = (90.0, 150.0)
SPIN_BEATS = 1.5  # a spin takes 1.5 beats from the downbeat, then the subject is still
MIN_CONTRAST = 150.0  # RGB distance between the subject and its background
BEAT_EPS_S = 1e-9

STYLES = ("bounce", "sway", "spin", "jump", "pulse", "tilt")
STYLE_PHRASES = {  # the first phrase is the canonical one
    "bounce": ("bounces on every beat", "bounces to the beat", "hops up and down on each beat"),
    "sway": ("sways left and right each bar", "sways from side to side, one bar each way",
             "sways side to side with the bars"),
    "spin": ("spins on the downbeats", "spins around on every downbeat", "does a quick spin at the start of each bar"),
    "jump": ("jumps on every other beat", "jumps high every second beat", "leaps up on every other beat"),
    "pulse": ("pulses bigger on every beat", "grows bigger on each beat", "throbs bigger and smaller with the beat"),
    "tilt": ("tilts left and right on every beat", "rocks from side to side on each beat",
             "tips back and forth on every beat"),
}
# A spin's direction is the caption's: the phrases above turn counter-clockwise, these clockwise. A direction
# the caption does not fix would leave the model to average both turns into no turn at all.
SPIN_CLOCKWISE_PHRASES = ("spins clockwise on the downbeats", "spins clockwise on every downbeat",
                          "does a quick clockwise spin at each bar's start")
CAPTION_TEMPLATES = (
    "{a} {color} {noun} {phrase}",
    "the {color} {noun} {phrase}",
    "{a} {color} {noun} {phrase} to the music",
    "{a} {color} {noun} on a {background} background {phrase}",
    "{a} little {color} {noun} {phrase}",
    "a dancing {color} {noun}: it {phrase}",
)
SUBJECT_NOUNS = {
    "circle": ("circle", "ball", "disc"), "square": ("square", "box", "block"), "star": ("star",),
    "triangle": ("triangle",), "figure": ("stick figure", "little figure", "figure"),
    "blob": ("blob", "blob creature"), "robot": ("robot", "toy robot"),
}
SUBJECTS = tuple(SUBJECT_NOUNS)
PALETTE = {  # named subject colours; each clip jitters its colour a little
    "red": (215, 40, 40), "orange": (245, 135, 25), "yellow": (245, 210, 40), "green": (45, 165, 65),
    "teal": (25, 155, 150), "blue": (40, 85, 215), "purple": (125, 55, 185), "pink": (240, 120, 175),
    "white": (242, 242, 242), "black": (28, 28, 28), "brown": (125, 75, 35), "gray": (128, 128, 128),
}
BACKGROUNDS = ("plain", "two-tone", "gradient")


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
    from musedance_core.audio.analysis import analyze
    from musedance_core.audio.beats import beat_frame_features, track_beats
    from musedance_core.audio.encoders import SpectralEncoder

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


# -- motion ---------------------------------------------------------------------------------------

def event_index_and_phase(t: np.ndarray, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the last event at or before ``t`` and the phase in [0, 1) since it (pulse_and_phase's)."""
    from musedance_core.audio.beats import pulse_and_phase

    _, phase = pulse_and_phase(t, events, 1.0)
    # np.interp is exact at an event and never below it just after, so 'right' agrees with the phase.
    return np.searchsorted(events, t, side="right") - 1, phase


def style_motion(style: str, t: np.ndarray, beat_times: np.ndarray, downbeat_times: np.ndarray,
                 beats_per_bar: int, params: dict) -> np.ndarray:
    """Subject track at times ``t`` (s): float32 [T, 4] = (x, y, angle, scale).

    x, y: subject centre as fractions of the frame width / height (y down); angle: degrees,
    counter-clockwise; scale: relative to the subject's rest size. ``params``: x0, y0 (rest
    position), amp (style amplitude: frame fraction, degrees or scale gain), direction (+-1, spin).
    """
    k, phi = event_index_and_phase(t, beat_times)
    m, psi = event_index_and_phase(t, downbeat_times)
    return motion_from_phases(style, k, phi, m, psi, beats_per_bar, params)


def motion_from_phases(style: str, k: np.ndarray, phi: np.ndarray, m: np.ndarray, psi: np.ndarray,
                       beats_per_bar: int, params: dict) -> np.ndarray:
    """``style_motion`` from beat index ``k`` and phase ``phi``, bar index ``m`` and phase ``psi`` ([T] each)."""
    n = len(phi)
    x, y = np.full(n, params["x0"], float), np.full(n, params["y0"], float)
    angle, scale = np.zeros(n), np.ones(n)
    amp = params["amp"]
    if style == "bounce":  # a hop per beat: on the floor at each beat, apex half way
        y = y - amp * 4 * phi * (1 - phi)
    elif style == "jump":  # a higher hop over two beats: lands on every other beat
        u = (np.mod(k, 2) + phi) / 2
        y = y - amp * 4 * u * (1 - u)
    elif style == "sway":  # one bar each way: extremes (and stillness) on the downbeats
        x = x + amp * np.cos(np.pi * (m + psi))
    elif style == "spin":  # a full turn eased over SPIN_BEATS beats from each downbeat, still otherwise
        progress = np.clip(psi * beats_per_bar / SPIN_BEATS, 0.0, 1.0)
        angle = params["direction"] * 360.0 * progress**2 * (3 - 2 * progress)
        angle = np.where(progress >= 1.0, 0.0, angle)  # a full turn is the rest pose again
    elif style == "pulse":  # grows to its largest on each beat
        scale = scale + amp * ((1 + np.cos(2 * np.pi * phi)) / 2) ** 2
    elif style == "tilt":  # a pendulum: extreme tilt (and stillness) on each beat, alternating sides
        angle = amp * np.cos(np.pi * (k + phi))
    else:
        raise ValueError(f"style must be one of {STYLES}; got {style!r}.")
    return np.stack([x, y, angle, scale], axis=1).astype(np.float32)


def phases_from_features(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(k, phi, m, psi) from beat features [T, K] (``beats`` or ``beats_true``): phases from the
    sin/cos columns, indices by counting wraps from 0 at the first frame (parity is relative)."""
    from musedance_core.types import BEAT_FEATURE_NAMES

    col = {name: i for i, name in enumerate(BEAT_FEATURE_NAMES)}
    out = []
    for prefix in ("beat", "bar"):
        phase = np.mod(np.arctan2(features[:, col[f"{prefix}_phase_sin"]],
                                  features[:, col[f"{prefix}_phase_cos"]]) / (2 * np.pi), 1.0)
        index = np.concatenate([[0], np.cumsum(np.diff(phase) < -0.5)])
        out += [index, phase]
    return tuple(out)


def style_params(style: str, rng: np.random.Generator, size: float, x0: float, floor_y: float) -> dict:
    """Random amplitude for a style, kept inside the frame."""
    half_width = 0.55 * size
    if style == "bounce":
        amp = rng.uniform(0.10, 0.16)
    elif style == "jump":
        amp = min(rng.uniform(0.18, 0.26), floor_y - size - 0.02)
    elif style == "sway":
        amp = min(rng.uniform(0.12, 0.20), x0 - half_width - 0.02, 0.98 - half_width - x0)
    elif style == "pulse":
        amp = rng.uniform(0.18, 0.30)
    elif style == "tilt":
        amp = rng.uniform(25.0, 38.0)  # a lean the 16x16 latent of a 64 px frame still shows
    else:
        amp = 0.0
    return {"x0": x0, "y0": floor_y - size / 2, "amp": float(amp), "direction": float(rng.choice([-1.0, 1.0]))}


STYLE_CHANNEL = {"bounce": 1, "jump": 1, "sway": 0, "spin": 2, "pulse": 3, "tilt": 2}  # motion column


def style_templates(beat_features: np.ndarray, beats_per_bar: int) -> dict[str, list[tuple[int, np.ndarray]]]:
    """Unit-amplitude motion of each style on the frames of ``beat_features`` [T, K]:
    style -> [(motion column, template [T]), ...] variants (jump parity, spin direction)."""
    k, phi, m, psi = phases_from_features(beat_features)
    unit = {"x0": 0.0, "y0": 0.0, "amp": 1.0, "direction": 1.0}
    out = {}
    for style in STYLES:
        ch = STYLE_CHANNEL[style]
        shifts = (0, 1) if style == "jump" else (0,)
        temps = [(ch, motion_from_phases(style, k + d, phi, m, psi, beats_per_bar, unit)[:, ch].astype(np.float64))
                 for d in shifts]
        if style == "spin":
            temps.append((ch, -temps[0][1]))
        out[style] = temps
    return out


def classify_motion(motion: np.ndarray, beat_features: np.ndarray, beats_per_bar: int
                    ) -> tuple[str, dict[str, float]]:
    """Which style a track [T, 4] (x, y, angle, scale) shows, given the music's beat features [T, K].

    Returns (style, {style: score}); score = max |Pearson r| of the style's motion column with its
    unit templates (0 for a still column). Works on ground-truth tracks and on tracks estimated
    from a generated video, with exact (``beats_true``) or tracked (``beats``) features.
    """
    scores = {}
    for style, variants in style_templates(beat_features, beats_per_bar).items():
        best = 0.0
        for ch, template in variants:
            a = motion[:, ch].astype(np.float64)
            if a.std() < 1e-6 or template.std() < 1e-9:
                continue
            best = max(best, abs(float(np.corrcoef(a, template)[0, 1])))
        scores[style] = best
    return max(scores, key=scores.get), scores


# -- appearance -----------------------------------------------------------------------------------

Part = tuple[np.ndarray, tuple[int, int, int]]  # polygon [N, 2] in subject units (height 1, y down), RGB


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 40) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], axis=1)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def _limb(p: tuple[float, float], q: tuple[float, float], width: float) -> list[np.ndarray]:
    """A thick line with round ends: a quad and two discs."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    d = q - p
    nrm = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-9) * width / 2
    quad = np.stack([p + nrm, q + nrm, q - nrm, p - nrm])
    return [quad, _ellipse(*p, width / 2, width / 2, 16), _ellipse(*q, width / 2, width / 2, 16)]


def _eyes(cx: float, cy: float, gap: float, r: float, color) -> list[Part]:
    return [(_ellipse(cx - gap, cy, r, r, 16), color), (_ellipse(cx + gap, cy, r, r, 16), color)]


def subject_parts(kind: str, colors: list[tuple[int, int, int]]) -> list[Part]:
    """Polygons of a subject, about 1 unit tall and centred on (0, 0). Eyes make rotation visible."""
    main, second, third = colors
    eye = (250, 250, 250) if _luma(main) < 140 else (25, 25, 25)
    if kind == "circle":
        return [(_ellipse(0, 0, 0.5, 0.5, 48), main)] + _eyes(0, -0.1, 0.15, 0.06, eye)
    if kind == "square":
        return [(_rect(-0.43, -0.43, 0.43, 0.43), main)] + _eyes(0, -0.12, 0.16, 0.06, eye)
    if kind == "star":
        a = -np.pi / 2 + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 0.53, 0.23)
        star = np.stack([r * np.cos(a), r * np.sin(a) + 0.04], axis=1)
        return [(star, main)] + _eyes(0, 0.0, 0.08, 0.045, eye)
    if kind == "triangle":
        return [(np.array([[0, -0.5], [0.56, 0.47], [-0.56, 0.47]]), main)] + _eyes(0, 0.12, 0.13, 0.055, eye)
    if kind == "figure":
        limbs = [_limb((0, -0.22), (0, 0.12), 0.11), _limb((0, -0.12), (-0.28, -0.3), 0.085),
                 _limb((0, -0.12), (0.28, -0.3), 0.085), _limb((0, 0.12), (-0.17, 0.46), 0.09),
                 _limb((0, 0.12), (0.17, 0.46), 0.09)]
        parts = [(poly, main) for limb in limbs for poly in limb]
        return parts + [(_ellipse(0, -0.36, 0.14, 0.14, 32), main)] + _eyes(0, -0.38, 0.055, 0.03, eye)
    if kind == "blob":
        return ([(_ellipse(0, 0.14, 0.3, 0.34), main), (_ellipse(0, -0.26, 0.2, 0.2), main),
                 (_ellipse(0, 0.2, 0.17, 0.2), second)] + _eyes(0, -0.28, 0.08, 0.045, eye))
    if kind == "robot":
        eye = (250, 250, 250) if _luma(second) < 140 else (25, 25, 25)
        parts = [(_rect(-0.17, 0.28, -0.07, 0.5), second), (_rect(0.07, 0.28, 0.17, 0.5), second),
                 (_rect(-0.35, -0.1, -0.24, 0.16), second), (_rect(0.24, -0.1, 0.35, 0.16), second),
                 (_rect(-0.24, -0.12, 0.24, 0.3), main), (_rect(-0.015, -0.48, 0.015, -0.38), third),
                 (_ellipse(0, -0.48, 0.045, 0.045, 16), third), (_rect(-0.17, -0.4, 0.17, -0.14), second),
                 (_rect(-0.11, -0.31, -0.05, -0.25), eye), (_rect(0.05, -0.31, 0.11, -0.25), eye)]
        return parts
    raise ValueError(f"subject must be one of {SUBJECTS}; got {kind!r}.")


def _luma(rgb) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _jitter(rgb, rng: np.random.Generator, amount: int = 18) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(np.asarray(rgb) + rng.integers(-amount, amount + 1, 3), 0, 255))


def _contrasting(rng: np.random.Generator, avoid: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    """A random background colour at least MIN_CONTRAST (RGB distance) from every colour in ``avoid``."""
    for _ in range(200):
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        if all(np.linalg.norm(np.subtract(c, a)) >= MIN_CONTRAST for a in avoid):
            return c
    return (255, 255, 255) if _luma(avoid[0]) < 128 else (0, 0, 0)


def background_image(kind: str, colors: list, floor_y: float, width: int, height: int) -> np.ndarray:
    """uint8 [height, width, 3] background: plain, two-tone (wall over floor) or vertical gradient."""
    top, bottom = np.asarray(colors[0], float), np.asarray(colors[1], float)
    rows = (np.arange(height) + 0.5) / height
    if kind == "plain":
        w = np.zeros(height)
    elif kind == "two-tone":
        w = (rows >= floor_y).astype(float)
    elif kind == "gradient":
        w = rows
    else:
        raise ValueError(f"background must be one of {BACKGROUNDS}; got {kind!r}.")
    column = top[None] * (1 - w[:, None]) + bottom[None] * w[:, None]
    return np.ascontiguousarray(np.broadcast_to(column[:, None], (height, width, 3)).round().astype(np.uint8))


@dataclass(frozen=True)
class ClipSpec:
    index: int
    style: str
    subject: str
    noun: str
    color: str
    colors: tuple
    background: str
    bg_colors: tuple
    size: float  # subject height, fraction of the frame height
    floor_y: float
    params: dict
    caption: str
    start_frame: int  # in the song, at cfg.fps


def clip_spec(cfg: SynthDanceConfig, song: Song, index: int, *, style: str | None = None,
              start_frame: int | None = None, num_frames: int | None = None) -> ClipSpec:
    rng = np.random.default_rng([cfg.seed, index, 1])
    style = style or STYLES[index % len(STYLES)]
    subject = SUBJECTS[int(rng.integers(len(SUBJECTS)))]
    names = list(PALETTE)
    picked = [names[int(i)] for i in rng.choice(len(names), 3, replace=False)]
    colors = tuple(_jitter(PALETTE[n], rng) for n in picked)
    background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    avoid = [colors[0], colors[1]] if subject in ("robot", "blob") else [colors[0]]
    bg_colors = (_contrasting(rng, avoid), _contrasting(rng, avoid))
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
    if caption_too_long(caption):  # the text encoder would cut off the dance's words: drop the extras
        caption = CAPTION_TEMPLATES[0].format(a=article, color=picked[0], noun=noun, phrase=phrase)
    num_frames = num_frames or cfg.frames_for(song.split)
    if start_frame is None:
        last = int((cfg.song_length - SONG_TAIL_S) * cfg.fps) - num_frames
        start_frame = int(rng.integers(0, last + 1))
    return ClipSpec(index, style, subject, noun, picked[0], colors, background, bg_colors, size, floor_y,
                    params, caption, start_frame)


def caption_too_long(caption: str) -> bool:
    """Whether the tiny models' byte tokenizer would cut ``caption`` (its end, where the dance is named)."""
    from musedance_core.models.text import MAX_TOKENS, ByteTokenizer

    return len(ByteTokenizer().encode(caption)) > MAX_TOKENS - 2


# -- rendering ------------------------------------------------------------------------------------

def render_frames(spec: ClipSpec, motion: np.ndarray, width: int, height: int,
                  supersample: int = SUPERSAMPLE) -> tuple[np.ndarray, np.ndarray]:
    """Draw the subject along ``motion`` [T, 4]: (frames uint8 [T, H, W, 3], mask uint8 [T, H, W] 0/1).

    Polygons are filled at ``supersample`` x the size and box-filtered down; the mask is the
    subject's coverage >= 1/2.
    """
    from PIL import Image, ImageDraw

    s = supersample
    bg = Image.fromarray(background_image(spec.background, spec.bg_colors, spec.floor_y, width * s, height * s))
    parts = subject_parts(spec.subject, list(spec.colors))
    frames = np.empty((len(motion), height, width, 3), np.uint8)
    masks = np.empty((len(motion), height, width), np.uint8)
    for i, (x, y, angle, scale) in enumerate(motion.astype(np.float64)):
        a = math.radians(angle)
        # counter-clockwise on screen with y pointing down
        rot = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]]) * (spec.size * height * s * scale)
        offset = np.array([x * width * s, y * height * s])
        img, mask = bg.copy(), Image.new("L", bg.size, 0)
        draw, mdraw = ImageDraw.Draw(img), ImageDraw.Draw(mask)
        for poly, color in parts:
            pts = [tuple(p) for p in (poly @ rot.T + offset)]
            draw.polygon(pts, fill=color)
            mdraw.polygon(pts, fill=255)
        frames[i] = np.asarray(img.reduce(s))
        masks[i] = np.asarray(mask.reduce(s)) >= 128
    return frames, masks


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
    from musedance_core.audio.io import Audio

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
    from musedance_core.audio.encoders import SPECTRAL_ENCODER_ID
    from musedance_core.types import BEAT_FEATURE_NAMES

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


# -- preview --------------------------------------------------------------------------------------

def _label(img: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    draw.rectangle((0, 0, 6 * len(text) + 3, 11), fill=(0, 0, 0))
    draw.text((2, 0), text, fill=(255, 255, 255))
    return np.asarray(pil)


def write_preview(cfg: SynthDanceConfig, path: str | Path, songs: int = 3, seconds: float = 6.0,
                  tile: int = 128) -> tuple[Path, Path]:
    """An mp4 with sound: for each of ``songs`` songs, every style side by side over the same span,
    with a beat strip (white flash = beat, red = downbeat); and a PNG contact sheet of the first song.
    """
    from musedance_core.audio.io import Audio
    from musedance_core.video import write_video

    path = Path(path)
    n = round(seconds * cfg.fps)
    up = max(1, tile // cfg.size)
    video, audio, sheet_rows = [], [], []
    for j in range(songs):
        song = make_song(cfg, j)
        intro = song.track.groove.intro_bars * song.track.groove.beats_per_bar
        start = math.floor(song.track.beat_times[min(intro, len(song.track.beat_times) - 1)] * cfg.fps)
        tiles, clip_audio = [], None
        for s, style in enumerate(STYLES):
            _, arrays, clip_audio = make_clip(cfg, song, 10_000 * (j + 1) + s, style=style,
                                                   start_frame=start, num_frames=n)
            big = arrays["frames"].repeat(up, axis=1).repeat(up, axis=2)
            tiles.append(np.stack([_label(f, style) for f in big]))
            if j == 0:
                sheet_rows.append((style, arrays["frames"], arrays["beat_times"], arrays["downbeat_times"]))
        grid = np.concatenate([np.concatenate(tiles[:3], axis=2), np.concatenate(tiles[3:], axis=2)], axis=1)
        feats = arrays["beats_true"]
        strip = np.zeros((n, 10, grid.shape[2], 3), np.float32)
        strip[:] = (feats[:, 0, None, None, None] * np.array([255, 255, 255])
                    + feats[:, 3, None, None, None] * np.array([0, -255, -255]))
        grid = np.concatenate([grid, strip.clip(0, 255).astype(np.uint8)], axis=1)
        video.append(grid)
        audio.append(clip_audio)
    frames = np.concatenate(video)
    samples = np.concatenate(audio)[None].astype(np.float32)
    write_video(path, frames, cfg.fps, audio=Audio(samples, SYNTH_SAMPLE_RATE, SYNTH_SAMPLE_RATE))
    png = path.with_suffix(".png")
    contact_sheet(sheet_rows, png, cfg.fps, columns=min(n, 20))
    return path, png


def contact_sheet(rows: list[tuple], path: Path, fps: float, columns: int = 24, zoom: int = 2) -> Path:
    """Frames side by side, one row per (label, frames [T,H,W,3], beat_times, downbeat_times); the frame
    nearest each downbeat has a red border, the one nearest each other beat a yellow one."""
    from PIL import Image, ImageDraw

    h, w = (zoom * d for d in rows[0][1].shape[1:3])
    pad, label_w = 3, 48
    sheet = Image.new("RGB", (label_w + columns * (w + 2 * pad), len(rows) * (h + 2 * pad)), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    for r, (label, frames, beat_times, downbeat_times) in enumerate(rows):
        y = r * (h + 2 * pad)
        draw.text((2, y + h // 2 - 5), label, fill=(255, 255, 255))
        on_beat = set(np.round(np.asarray(beat_times) * fps).astype(int).tolist())
        on_downbeat = set(np.round(np.asarray(downbeat_times) * fps).astype(int).tolist())
        for c in range(min(columns, len(frames))):
            x = label_w + c * (w + 2 * pad)
            color = (230, 30, 30) if c in on_downbeat else (240, 220, 40) if c in on_beat else (40, 40, 40)
            draw.rectangle((x, y, x + w + 2 * pad - 1, y + h + 2 * pad - 1), fill=color)
            sheet.paste(Image.fromarray(frames[c]).resize((w, h), Image.NEAREST), (x + pad, y + pad))
    sheet.save(path)
    return path


# -- command line ---------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("data/synthdance"), help="data-set folder")
    p.add_argument("--clips", type=int, default=2000, help="number of clips (a rerun adds the missing ones)")
    p.add_argument("--size", type=int, default=64, help="frame width and height in pixels (64, 96, 128)")
    p.add_argument("--fps", type=float, default=12.0)
    p.add_argument("--frames", type=int, default=24, help="frames per clip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="parallel processes (one song at a time each)")
    p.add_argument("--val-fraction", type=float, default=0.05, help="fraction of songs held out as 'val'")
    p.add_argument("--clips-per-song", type=int, default=4)
    p.add_argument("--song-seconds", type=float, default=16.0, help="length of each rendered song")
    p.add_argument("--val-frames", type=int, default=None,
                   help="frames per validation clip (default: --frames); e.g. 96 for steadier beat metrics")
    p.add_argument("--preview", type=Path, default=None,
                   help="write a preview mp4 (all styles side by side, with the music) and a PNG contact "
                        "sheet next to it, instead of a data set")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cfg = SynthDanceConfig(seed=args.seed, size=args.size, fps=args.fps, num_frames=args.frames,
                           clips_per_song=args.clips_per_song, val_fraction=args.val_fraction,
                           song_seconds=args.song_seconds, val_frames=args.val_frames)
    try:
        cfg.check()
        if args.preview is not None:
            video, png = write_preview(cfg, args.preview)
            print(f"[synthdance] wrote {video} and {png}")
            return
        stats = generate(cfg, args.out, args.clips, workers=args.workers)
    except ValueError as exc:
        raise SystemExit(f"synth_dance: {exc}") from exc
    except KeyboardInterrupt:
        raise SystemExit("synth_dance: interrupted; run the same command again to resume.") from None
    print(f"[synthdance] wrote {stats['written']} clips in {stats['seconds']:.1f} s "
          f"({stats['clips_per_second']:.1f} clips/s); {stats['skipped']} were already there.")


if __name__ == "__main__":
    main()
