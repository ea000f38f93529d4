"""Evaluate a MuseDance bundle on held-out SynthDance clips: beat alignment, motion style, appearance.

    python training/evaluate.py --model runs/x/model.safetensors --data data/synthdance \\
        --clips 20 --steps 20 --out runs/x/eval --seed 0
    python training/evaluate.py --gt-as-generated --data data/synthdance --out /tmp/eval-gt   # checks the evaluator

For each validation clip (held-out songs) the model animates the clip's first frame with its caption
twice: with the clip's own music and beats, and with **shuffled music** (another validation clip of a
different song whose tempo differs by more than 10 %; same caption, first frame and seed). Measures
(DESIGN.md section 6):

- **BAS** (Bailando): motion beats = local minima of the smoothed frame-difference energy;
  ``--sigma-frames`` frames at the data set's fps; and again with the motion beats of the tracked
  subject's speed (minima placed between frames) at Bailando's own 50 ms. **VS** = beat-phase vector strength. Each for
  ground truth vs its beats, generated vs its beats, and the shuffled-music video vs the ORIGINAL
  clip's beats (the control: if the music drives the motion this is low) and vs its own music's beats.
  Music beats are the exact ``beat_times``.
- **Style accuracy**: the subject is tracked in the frames (colour segmentation learned from the first
  frame and ``mask[0]``; centroid -> x, y; sqrt(area ratio) -> scale; rotation search of the first
  frame's subject patch -> angle), the track is classified with ``classify_motion`` against the exact
  beat features of the music used, and compared with the caption's style. The tracker is validated on
  the ground-truth frames in the same run.
- **Appearance**: PSNR and SSIM (Gaussian window, sigma 1.5) of generated vs ground-truth frames 1..T-1,
  subject colour error (CIELAB Delta E 1976 and RGB distance of the tracked subject's mean colour vs
  the reference subject's), subject size error and mask IoU vs the ground-truth mask.

``--gt-as-generated`` evaluates the ground truth as if it were generated (the shuffled video is then
the partner clip's ground truth), which validates the evaluator without a model.
Writes ``report.md``, ``report.json``, ``tracks_<id>.png`` plots and ``<id>.mp4`` side-by-side videos.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from musedance_core.metrics import (
    BAILANDO_SIGMA_S,
    BAS_SIGMA_FRAMES,
    beat_alignment_score,
    beat_phase_vector_strength,
    motion_beats,
    motion_energy,
    subject_speed,
)
from musedance_core.training import dataset as fmt
from training.synth_dance import STYLE_CHANNEL, classify_motion

MIN_TEMPO_RATIO = 1.10  # shuffled music must differ in tempo by more than 10 %
ANGLE_STEP_DEG = 5.0  # rotation search: coarse grid 2x this, fine grid 1/2 this, then a parabola
COARSE_CANDIDATES = 3  # local minima of the coarse search refined (near-symmetric shapes have several)
SPIN_NET_TURN_DEG = 270.0  # a track that turns more than this in total is treated as a spinner
REST_WRAP_DEG = 20.0  # a spinner's angle lives in [-20, 340) (or its mirror): rest noise does not wrap
MAX_SUBJECT_COLORS = 4  # k-means clusters of the reference subject's colours
SSIM_SIGMA = 1.5  # Wang et al. 2004
SSIM_K1, SSIM_K2 = 0.01, 0.03
PATCH_MARGIN = 1.15  # rotation-search patch radius / the reference subject's radius
VIDEO_ZOOM = 2


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


def _kmeans(points: np.ndarray, k: int, iters: int = 12) -> np.ndarray:
    """Cluster centres of ``points`` [N, 3]; farthest-point initialisation (deterministic)."""
    centers = [points[0]]
    for _ in range(1, min(k, len(points))):
        d = np.min(np.linalg.norm(points[:, None] - np.array(centers)[None], axis=2), axis=1)
        if d.max() < 20.0:
            break
        centers.append(points[int(np.argmax(d))])
    centers = np.array(centers, float)
    for _ in range(iters):
        label = np.argmin(np.linalg.norm(points[:, None] - centers[None], axis=2), axis=1)
        keep = [j for j in range(len(centers)) if np.sum(label == j) >= max(3, 0.02 * len(points))]
        centers = np.array([points[label == j].mean(0) for j in keep])
    return centers


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
    colors = _kmeans(frame[inner], MAX_SUBJECT_COLORS)
    ys, xs = np.nonzero(mask)
    center = np.array([xs.mean(), ys.mean()])
    radius = PATCH_MARGIN * np.sqrt(((xs - center[0]) ** 2 + (ys - center[1]) ** 2).max()) + 1.0
    grid = np.arange(-math.ceil(radius), math.ceil(radius) + 1, dtype=np.float64)
    offsets = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)
    offsets = offsets[np.linalg.norm(offsets, axis=1) <= radius]
    template = _sample(_features(frame, mask.astype(np.float64)), center[None] + offsets)
    return SubjectModel(rows, colors, frame[inner].mean(0), template, offsets, center, float(mask.sum()))


def _sample(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` [H, W, C] at points ``xy`` [..., 2] (x, y); zero outside."""
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


# -- appearance -----------------------------------------------------------------------------------

def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two uint8-range arrays over all their values; inf when equal."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two images [..., H, W, C] in 0..255 (Wang et al. 2004: Gaussian window sigma 1.5,
    K1 0.01, K2 0.03, per channel, reflected borders)."""
    from scipy.ndimage import gaussian_filter

    a, b = a.astype(np.float64), b.astype(np.float64)
    sigma = [0.0] * (a.ndim - 3) + [SSIM_SIGMA, SSIM_SIGMA, 0.0]
    blur = lambda x: gaussian_filter(x, sigma, mode="reflect", truncate=3.5)
    c1, c2 = (SSIM_K1 * 255) ** 2, (SSIM_K2 * 255) ** 2
    ma, mb = blur(a), blur(b)
    va, vb, cov = blur(a * a) - ma**2, blur(b * b) - mb**2, blur(a * b) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    return float(s.mean())


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB 0..255 [..., 3] -> CIELAB (D65) [..., 3]."""
    c = np.asarray(rgb, np.float64) / 255.0
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = c @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def subject_core(mask: np.ndarray) -> np.ndarray:
    """The subject mask without its one-pixel rim (anti-aliased edge pixels mix in the background),
    unless the subject is too small to lose it."""
    from scipy import ndimage

    return ndimage.binary_erosion(mask, iterations=1) if mask.sum() > 16 else mask


def appearance(generated: np.ndarray, truth: np.ndarray, gen_masks: np.ndarray, true_masks: np.ndarray,
               model: SubjectModel) -> dict[str, float]:
    """PSNR/SSIM over frames 1..T-1 (frame 0 is the reference), subject colour, size and IoU."""
    later = slice(1, None) if len(truth) > 1 else slice(None)
    inner = np.stack([subject_core(m) for m in gen_masks])
    pixels = generated[inner].astype(np.float64)
    color = pixels.mean(0) if len(pixels) else np.zeros(3)
    true_area = np.maximum(true_masks.reshape(len(truth), -1).sum(1), 1)
    gen_area = gen_masks.reshape(len(truth), -1).sum(1)
    union = np.maximum((gen_masks | (true_masks > 0)).reshape(len(truth), -1).sum(1), 1)
    return {
        "psnr": psnr(generated[later], truth[later]),
        "ssim": ssim(generated[later], truth[later]),
        "color_delta_e": float(np.linalg.norm(rgb_to_lab(color) - rgb_to_lab(model.reference_color))),
        "color_rgb_dist": float(np.linalg.norm(color - model.reference_color)),
        "size_error": float(np.mean(np.abs(gen_area - true_area) / true_area)),
        "mask_iou": float(np.mean((gen_masks & (true_masks > 0)).reshape(len(truth), -1).sum(1) / union)),
    }


# -- beat alignment -------------------------------------------------------------------------------

def beat_measures(frames: np.ndarray, beat_times: np.ndarray, fps: float, sigma_frames: float) -> dict[str, float]:
    """BAS and beat-phase vector strength of a video [T, H, W, 3] against music beats (seconds)."""
    energy = motion_energy(frames)
    beats = beat_times[beat_times < len(frames) / fps]
    return {"bas": beat_alignment_score(beats, motion_beats(energy, fps), fps, sigma_frames),
            "vs": beat_phase_vector_strength(energy, beats, fps)}


def track_bas(track: np.ndarray, radius: float, beat_times: np.ndarray, fps: float) -> float:
    """BAS with the motion beats of a tracked subject (DESIGN.md section 6: on SynthDance the
    sprite track) at Bailando's own tolerance (50 ms), minima placed between frames."""
    beats = beat_times[beat_times < len(track) / fps]
    speed = subject_speed(track, radius)
    return beat_alignment_score(beats, motion_beats(speed, fps, subframe=True), fps, BAILANDO_SIGMA_S * fps)


def pick_partners(records: list[dict], seed: int) -> list[tuple[int, bool]]:
    """For each clip, the index of its shuffled-music partner and whether it meets the rule (another
    song, tempo ratio > MIN_TEMPO_RATIO); otherwise the other-song clip with the largest tempo ratio."""
    rng = np.random.default_rng([seed, 17])
    out = []
    for i, r in enumerate(records):
        ratio = [max(o["bpm"], r["bpm"]) / max(min(o["bpm"], r["bpm"]), 1e-6) for o in records]
        other = [j for j, o in enumerate(records) if j != i and o.get("music_id") != r.get("music_id")]
        ok = [j for j in other if ratio[j] > MIN_TEMPO_RATIO]
        if ok:
            out.append((int(rng.choice(ok)), True))
        else:
            pool = other or [j for j in range(len(records)) if j != i] or [i]
            out.append((max(pool, key=lambda j: ratio[j]), False))
    return out


# -- report ---------------------------------------------------------------------------------------

def plot_tracks(path: Path, fps: float, rows: list[tuple[str, np.ndarray, tuple]], beats: np.ndarray,
                downbeats: np.ndarray, other_beats: np.ndarray, title: str) -> Path:
    """One panel per (label, curve [T], colour) on a shared time axis: grey lines = the clip's beats,
    red = its downbeats, dashed blue ticks = the shuffled music's beats. Pillow only."""
    from PIL import Image, ImageDraw

    width, panel, left, top = 900, 110, 150, 24
    img = Image.new("RGB", (width, top + panel * len(rows) + 20), (250, 250, 248))
    draw = ImageDraw.Draw(img)
    draw.text((8, 6), title, fill=(0, 0, 0))
    n = max(len(r[1]) for r in rows)
    x_of = lambda t: left + t / max((n - 1) / fps, 1e-9) * (width - left - 10)
    for k, (label, curve, color) in enumerate(rows):
        y0 = top + k * panel
        for t in beats:
            draw.line([(x_of(t), y0 + 4), (x_of(t), y0 + panel - 6)], fill=(200, 200, 200))
        for t in downbeats:
            draw.line([(x_of(t), y0 + 4), (x_of(t), y0 + panel - 6)], fill=(230, 120, 120))
        for t in other_beats:
            for yy in range(y0 + 4, y0 + panel - 6, 8):
                draw.line([(x_of(t), yy), (x_of(t), yy + 3)], fill=(120, 150, 230))
        draw.text((6, y0 + panel // 2 - 6), label, fill=(0, 0, 0))
        c = np.asarray(curve, float)
        lo, hi = float(c.min()), float(c.max())
        span = hi - lo if hi - lo > 1e-9 else 1.0
        pts = [(x_of(i / fps), y0 + panel - 10 - (v - lo) / span * (panel - 20)) for i, v in enumerate(c)]
        draw.line(pts, fill=color, width=2)
    img.save(path)
    return path


def _finite(x):
    """JSON-safe copy: non-finite floats (PSNR of identical frames, means of nothing) become null."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _mean(values: list[float]) -> float:
    """Mean of the finite values; inf when all are +inf (PSNR of identical videos), nan when none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite and any(v == float("inf") for v in values):
        return float("inf")
    return float(np.mean(finite)) if finite else float("nan")


def summarize(clips: list[dict]) -> dict:
    """Means over clips of every number, and the style accuracies."""
    out = {}
    for group in ("beat", "appearance"):
        keys = {k for c in clips for k in c[group]}
        out[group] = {k: _mean([c[group][k] for c in clips if k in c[group]]) for k in sorted(keys)}
    for key in ("gt_motion", "gt_tracked", "generated", "shuffled"):
        out.setdefault("style_accuracy", {})[key] = _mean([float(c["style"][key] == c["style"]["expected"])
                                                          if key != "shuffled" else
                                                          float(c["style"][key] == c["style"]["expected_shuffled"])
                                                          for c in clips])
    out["tracker_corr"] = {k: _mean([c["tracker_corr"][k] for c in clips]) for k in ("x", "y", "angle", "scale")}
    return out


BEAT_ROWS = (
    ("gt_own", "ground truth vs its music's beats"),
    ("gt_partner", "ground truth vs the shuffled music's beats"),
    ("gen_own", "generated vs its music's beats"),
    ("gen_partner", "generated vs the shuffled music's beats"),
    ("shuf_orig", "shuffled-music video vs the ORIGINAL beats (control)"),
    ("shuf_own", "shuffled-music video vs its own (shuffled) music's beats"),
)


def write_markdown(path: Path, info: dict, summary: dict) -> Path:
    b, a, s = summary["beat"], summary["appearance"], summary["style_accuracy"]
    lines = [
        "# MuseDance evaluation", "",
        f"Command: `{info['command']}`", "",
        f"- model: `{info['model']}`",
        (f"- data: `{info['data']}` (split val, {info['clips']} clips, "
         f"{info['frames']} frames each, {info['size']} px)"),
        (f"- fps {info['fps']:g}; BAS sigma = {info['sigma_frames']:g} frames "
         f"({1000 * info['sigma_frames'] / info['fps']:.0f} ms); "
         "motion beats = minima of the smoothed frame-difference energy; music beats = exact beat_times"),
        (f"- sampler: {info['steps']} steps, cfg {info['cfg']:g}, "
         f"prompt guidance {info.get('prompt_guidance', 0.0):g}, context {info['context_length']} frames, "
         f"seed {info['seed']} (same seed for own and shuffled music)"),
        f"- shuffled partners meeting the rule (other song, tempo differs > 10 %): {info['partners_ok']}/{info['clips']}",
        f"- runtime {info['seconds']:.0f} s", "",
        "## Beat alignment (means over clips)", "",
        (f"BAS (frame energy): motion beats from the frame-difference energy, sigma {info['sigma_frames']:g} frames. "
         f"BAS (subject track): motion beats from the tracked subject's speed, minima placed between frames, "
         f"sigma {1000 * BAILANDO_SIGMA_S:.0f} ms (Bailando's own). VS: from the frame-difference energy."), "",
        "| video vs beats | BAS (frame energy) | BAS (subject track) | beat-phase VS |", "|---|---|---|---|",
    ]
    lines += [f"| {label} | {b[f'{key}_bas']:.3f} | {b[f'{key}_track_bas']:.3f} | {b[f'{key}_vs']:.3f} |"
              for key, label in BEAT_ROWS]
    lines += ["", "## Motion style accuracy (subject tracked in the frames, `classify_motion`)", "",
              "| track | accuracy |", "|---|---|",
              f"| data-set motion (classifier sanity) | {s['gt_motion']:.3f} |",
              f"| tracked on ground-truth frames (tracker validation) | {s['gt_tracked']:.3f} |",
              f"| tracked on generated frames, vs caption style | {s['generated']:.3f} |",
              f"| tracked on shuffled-music frames (its beats), vs caption style | {s['shuffled']:.3f} |", "",
              "Tracker vs data-set motion on ground truth, mean Pearson r per column: " +
              ", ".join(f"{k} {v:.3f}" for k, v in summary["tracker_corr"].items()) + ". Spin: the angle comes "
              "from a rotation search of the reference patch over 360 deg; a track turning > 270 deg in total is "
              "unwrapped around its most common (rest) angle.", "",
              "## Appearance (generated vs ground truth, frames 1..T-1)", "",
              "| PSNR dB | SSIM | subject colour Delta E76 | colour RGB dist | size error | mask IoU |",
              "|---|---|---|---|---|---|",
              (f"| {a['psnr']:.2f} | {a['ssim']:.3f} | {a['color_delta_e']:.2f} | {a['color_rgb_dist']:.1f} | "
               f"{a['size_error']:.3f} | {a['mask_iou']:.3f} |"), "",
              "## Issue targets (reported, not enforced)", ""]
    for name, ok, text in targets(summary):
        lines.append(f"- {'PASS' if ok else 'FAIL'}: {name} ({text})")
    lines += ["", ("Per-clip numbers: `report.json`. Plots: `tracks_*.png`. Videos (GT | generated | shuffled, "
                   "with the ORIGINAL clip's music): `*.mp4`."), ""]
    path.write_text("\n".join(lines))
    return path


def _ratio(own: float, other: float) -> str:
    """own / other as text: the ground truth's own ratio, for reference (its video measured against its
    music's beats and against the partner's; a model is not bound by it)."""
    return f"{own / other:.2f}x" if other > 0 else "n/a"


def targets(summary: dict) -> list[tuple[str, bool, str]]:
    b, s, a = summary["beat"], summary["style_accuracy"], summary["appearance"]
    return [
        ("BAS(generated) >= 0.8 x BAS(ground truth)", b["gen_own_bas"] >= 0.8 * b["gt_own_bas"],
         f"{b['gen_own_bas']:.3f} vs {0.8 * b['gt_own_bas']:.3f}"),
        ("BAS(generated) >= 2 x BAS(shuffled-music control)", b["gen_own_bas"] >= 2 * b["shuf_orig_bas"],
         f"{b['gen_own_bas']:.3f} vs {2 * b['shuf_orig_bas']:.3f}; the ground truth's own ratio: "
         f"{_ratio(b['gt_own_bas'], b['gt_partner_bas'])}"),
        ("BAS(subject track, 50 ms): generated >= 0.8 x ground truth",
         b["gen_own_track_bas"] >= 0.8 * b["gt_own_track_bas"],
         f"{b['gen_own_track_bas']:.3f} vs {0.8 * b['gt_own_track_bas']:.3f}"),
        ("BAS(subject track, 50 ms): generated >= 2 x shuffled-music control",
         b["gen_own_track_bas"] >= 2 * b["shuf_orig_track_bas"],
         f"{b['gen_own_track_bas']:.3f} vs {2 * b['shuf_orig_track_bas']:.3f}; the ground truth's own ratio: "
         f"{_ratio(b['gt_own_track_bas'], b['gt_partner_track_bas'])}"),
        ("beat-phase VS(generated) >= 2 x VS(shuffled-music control)", b["gen_own_vs"] >= 2 * b["shuf_orig_vs"],
         f"{b['gen_own_vs']:.3f} vs {2 * b['shuf_orig_vs']:.3f}"),
        ("style accuracy >= 80 %", s["generated"] >= 0.8, f"{100 * s['generated']:.0f} %"),
        ("subject colour preserved (Delta E < 10)", a["color_delta_e"] < 10.0, f"{a['color_delta_e']:.2f}"),
        ("subject shape preserved (mask IoU >= 0.5)", a["mask_iou"] >= 0.5, f"{a['mask_iou']:.3f}"),
    ]


# -- evaluation -----------------------------------------------------------------------------------

def load_model(path: Path, prog: str):
    """The bundle at ``path`` in eval mode; a missing or wrong file ends the script with the reason."""
    from musedance_core.checkpoints.bundle import load_bundle
    from musedance_core.errors import MuseDanceError

    try:
        return load_bundle(path).eval()
    except MuseDanceError as exc:  # the reason, not a traceback
        raise SystemExit(f"{prog}: {exc}") from exc


def generate(model, frames0: np.ndarray, arrays, record: dict, caption: str, **settings) -> np.ndarray:
    """Frames uint8 [T, H, W, 3] animated from ``frames0`` and ``caption`` with the music/beats of
    ``arrays``/``record``; ``settings`` are ``AnimateSettings`` fields (``context_length`` capped by the model)."""
    import torch

    from musedance_core.pipeline import AnimateSettings, MuseDancePipeline
    from musedance_core.training.data import clip_conditions

    music, beats = clip_conditions(arrays, record, model.config.music_encoder)
    context = min(settings.pop("context_length", AnimateSettings().context_length), model.config.max_context_frames)
    settings = AnimateSettings(width=frames0.shape[1], height=frames0.shape[0], context_length=context, **settings)
    with torch.no_grad():
        result = MuseDancePipeline(model)(frames0, music, beats, caption, "", settings)
    return (result.frames.numpy().clip(0, 1) * 255).round().astype(np.uint8)


class _Npz(dict):
    """A loaded clip that also answers ``.files`` (what ``clip_conditions`` expects of an NpzFile)."""

    @property
    def files(self) -> list[str]:
        return list(self)


def evaluate_clip(record: dict, arrays: dict, partner: dict, partner_arrays: dict, gen: np.ndarray,
                  shuf: np.ndarray, args) -> tuple[dict, dict]:
    """All numbers of one clip (and the curves for its plot)."""
    fps = float(record["fps"])
    same = gen is arrays["frames"]  # --gt-as-generated: track the ground truth once
    n = min(len(arrays["frames"]), len(partner_arrays["frames"]), len(gen), len(shuf), args.frames or len(gen))
    truth, gen, shuf = arrays["frames"][:n], gen[:n], shuf[:n]
    beats, pbeats = arrays["beat_times"], partner_arrays["beat_times"]
    feats = arrays.get("beats_true", arrays["beats"])[:n]
    pfeats = partner_arrays.get("beats_true", partner_arrays["beats"])[:n]
    beat = {}
    for key, video, times in (("gt_own", truth, beats), ("gt_partner", truth, pbeats), ("gen_own", gen, beats),
                              ("gen_partner", gen, pbeats), ("shuf_orig", shuf, beats), ("shuf_own", shuf, pbeats)):
        for name, value in beat_measures(video, times, fps, args.sigma_frames).items():
            beat[f"{key}_{name}"] = value
    model = learn_subject(truth[0], arrays["mask"][0])
    gt_track, gt_masks = track_subject(truth, model)
    gen_track, gen_masks = track_subject(gen, model) if not same else (gt_track, gt_masks)
    shuf_track, _ = track_subject(shuf, model if not args.gt_as_generated else
                                  learn_subject(partner_arrays["frames"][0], partner_arrays["mask"][0]))
    radius = math.sqrt(model.area / math.pi / (truth.shape[1] * truth.shape[2]))  # the reference subject's, frame fraction
    for key, track, times in (("gt_own", gt_track, beats), ("gt_partner", gt_track, pbeats),
                              ("gen_own", gen_track, beats), ("gen_partner", gen_track, pbeats),
                              ("shuf_orig", shuf_track, beats), ("shuf_own", shuf_track, pbeats)):
        beat[f"{key}_track_bas"] = track_bas(track, radius, times, fps)
    bpb, pbpb = int(record["beats_per_bar"]), int(partner["beats_per_bar"])
    true_motion = arrays["motion"][:n]
    style = {"expected": record["style"],
             "expected_shuffled": partner["style"] if args.gt_as_generated else record["style"],
             "gt_motion": classify_motion(true_motion, feats, bpb)[0],
             "gt_tracked": classify_motion(gt_track, feats, bpb)[0],
             "generated": classify_motion(gen_track, feats, bpb)[0],
             "shuffled": classify_motion(shuf_track, pfeats, pbpb)[0]}
    corr = {}
    for c, name in enumerate(("x", "y", "angle", "scale")):
        a, b = true_motion[:, c].astype(float), gt_track[:, c].astype(float)
        corr[name] = float(np.corrcoef(a, b)[0, 1]) if a.std() > 1e-6 and b.std() > 1e-6 else float("nan")
    result = {"id": record["id"], "partner": partner["id"], "caption": record["caption"], "bpm": record["bpm"],
              "partner_bpm": partner["bpm"], "frames": n, "beat": beat, "style": style, "tracker_corr": corr,
              "appearance": appearance(gen, truth, gen_masks, arrays["mask"][:n], model)}
    curves = {"truth": gt_track, "gen": gen_track, "shuf": shuf_track, "energy": [motion_energy(v) for v in
                                                                                 (truth, gen, shuf)]}
    return result, curves


def save_clip_outputs(out: Path, record: dict, arrays: dict, partner_arrays: dict, gen: np.ndarray,
                      shuf: np.ndarray, curves: dict, data: Path, video: bool) -> None:
    """tracks_<id>.png and (when ``video``) <id>.mp4 = GT | generated | shuffled with the clip's music."""
    fps, n = float(record["fps"]), len(curves["truth"])
    ch = STYLE_CHANNEL[record["style"]]
    names = ("x", "y", "angle", "scale")
    rows = [(f"GT {names[ch]}", curves["truth"][:, ch], (30, 30, 30)),
            (f"generated {names[ch]}", curves["gen"][:, ch], (40, 90, 200)),
            (f"shuffled {names[ch]}", curves["shuf"][:, ch], (200, 110, 20))]
    rows += [(f"{lab} energy", e, col) for lab, e, col in zip(("GT", "generated", "shuffled"), curves["energy"],
                                                               ((30, 30, 30), (40, 90, 200), (200, 110, 20)))]
    inside = lambda times: times[times < n / fps]
    plot_tracks(out / f"tracks_{record['id']}.png", fps, rows, inside(arrays["beat_times"]),
                inside(arrays["downbeat_times"]),
                inside(partner_arrays["beat_times"]),
                f"{record['id']} ({record['style']}, {record['bpm']:g} BPM): '{record['caption']}'")
    if not video:
        return
    from musedance_core.audio.io import load_audio
    from musedance_core.video import write_video

    tiles = np.concatenate([arrays["frames"][:n], gen[:n], shuf[:n]], axis=2)
    tiles = tiles.repeat(VIDEO_ZOOM, axis=1).repeat(VIDEO_ZOOM, axis=2)
    audio = load_audio(data / record["audio"], duration=n / fps) if record.get("audio") else None
    write_video(out / f"{record['id']}.mp4", tiles, fps, audio=audio)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from musedance_core.pipeline import AnimateSettings

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=None, help="MuseDance bundle (.safetensors)")
    p.add_argument("--data", type=Path, required=True, help="SynthDance folder (its 'val' clips are used)")
    p.add_argument("--clips", type=int, default=20, help="number of validation clips (the first N)")
    p.add_argument("--frames", type=int, default=0, help="frames per clip to generate and score (0 = all)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--cfg", type=float, default=AnimateSettings().cfg)
    p.add_argument("--prompt-guidance", type=float, default=AnimateSettings().prompt_guidance,
                   help="extra guidance towards the caption's dance (default: the pipeline's, %(default)s)")
    p.add_argument("--context-length", type=int, default=AnimateSettings().context_length,
                   help="frames per context window (default: the pipeline's, %(default)s; capped by the model)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed and partner choice")
    p.add_argument("--sigma-frames", type=float, default=BAS_SIGMA_FRAMES, help="BAS tolerance in frames")
    p.add_argument("--out", type=Path, default=Path("eval_report"))
    p.add_argument("--plots", type=int, default=4, help="clips with a motion-track PNG")
    p.add_argument("--videos", type=int, default=3, help="clips with a side-by-side mp4")
    p.add_argument("--gt-as-generated", action="store_true",
                   help="evaluate the ground truth as if generated (validates the evaluator; no model needed)")
    args = p.parse_args(argv)
    if args.model is None and not args.gt_as_generated:
        p.error("--model is required unless --gt-as-generated is given.")
    if args.clips < 2:
        p.error(f"--clips must be >= 2 (shuffled music needs a partner clip); got {args.clips}.")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    t0 = time.perf_counter()
    records = fmt.read_manifest(args.data, "val")[: args.clips]
    if len(records) < 2:
        raise SystemExit(f"evaluate: '{args.data}' has {len(records)} validation clip(s); need at least 2.")
    model = None if args.gt_as_generated else load_model(args.model, "evaluate")
    args.out.mkdir(parents=True, exist_ok=True)
    loaded = [_Npz(fmt.load_clip(args.data, r)) for r in records]
    partners = pick_partners(records, args.seed)
    clips, gen_seconds = [], 0.0
    for i, (record, arrays) in enumerate(zip(records, loaded)):
        j, _ = partners[i]
        if model is None:
            gen, shuf = arrays["frames"], loaded[j]["frames"]
        else:
            settings = dict(num_frames=args.frames, steps=args.steps, cfg=args.cfg,
                            prompt_guidance=args.prompt_guidance, seed=args.seed, context_length=args.context_length)
            g0 = time.perf_counter()  # the shuffled-music video keeps this clip's caption and first frame
            gen = generate(model, arrays["frames"][0], arrays, record, record["caption"], **settings)
            shuf = generate(model, arrays["frames"][0], loaded[j], records[j], record["caption"], **settings)
            gen_seconds += time.perf_counter() - g0
        result, curves = evaluate_clip(record, arrays, records[j], loaded[j], gen, shuf, args)
        result["partner_rule_ok"] = partners[i][1]
        clips.append(result)
        if i < max(args.plots, args.videos):
            save_clip_outputs(args.out, record, arrays, loaded[j], gen, shuf, curves, args.data, i < args.videos)
        print(f"[evaluate] {i + 1}/{len(records)} {record['id']} ({record['style']}): "
              f"BAS gt {result['beat']['gt_own_bas']:.2f} gen {result['beat']['gen_own_bas']:.2f} "
              f"control {result['beat']['shuf_orig_bas']:.2f}; style {result['style']['generated']}", flush=True)
    summary = summarize(clips)
    info = {"command": " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name] + (argv if argv is not None
                                                                                    else sys.argv[1:])),
            "model": "ground truth (--gt-as-generated)" if model is None else str(args.model),
            "data": str(args.data), "clips": len(clips), "frames": min(c["frames"] for c in clips),
            "size": int(records[0]["width"]), "fps": float(records[0]["fps"]), "sigma_frames": args.sigma_frames,
            "steps": args.steps, "cfg": args.cfg,
            "prompt_guidance": args.prompt_guidance, "seed": args.seed, "context_length": args.context_length,
            "partners_ok": sum(ok for _, ok in partners), "seconds": time.perf_counter() - t0,
            "generation_seconds": gen_seconds}
    report = {"info": info, "summary": summary,
              "targets": [{"target": n, "pass": bool(ok), "value": v} for n, ok, v in targets(summary)],
              "clips": clips}
    (args.out / "report.json").write_text(json.dumps(_finite(report), indent=2) + "\n")
    write_markdown(args.out / "report.md", info, summary)
    print(f"[evaluate] wrote {args.out / 'report.md'} in {info['seconds']:.0f} s")
    return report


if __name__ == "__main__":
    main()
