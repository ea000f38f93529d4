"""Shot cuts in streamed frames, so no training clip spans two shots (its frames must show one
continuous dance for the motion stage).

Each frame is summarised on a grid of about 80 x 80 pixels by two histograms that light changes
hardly move: hue weighted by chroma (a brightness gain or a white flash scales every pixel's chroma
alike) and luma standardised to zero mean and unit spread (invariant to gain and offset), both
soft-binned, over the pixels clipped in neither frame. Two frames' distance is the total-variation
distance of the histograms (0..1), hue weighted by how colourful the frames are. A frame starts a
new shot when that distance to the previous frame exceeds both ``min_distance`` and ``relative``
times the median of the recent distances (a fast dancer or a pan raises it), the shot so far has
``min_shot_frames`` frames, and the change is everywhere: at least ``MIN_CHANGED`` of the 8 x 8
blocks changed colour (standardised per frame, so a flash changes few; a dancer or a pan changes
the part they cross).

A flash on the beat that comes with fast motion can still pass those tests; with ``lookahead=1``
(answers one frame late) the frame after a candidate must also look new, which removes one-frame
flashes. Gradual transitions (dissolves, fades) are not cuts here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

HUE_BINS = 24
LUMA_BINS = 16
LUMA_RANGE = 2.5  # standardised luma is binned over [-LUMA_RANGE, LUMA_RANGE]
SAMPLE_PIXELS = 80 * 80  # frames are read on a grid of about this many pixels
CHROMA_FULL = 0.08  # mean chroma (0..1) at which hue gets its full weight; greyer frames lean on luma
HUE_WEIGHT = 0.5
CLIPPED = 250 / 255  # pixels this bright in either frame are left out of the histograms (flashes clip)
MIN_CLIPPED = 0.01  # ... when at least this fraction is clipped
MIN_UNCLIPPED = 0.05  # ... and at least this fraction is left
BLOCKS = 8  # the frame is also compared as BLOCKS x BLOCKS mean colours
BLOCK_CHANGE = 0.5  # a block changed: its colour moved this many standard deviations of the frame
# Measured on 30 generated stages with a dancer (128 x 128, and 256 x 256 with a bigger dancer):
# histogram distance of cuts 0.27-0.63 (5th percentile 0.38), of a fast dancer <= 0.28, a 4 px/frame
# pan <= 0.13, a x1.5 or white flash <= 0.08; blocks changed by cuts 0.94-1.0, by a fast dancer or a pan
# <= 0.55, by a flash <= 0.33.
MIN_DISTANCE = 0.2  # a cut changes at least this much of the histograms
RELATIVE = 2.5  # ... and this many times the recent median distance
HISTORY = 24  # frames in that median
MIN_CHANGED = 0.75  # ... and changes at least this fraction of the blocks
MIN_SHOT_FRAMES = 6  # 0.5 s at the default 12 fps
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601


def _soft_hist(pos: np.ndarray, weights: np.ndarray, bins: int, circular: bool) -> np.ndarray:
    """Histogram with each sample split linearly between its two nearest bins; sums to 1."""
    lo = np.floor(pos).astype(np.int64)
    frac = (pos - lo).astype(np.float32)
    hi = lo + 1
    if circular:
        lo, hi = lo % bins, hi % bins
    else:
        lo, hi = np.clip(lo, 0, bins - 1), np.clip(hi, 0, bins - 1)
    hist = np.bincount(lo, weights * (1 - frac), bins) + np.bincount(hi, weights * frac, bins)
    total = hist.sum()
    return hist / total if total > 0 else np.full(bins, 1.0 / bins)


@dataclass(frozen=True)
class FrameSignature:
    """What a frame's cut test needs, per pixel of the sampling grid (N pixels)."""

    hue_pos: np.ndarray  # (N,) hue in bins, 0..HUE_BINS
    chroma: np.ndarray  # (N,) max - min of RGB, 0..1
    luma: np.ndarray  # (N,) BT.601 luma, 0..1
    clipped: np.ndarray  # (N,) bool: a channel at or above CLIPPED
    histograms: tuple  # _histograms over all N pixels
    blocks: np.ndarray  # (BLOCKS * BLOCKS, 3) mean colours, standardised over the frame


def frame_signature(frame: np.ndarray) -> FrameSignature:
    """The ``FrameSignature`` of ``frame`` uint8 [H, W, 3] (at least BLOCKS pixels a side)."""
    h, w = frame.shape[:2]
    step = max(1, round(np.sqrt(h * w / SAMPLE_PIXELS)))
    sub = frame[::step, ::step]
    r, g, b = (sub[..., c].astype(np.float32).ravel() * (1 / 255) for c in range(3))  # (N,) each
    mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    chroma = mx - mn
    inv = 1 / np.maximum(chroma, 1e-6)
    hue = np.where(mx == r, (g - b) * inv, np.where(mx == g, (b - r) * inv + 2, (r - g) * inv + 4))  # [-1, 5]
    hue_pos = (hue % 6) * (HUE_BINS / 6)
    luma = LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b
    gh, gw = sub.shape[0] // BLOCKS, sub.shape[1] // BLOCKS
    blocks = np.stack([p.reshape(sub.shape[:2])[:gh * BLOCKS, :gw * BLOCKS].reshape(BLOCKS, gh, BLOCKS * gw).sum(1)
                       .reshape(BLOCKS, BLOCKS, gw).sum(2).ravel() for p in (r, g, b)], 1) * (255 / (gh * gw))
    blocks = (blocks - blocks.mean()) / max(float(blocks.std()), 2.0)  # one gain and offset, as a light change
    return FrameSignature(hue_pos, chroma, luma, mx >= CLIPPED, _histograms(hue_pos, chroma, luma), blocks)


def _histograms(hue_pos: np.ndarray, chroma: np.ndarray, luma: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(hue histogram weighted by chroma, standardised-luma histogram, mean chroma)."""
    z = (luma - luma.mean()) / max(float(luma.std()), 2 / 255)
    pos = (np.clip(z, -LUMA_RANGE, LUMA_RANGE) + LUMA_RANGE) * ((LUMA_BINS - 1) / (2 * LUMA_RANGE))
    return (_soft_hist(hue_pos, chroma, HUE_BINS, circular=True),
            _soft_hist(pos, np.ones_like(pos), LUMA_BINS, circular=False), float(chroma.mean()))


def signature_distance(a: FrameSignature, b: FrameSignature) -> float:
    """Distance 0..1 of two frames' colours: total variation of hue (weighted by colourfulness) and of
    standardised luma, over the pixels clipped in neither frame when a flash clipped some."""
    ha, hb = a.histograms, b.histograms
    if a.clipped.shape == b.clipped.shape:
        clipped = a.clipped | b.clipped
        if MIN_CLIPPED <= clipped.mean() <= 1 - MIN_UNCLIPPED:
            keep = ~clipped
            ha = _histograms(a.hue_pos[keep], a.chroma[keep], a.luma[keep])
            hb = _histograms(b.hue_pos[keep], b.chroma[keep], b.luma[keep])
    w = HUE_WEIGHT * min(1.0, min(ha[2], hb[2]) / CHROMA_FULL)
    return w * 0.5 * float(np.abs(ha[0] - hb[0]).sum()) + (1 - w) * 0.5 * float(np.abs(ha[1] - hb[1]).sum())


def changed_blocks(a: FrameSignature, b: FrameSignature) -> float:
    """Fraction (0..1) of the blocks whose standardised colour moved more than BLOCK_CHANGE: a cut
    changes nearly all, a dancer or a pan the part they cross, a flash few."""
    if a.blocks.shape != b.blocks.shape:
        return 1.0
    return float(np.mean(np.linalg.norm(a.blocks - b.blocks, axis=1) > BLOCK_CHANGE))


class ShotCutDetector:
    """Feed frames in order with ``push``; it returns True for the first frame of each new shot.

    With ``lookahead`` L = 0 the answer is about the frame just pushed. With L >= 1 it is about the
    frame pushed L frames before (False while fewer than L + 1 frames were pushed; ``flush`` answers
    for the last L at the end), and a cut needs the new look to last: a candidate is dropped when
    one of the next L frames looks like the frame before it again, which is what a flash of up to L
    frames does. ``shot`` is the current shot's index, ``count`` the number of frames pushed.
    """

    def __init__(self, min_distance: float = MIN_DISTANCE, relative: float = RELATIVE,
                 min_shot_frames: int = MIN_SHOT_FRAMES, history: int = HISTORY, lookahead: int = 0):
        if not 0 < min_distance <= 1 or relative < 1 or min_shot_frames < 1 or history < 1 or lookahead < 0:
            raise ValueError(f"ShotCutDetector needs 0 < min_distance <= 1, relative >= 1, min_shot_frames >= 1, "
                             f"history >= 1 and lookahead >= 0; got {min_distance}, {relative}, {min_shot_frames}, "
                             f"{history}, {lookahead}.")
        self.min_distance, self.relative = min_distance, relative
        self.min_shot_frames, self.lookahead = min_shot_frames, lookahead
        self._recent: deque[float] = deque(maxlen=history)
        self._window: deque[FrameSignature] = deque(maxlen=lookahead + 2)  # frames c-1, c, ..., c+L
        self._references: deque[FrameSignature] = deque(maxlen=lookahead + 1)  # the shot's last frames before c
        self.reset()

    def reset(self) -> None:
        self._recent.clear()
        self._window.clear()
        self._references.clear()
        self.shot, self.count, self._shot_start = 0, 0, 0

    def push(self, frame: np.ndarray) -> bool:
        """``frame`` uint8 [H, W, 3]; True when it (or, with lookahead L, the frame L before) starts a new shot."""
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8 or min(frame.shape[:2]) < BLOCKS:
            raise ValueError(f"frame must be uint8 [H, W, 3] with H, W >= {BLOCKS}; got {frame.dtype} {frame.shape}.")
        self._window.append(frame_signature(frame))
        self.count += 1
        if len(self._window) == 1:
            self._references.append(self._window[0])
        if len(self._window) < self.lookahead + 2:
            return False
        return self._decide(list(self._window), self.count - 1 - self.lookahead)

    def flush(self) -> list[bool]:
        """At the end of the stream with lookahead L: the answers for the last min(L, count) frames, all
        False (a new look there cannot be confirmed, and a shot that short makes no clip)."""
        return [False] * min(self.lookahead, self.count)

    def _decide(self, window: list[FrameSignature], index: int) -> bool:
        """Whether frame ``index`` (window[1]) starts a shot; window[0] is the frame before, then what follows.

        Beyond the test against the frame before, frame ``index`` and the L frames after it must all
        look new against each of the shot's last L + 1 frames: a flash of up to L frames, or the
        return from one, always has a frame on the other side of it that looks like the shot.
        """
        current, after = window[1], window[2:]
        d = signature_distance(window[0], current)
        limit = max(self.min_distance, self.relative * float(np.median(self._recent)) if self._recent else 0.0)
        if (d > limit and index - self._shot_start >= self.min_shot_frames
                and all(signature_distance(ref, x) > limit and changed_blocks(ref, x) >= MIN_CHANGED
                        for ref in self._references for x in (current, *after))):
            self.shot, self._shot_start = self.shot + 1, index
            self._references.clear()
            self._references.append(current)
            return True
        self._recent.append(d)
        self._references.append(current)
        return False


def detect_cuts(frames: Iterable[np.ndarray], **settings) -> list[int]:
    """Indices of the frames that start a new shot (never 0); ``settings`` as for ShotCutDetector."""
    detector = ShotCutDetector(**settings)
    answers = [detector.push(frame) for frame in frames]
    answers = answers[detector.lookahead:] + detector.flush() if detector.lookahead else answers
    return [i for i, cut in enumerate(answers) if cut]
