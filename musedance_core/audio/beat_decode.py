"""Beats and downbeats from the network's activations: one best path over tempo and bar position.

A semi-Markov form of the bar-pointer DBN (Whiteley et al. 2006; Böck et al. 2016, madmom):
the frames between two beats contribute nothing but the "no beat" evidence, so only the beats
themselves need states. A state is (the interval since the previous beat in frames, the beat's
position in its bar for each candidate meter), kept at every frame; a path's score is

    sum over its beats of   log b/(1-b) + beat_bonus  +  downbeat_weight * (log d if first in bar else log(1-d))
    minus tempo_change_cost * |log(interval / previous interval)|   per beat (within tempo_band bins),
    or jump_cost for a sudden tempo change to any interval,

with b and d the beat and downbeat probabilities at the beat's frame. The path covers the whole
track, as the bar pointer of the DBN runs through every frame: its first beat comes less than its
interval after the start, its last less than its interval before the end, so beats continue
through a quiet intro or a break at the tempo around them; afterwards the leading and trailing
beats with next to no evidence are trimmed (``trim_edges``; beats in near-silence are dropped in
``beats.py``). Because every interval is at least the shortest one allowed, all frames of a block
that short depend only on frames before the block: the recursion runs one block at a time in
numpy (about four blocks per second of music: 13 frames at 220 BPM, 50 frames per second).

The tempo range (``min_bpm``/``max_bpm``) bounds the interval, which is how a user picks the
octave; the meters allowed are 2, 3 and 4 beats per bar unless one is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ACTIVATION_FLOOR = 1e-4
DEFAULT_METERS = (2, 3, 4)


@dataclass(frozen=True)
class DecodeSettings:
    """The path's costs (in nats, the unit of the log-probabilities). Chosen on held-out renders of
    the training generator (``training/tune_beat_decoder.py`` on 150 pieces of seed 1: best of 48
    combinations, beat F 0.969 and downbeat F 0.875), never on the evaluation set. ``edge_trim``
    0.3 and 0.5 scored alike there (beat F 0.9641 and 0.9639); 0.5 is librosa's trim rule."""

    tempo_band: int = 3  # interval bins a beat may differ from the previous one at the smooth cost
    tempo_change_cost: float = 10.0  # per unit of |log interval ratio|: 4 % (1 frame at 120 BPM) = 0.4
    jump_cost: float = 12.0  # a sudden change of tempo (any interval), e.g. a new section
    downbeat_weight: float = 0.5
    beat_bonus: float = 2.0  # added per beat: HMM's log(lambda - 1), the prior odds of a frame being a beat
    edge_trim: float = 0.5  # leading/trailing beats weaker than this times the median beat are dropped


@dataclass(frozen=True)
class DecodedBeats:
    beats: np.ndarray  # [NB] beat positions in frames (float, sub-frame refined)
    positions: np.ndarray  # [NB] position in the bar, 0 = downbeat
    beats_per_bar: int
    salience: float  # mean beat probability at the chosen beats (0..1)


def decode_beats(activations: np.ndarray, frame_rate: float, min_bpm: float, max_bpm: float,
                 meters: tuple[int, ...] = DEFAULT_METERS, settings: DecodeSettings = DecodeSettings()) -> DecodedBeats:
    """Best beat path through ``activations`` [T, 2] (beat, downbeat probabilities per frame)."""
    act = np.clip(np.asarray(activations, np.float64), ACTIVATION_FLOOR, 1.0 - ACTIVATION_FLOOR)
    b, d = act[:, 0], np.minimum(act[:, 1], act[:, 0])
    n = len(b)
    intervals = np.arange(max(2, int(math.floor(60.0 * frame_rate / max_bpm))),
                          int(math.ceil(60.0 * frame_rate / min_bpm)) + 1)
    states = [(m, k) for m in meters for k in range(m)]
    if n == 0 or not states:
        return DecodedBeats(np.zeros(0), np.zeros(0, np.int64), meters[0] if meters else 4, 0.0)
    prev_state = np.array([states.index((m, (k - 1) % m)) for m, k in states])
    first_in_bar = np.array([k == 0 for _, k in states])
    bar_known = np.array([m > 1 for m, _ in states])
    bar = np.where(first_in_bar[None, :], np.log(d)[:, None], np.log1p(-d)[:, None])  # [T, P]
    obs = (np.log(b) - np.log1p(-b))[:, None] + settings.downbeat_weight * bar * bar_known[None, :]
    nt, npos = len(intervals), len(states)
    deltas = np.arange(-settings.tempo_band, settings.tempo_band + 1)
    neighbour = np.arange(nt)[:, None] + deltas[None, :]  # [nt, 2w+1]
    in_range = (neighbour >= 0) & (neighbour < nt)
    neighbour = np.clip(neighbour, 0, nt - 1)
    log_iv = np.log(intervals)
    change = np.where(in_range, settings.tempo_change_cost * np.abs(log_iv[:, None] - log_iv[neighbour]), np.inf)

    score = np.full((n, nt, npos), -np.inf, np.float32)
    # back-pointer: -1 = path starts here, 0..2w = neighbour interval, 2w+1 = jump
    back = np.full((n, nt, npos), -1, np.int8)
    best_interval = np.zeros((n, npos), np.int64)  # argmax over intervals at each frame (for jumps)
    best_score = np.full((n, npos), -np.inf)
    jump = len(deltas)
    step = int(intervals[0])
    for t0 in range(0, n, step):
        t = np.arange(t0, min(t0 + step, n))
        src = t[:, None] - intervals[None, :]  # [L, nt]
        valid = src >= 0
        srcc = np.maximum(src, 0)
        prev = score[srcc[:, :, None], neighbour[None, :, :]][..., prev_state]  # [L, nt, 2w+1, P]
        prev = prev - change[None, :, :, None]
        k = np.argmax(prev, axis=2)  # [L, nt, P]
        smooth = np.take_along_axis(prev, k[:, :, None, :], axis=2)[:, :, 0, :]
        jumped = best_score[srcc][:, :, prev_state] - settings.jump_cost  # [L, nt, P]
        cont = np.maximum(smooth, jumped)
        kind = np.where(jumped > smooth, jump, k)
        cont = np.where(valid[:, :, None], cont, -np.inf)
        # a path may begin at a beat whose interval reaches back before the start of the track
        start = (t[:, None] < intervals[None, :])[:, :, None] & (cont < 0.0)
        total = np.where(start, 0.0, cont) + obs[t][:, None, :] + settings.beat_bonus
        score[t] = total
        back[t] = np.where(start, -1, kind)
        best_interval[t] = np.argmax(total, axis=1)
        best_score[t] = np.max(total, axis=1)

    # and ends at a beat whose next one, at the same interval, would fall after the end
    last = max(n - int(intervals[-1]), 0)
    tail = np.where((np.arange(last, n)[:, None] + intervals[None, :] >= n)[:, :, None], score[last:], -np.inf)
    t, j, p = np.unravel_index(int(np.argmax(tail.reshape(-1))), tail.shape)
    t += last
    frames, pos = [], []
    while True:
        frames.append(int(t))
        pos.append(states[p][1])
        kind = int(back[t, j, p])
        if kind < 0:
            break
        src = int(t - intervals[j])
        pp = int(prev_state[p])
        j = int(best_interval[src, pp]) if kind == jump else int(neighbour[j, kind])
        t, p = src, pp
    frames_arr, pos_arr = np.asarray(frames[::-1], np.int64), np.asarray(pos[::-1], np.int64)
    meter = states[p][0]
    keep = trim_edges(b[frames_arr], settings.edge_trim)
    frames_arr, pos_arr = frames_arr[keep], pos_arr[keep]
    salience = float(np.mean(b[frames_arr])) if len(frames_arr) else 0.0
    return DecodedBeats(refine_peaks(frames_arr, b), pos_arr, meter, salience)


def trim_edges(strength: np.ndarray, ratio: float) -> slice:
    """The beats between the first and the last whose probability is at least ``ratio`` times the
    median over all beats: the path runs to both ends of the track, but the beats it places in a
    reverb tail or before the music starts have next to no evidence."""
    if len(strength) == 0:
        return slice(0, 0)
    strong = np.flatnonzero(strength >= ratio * float(np.median(strength)))
    return slice(int(strong[0]), int(strong[-1]) + 1) if strong.size else slice(0, 0)


def refine_peaks(frames: np.ndarray, activation: np.ndarray) -> np.ndarray:
    """Sub-frame position of each beat: the parabola through the activation around its frame,
    after moving to a higher neighbour if there is one."""
    n = len(activation)
    out = frames.astype(np.float64)
    for i, f in enumerate(frames):
        if 0 < f < n - 1:
            if activation[f - 1] > activation[f] or activation[f + 1] > activation[f]:
                f = f - 1 if activation[f - 1] > activation[f + 1] else f + 1
            if 0 < f < n - 1:
                a, c, e = activation[f - 1], activation[f], activation[f + 1]
                denom = a - 2 * c + e
                shift = 0.5 * (a - e) / denom if denom < 0 else 0.0
                out[i] = f + float(np.clip(shift, -0.5, 0.5))
            else:
                out[i] = float(f)
    return out
