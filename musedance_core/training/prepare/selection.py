"""Which clips a video gives: never across a shot cut, starting on the music's downbeats (or beats),
and only where the subject is seen, neither tiny nor filling the frame."""

from __future__ import annotations

import numpy as np

from .config import PrepareConfig


def shots_from_cuts(cuts: list[int], total: int) -> list[tuple[int, int]]:
    """Frame ranges [start, end) of the shots that ``cuts`` (first frames of new shots) divide
    ``total`` frames into."""
    bounds = [0, *sorted(c for c in set(cuts) if 0 < c < total), total]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def event_frames(times: np.ndarray, fps: float) -> np.ndarray:
    """The output frames during which events at ``times`` (seconds) fall, unique and sorted: a clip
    starting there has the event in its first frame, never just before its start."""
    return np.unique(np.floor(np.asarray(times, np.float64) * fps + 1e-6).astype(int))


def plan_clips(shots: list[tuple[int, int]], beat_times: np.ndarray, downbeat_times: np.ndarray,
               cfg: PrepareConfig) -> list[tuple[int, int]]:
    """(start frame, shot index) of each clip: inside one shot, each start at least ``stride`` after
    the last, on a downbeat (``align="downbeat"``; beats where a shot has no downbeat to start on),
    on a beat (``"beat"``), or every stride from the shot's start (``"none"``, and music without a
    beat). ``max_clips_per_video`` keeps that many, spread evenly."""
    n, stride = cfg.clip_frames, cfg.stride_frames
    beats, downbeats = event_frames(beat_times, cfg.fps), event_frames(downbeat_times, cfg.fps)
    plan = []
    for index, (a, b) in enumerate(shots):
        last = b - n  # the latest start whose clip stays in the shot
        if last < a:
            continue
        grid = np.arange(a, last + 1, stride)
        options = {"downbeat": [downbeats, beats], "beat": [beats], "none": []}[cfg.align]
        candidates = grid
        for events in options:
            inside = events[(events >= a) & (events <= last)]
            if len(inside):
                candidates = inside
                break
        previous = None
        for start in candidates:
            if previous is None or start - previous >= stride:
                plan.append((int(start), index))
                previous = start
    k = cfg.max_clips_per_video
    if k is not None and len(plan) > k:
        picks = sorted(set(np.linspace(0, len(plan) - 1, k).round().astype(int).tolist()))
        plan = [plan[i] for i in picks]
    return plan


def subject_check(masks: np.ndarray, cfg: PrepareConfig) -> tuple[str | None, float]:
    """(reason the clip is refused or None, mean subject area as a frame fraction) for ``masks``
    [T, H, W]: the subject must be seen (at least a tenth of ``min_subject``) in ``min_visible`` of
    the frames, and its mean area must lie between ``min_subject`` and ``max_subject``."""
    t = len(masks)
    area = (masks.reshape(t, -1) > 0).mean(axis=1)
    mean = float(area.mean())
    seen = float((area >= cfg.min_subject / 10).mean())
    if seen < cfg.min_visible:
        return f"subject seen in {seen:.0%} of the frames (--min-visible {cfg.min_visible:.0%})", mean
    if mean < cfg.min_subject:
        return f"subject too small ({mean:.1%} of the frame; --min-subject {cfg.min_subject:.1%})", mean
    if mean > cfg.max_subject:
        return f"subject fills the frame ({mean:.0%}; --max-subject {cfg.max_subject:.0%})", mean
    return None, mean
