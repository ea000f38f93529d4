"""What a SynthDance clip looks like and says: subjects drawn from polygons, colours with enough
contrast, backgrounds, the clip's spec (style, subject, colours, caption) and the frames and
subject masks rendered along its motion."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SUPERSAMPLE = 4  # subjects are drawn at 4x and box-filtered down (antialiasing)


MIN_CONTRAST = 150.0  # RGB distance between the subject and its background


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


def jitter_color(rgb, rng: np.random.Generator, amount: int = 18) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(np.asarray(rgb) + rng.integers(-amount, amount + 1, 3), 0, 255))


def contrasting_color(rng: np.random.Generator, avoid: list[tuple[int, int, int]]) -> tuple[int, int, int]:
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
