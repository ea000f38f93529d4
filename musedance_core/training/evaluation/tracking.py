"""Following a SynthDance-like subject through frames without a model: a colour model learned from the
reference frame and its mask segments each frame; centroid, area and a rotation search of the
reference patch give the track (x, y, angle, scale) that the style check classifies."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ANGLE_STEP_DEG = 5.0  # rotation search: coarse grid 2x this, fine grid 1/2 this, then a parabola
COARSE_CANDIDATES = 3  # local minima of the coarse search refined (near-symmetric shapes have several)
SPIN_NET_TURN_DEG = 270.0  # a track that turns more than this in total is treated as a spinner
REST_WRAP_DEG = 20.0  # a spinner's angle lives in [-20, 340) (or its mirror): rest noise does not wrap
MAX_SUBJECT_COLORS = 4  # k-means clusters of the reference subject's colours


PATCH_MARGIN = 1.15  # rotation-search patch radius / the reference subject's radius


# -- subject tracking -----------------------------------------------------------------------------

@dataclass(frozen=True)
class SubjectModel:
    """What the tracker learns from the reference frame and its subject mask."""

    background_rows: np.ndarray  # [H, 3] background colour of each row (SynthDance backgrounds vary by row only)
    subject_colors: np.ndarray  # [K, 3] colour clusters of the subject
    reference_color: np.ndarray  # [3] mean RGB of the subject (eroded mask)
    template: np.ndarray  # [P, 4] subject features (mask, RGB/255) at the patch offsets
    offsets: np.ndarray  # [P, 2] (x, y) pixel offsets from the reference centroid
    center: np.ndarray  # [2] reference centroid (x, y) in pixels
    area: float  # reference subject area, pixels


def color_clusters(points: np.ndarray, k: int, spread: float = 20.0) -> np.ndarray:
    """Colour cluster centres of ``points`` [N, 3]: scipy's k-means started from farthest-point seeds
    (deterministic), with no more seeds than it takes to leave every point within ``spread`` of one:
    a one-colour subject keeps one cluster, so no spare centre drifts onto its anti-aliased rim.
    Clusters holding under 2 % of the points (stray pixels) are dropped."""
    from scipy.cluster.vq import kmeans2

    points = np.asarray(points, np.float64)
    seeds = [points[0]]
    for _ in range(1, min(k, len(points))):
        distance = np.min(np.linalg.norm(points[:, None] - np.array(seeds)[None], axis=2), axis=1)
        if distance.max() < spread:
            break
        seeds.append(points[int(np.argmax(distance))])
    centers, label = kmeans2(points, np.array(seeds), iter=12, minit="matrix")
    counts = np.bincount(label, minlength=len(centers))
    return centers[counts >= max(3, 0.02 * len(points))]


def _features(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[H, W, 4]: the subject mask and its RGB / 255 (zero off the subject)."""
    return np.concatenate([mask[..., None], frame * mask[..., None] / 255.0], axis=2).astype(np.float32)


def learn_subject(frame: np.ndarray, mask: np.ndarray) -> SubjectModel:
    """Background per row, subject colours and the rotation template from ``frame`` [H, W, 3] and ``mask`` [H, W]."""
    from scipy import ndimage

    frame = frame.astype(np.float64)
    mask = mask > 0
    if mask.sum() < 4:
        raise ValueError("the reference mask covers fewer than 4 pixels; cannot learn the subject.")
    h = frame.shape[0]
    bg = ~ndimage.binary_dilation(mask, iterations=1)
    rows = np.full((h, 3), np.nan)
    for r in range(h):
        if bg[r].any():
            rows[r] = np.median(frame[r][bg[r]], axis=0)
    known = ~np.isnan(rows[:, 0])
    for c in range(3):
        rows[:, c] = np.interp(np.arange(h), np.flatnonzero(known), rows[known, c])
    inner = ndimage.binary_erosion(mask, iterations=1)
    inner = inner if inner.sum() >= 4 else mask
    colors = color_clusters(frame[inner], MAX_SUBJECT_COLORS)
    ys, xs = np.nonzero(mask)
    center = np.array([xs.mean(), ys.mean()])
    radius = PATCH_MARGIN * np.sqrt(((xs - center[0]) ** 2 + (ys - center[1]) ** 2).max()) + 1.0
    grid = np.arange(-math.ceil(radius), math.ceil(radius) + 1, dtype=np.float64)
    offsets = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)
    offsets = offsets[np.linalg.norm(offsets, axis=1) <= radius]
    template = _sample(_features(frame, mask.astype(np.float64)), center[None] + offsets)
    return SubjectModel(rows, colors, frame[inner].mean(0), template, offsets, center, float(mask.sum()))


def _sample(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` [H, W, C] at points ``xy`` [..., 2] (x, y); zero outside.
    Written out, not scipy's map_coordinates: that one channel at a time made the whole evaluation
    twice as slow (12 clips: 11 s -> 25 s), as the rotation search samples ~800 patches per clip."""
    h, w, c = image.shape
    padded = np.zeros((h + 2, w + 2, c), image.dtype)  # a zero border: points outside read zeros
    padded[1:-1, 1:-1] = image
    x = np.clip(xy[..., 0] + 1.0, 0.0, w + 1.0 - 1e-6)
    y = np.clip(xy[..., 1] + 1.0, 0.0, h + 1.0 - 1e-6)
    x0, y0 = np.floor(x).astype(np.intp), np.floor(y).astype(np.intp)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x1, y1 = np.minimum(x0 + 1, w + 1), np.minimum(y0 + 1, h + 1)
    top = padded[y0, x0] * (1 - fx) + padded[y0, x1] * fx
    bottom = padded[y1, x0] * (1 - fx) + padded[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def segment(frame: np.ndarray, model: SubjectModel) -> np.ndarray:
    """Subject mask bool [H, W]: pixels nearer a subject colour than their row's background, largest
    connected component, holes filled."""
    from scipy import ndimage

    f = frame.astype(np.float64)
    d_bg = np.linalg.norm(f - model.background_rows[:, None], axis=2)
    d_subject = np.min(np.linalg.norm(f[:, :, None] - model.subject_colors[None, None], axis=3), axis=2)
    raw = d_subject < d_bg
    labels, n = ndimage.label(raw)
    if n == 0:
        return raw
    sizes = ndimage.sum(raw, labels, index=np.arange(1, n + 1))
    return ndimage.binary_fill_holes(labels == 1 + int(np.argmax(sizes)))


def _angle_errors(features: np.ndarray, center: np.ndarray, scale: float, model: SubjectModel,
                  angles: np.ndarray, stride: int = 1) -> np.ndarray:
    """Squared error [A] between the frame's subject features and the reference patch rotated by ``angles``."""
    a = np.radians(angles)
    # data set convention: a subject point at offset o appears at [[cos, sin], [-sin, cos]] @ o
    rot = np.stack([np.stack([np.cos(a), np.sin(a)], -1), np.stack([-np.sin(a), np.cos(a)], -1)], axis=1)
    points = center + scale * np.einsum("aij,pj->api", rot, model.offsets[::stride])  # (A, P, 2)
    return ((_sample(features, points) - model.template[None, ::stride]) ** 2).sum(axis=(1, 2))


def _best_angle(features: np.ndarray, center: np.ndarray, scale: float, model: SubjectModel) -> float:
    """Rotation (degrees, counter-clockwise on screen as in the data set) of the subject relative to the
    reference: the angle whose rotated reference patch best matches (least squares) this frame.
    Coarse search over 360 deg on every other patch point, then the COARSE_CANDIDATES best local minima
    refined on all points; a parabola through the best three gives the sub-step angle."""
    coarse = np.arange(0.0, 360.0, ANGLE_STEP_DEG * 2)
    err = _angle_errors(features, center, scale, model, coarse, stride=2)
    minima = [i for i in range(len(err)) if err[i] <= err[i - 1] and err[i] <= err[(i + 1) % len(err)]]
    minima = sorted(minima, key=lambda i: err[i])[:COARSE_CANDIDATES]
    fine = np.concatenate([coarse[i] + ANGLE_STEP_DEG * np.arange(-2, 3) / 2 for i in minima])
    err = _angle_errors(features, center, scale, model, fine).reshape(len(minima), 5)
    k, j = np.unravel_index(int(np.argmin(err)), err.shape)
    j = min(max(j, 1), 3)
    lo, mid, hi = err[k, j - 1], err[k, j], err[k, j + 1]
    curve = lo - 2 * mid + hi
    shift = 0.5 * (lo - hi) / curve if curve > 1e-12 else 0.0
    return float(fine[5 * k + j] + np.clip(shift, -1.0, 1.0) * ANGLE_STEP_DEG / 2)


def unwrap_angles(raw: np.ndarray) -> np.ndarray:
    """Tracked angles in [0, 360) -> a track like the data set's: spinners (net turn > SPIN_NET_TURN_DEG)
    get 0 at their most common (rest) angle and values in [-20, 340) (mirrored for clockwise spins);
    other tracks are centred on their circular mean in (-180, 180]."""
    unwrapped = np.unwrap(np.radians(raw))
    net = math.degrees(unwrapped[-1] - unwrapped[0]) if len(raw) else 0.0
    if abs(net) > SPIN_NET_TURN_DEG:
        hist, edges = np.histogram(np.mod(raw, 360.0), bins=36, range=(0.0, 360.0))
        peak = 0.5 * (edges[np.argmax(hist)] + edges[np.argmax(hist) + 1])
        near = np.abs((raw - peak + 180.0) % 360.0 - 180.0) <= 15.0
        rest = math.degrees(np.angle(np.mean(np.exp(1j * np.radians(raw[near]))))) if near.any() else peak
        direction = 1.0 if net > 0 else -1.0
        rel = np.mod(direction * (raw - rest), 360.0)
        return direction * (np.mod(rel + REST_WRAP_DEG, 360.0) - REST_WRAP_DEG)
    mean = math.degrees(np.angle(np.mean(np.exp(1j * np.radians(raw)))))
    return (raw - mean + 180.0) % 360.0 - 180.0


def track_subject(frames: np.ndarray, model: SubjectModel) -> tuple[np.ndarray, np.ndarray]:
    """Subject track float32 [T, 4] (x, y as frame fractions, angle degrees, scale relative to the
    reference frame) and masks bool [T, H, W] of ``frames`` [T, H, W, 3] (0..255)."""
    t, h, w = frames.shape[:3]
    masks = np.stack([segment(f, model) for f in frames])
    motion = np.zeros((t, 4), np.float64)
    raw = np.zeros(t)
    last = np.array([model.center[0], model.center[1], 1.0])
    for i in range(t):
        ys, xs = np.nonzero(masks[i])
        if len(xs):  # a frame without a subject keeps the previous position
            last = np.array([xs.mean(), ys.mean(), math.sqrt(len(xs) / model.area)])
        raw[i] = _best_angle(_features(frames[i].astype(np.float64), masks[i].astype(np.float64)), last[:2],
                             last[2], model)
        motion[i] = [(last[0] + 0.5) / w, (last[1] + 0.5) / h, 0.0, last[2]]
    motion[:, 2] = unwrap_angles(raw)
    return motion.astype(np.float32), masks


def subject_core(mask: np.ndarray) -> np.ndarray:
    """The subject mask without its one-pixel rim (anti-aliased edge pixels mix in the background),
    unless the subject is too small to lose it."""
    from scipy import ndimage

    return ndimage.binary_erosion(mask, iterations=1) if mask.sum() > 16 else mask
