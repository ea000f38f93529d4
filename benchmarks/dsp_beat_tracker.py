"""The hand-tuned DSP beat tracker MuseDance used before its learned one, kept as a baseline.

``benchmarks/beat_benchmark.py`` runs it as tracker ``musedance-dsp`` beside the learned tracker
(``musedance_core/audio/beats.py``) and librosa, so the old figures can be reproduced on any set.
It left the core because no measured case needs it: the learned tracker is ahead of it in every
category of the evaluation set (BENCHMARKS.md). Frozen: it reuses the core's feature helpers.

Method (each step a small function below):
1. Onset curve: ``tempogram.beat_envelope`` (log-mel flux, high-passed, level-normalised).
2. Tempo: short-time autocorrelation tempogram (8 s windows, 0.5 s hop); the global tempo is the
   peak of the mean tempogram under a log-normal prior centred on 120 BPM with a 0.6-octave
   spread (Moelants 2002); the local tempo is a Viterbi path through the tempogram that stays
   near that octave. If the onsets half way between the tracked beats are about as strong as
   those on them, the tempo is doubled.
3. Beatless check: the pulse clarity (mean normalised autocorrelation on the tempo path) must be
   clearly above the chance level of an envelope without a pulse (~0.1-0.2 for 8 s windows).
4. Beats: Ellis' dynamic-programming tracker (Ellis 2007, as in librosa) driven by the local
   tempo curve; beats in silence are dropped, trailing beats without an onset are trimmed.
5. Downbeats: for each meter (given, or 3 and 4) and phase, the contrast of bass onsets and
   harmony changes on that phase against the others; the best pair wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from musedance_core.audio.analysis import SpectralAnalysis, analyze
from musedance_core.audio.beats import audible_beats, check_fps, check_tempo_range, make_beat_track, tempo_from_beats
from musedance_core.audio.tempogram import beat_envelope, tempogram
from musedance_core.errors import InputError
from musedance_core.types import BeatTrack, num_video_frames

# Log-normal tempo prior (centre, std in octaves). Tempi in music cluster around 120 BPM with most
# pieces within 80-160 (Moelants 2002); librosa's 1-octave spread lets eighth-note hi-hats (double
# tempo) or the half bar win, 0.6 octave still allows 60-240 BPM when the pulse there is clear.
PRIOR_BPM, PRIOR_OCTAVES = 120.0, 0.6
BINS_PER_OCTAVE = 48
LOCAL_TEMPO_OCTAVES = 0.45  # how far the local tempo may wander from the global tempo (std)
TEMPO_STEP_COST = 0.004  # Viterbi cost per tempo bin of change between tempogram windows
# Mean normalised autocorrelation on the tempo path below this = no steady beat. An envelope
# without a pulse (ambient pads, noise, or its own shuffled copy) scores 0.06-0.19 with 8 s windows
# (the chance peak of the autocorrelation over the tempo range); music with drums scores 0.35-0.8.
# Drumless music with a pulse (a string waltz) can score near this and then reads as beatless.
MIN_PULSE_CLARITY = 0.25
# Onsets half way between the beats about as strong as those on the beats (the weaker of the two
# medians over the stronger) mean the tracker took every other beat (kick on 1 and 3 looked most
# periodic, but the snare on 2 and 4 is as strong): the tempo is doubled. Measured: 0.78-0.9 for
# such half-tempo tracks, <= 0.72 for off-beat hi-hats or bass in house/funk at the right tempo.
DOUBLE_TEMPO_RATIO = 0.75
PREFER_MAX_BPM = 190.0  # never double a tempo beyond this (a faster tactus is rare)
METER_CANDIDATES = (3, 4)
DP_TIGHTNESS = 100.0  # Ellis' tightness: how strictly beats keep the local period
# Trailing beats whose onset strength is below this fraction of the RMS onset strength at all
# beats are trimmed (librosa's trim rule): the tracker keeps its period through a reverb tail.
TRIM_ONSET_RATIO = 0.5
TRIM_SEARCH_S = 0.025  # a beat's onset strength is the peak of the onset curve within this distance



@dataclass(frozen=True)
class TempoEstimate:
    bpm: float  # global tempo
    local_bpm: np.ndarray  # [F] tempo at each analysis frame
    clarity: float  # mean tempogram strength at the chosen path, 0..1


def track_beats_dsp(
    samples: np.ndarray,
    sample_rate: int,
    fps: float,
    *,
    min_bpm: float | None = None,
    max_bpm: float | None = None,
    beats_per_bar: int | None = None,
    analysis: SpectralAnalysis | None = None,
) -> BeatTrack:
    """Find beats and downbeats in mono audio and sample beat features at ``fps``.

    Args:
        samples: float [N] mono audio.
        sample_rate: its rate in Hz.
        fps: video frame rate of ``frame_features`` (1..120).
        min_bpm, max_bpm: optional tempo range hint (30..300); defaults 50..220.
        beats_per_bar: meter for downbeats; ``None`` estimates 3 or 4.
        analysis: a precomputed ``analyze(samples, sample_rate)`` to reuse.

    Returns:
        ``BeatTrack`` with ``round(duration * fps)`` feature rows.
    """
    fps = check_fps(fps)
    lo, hi = check_tempo_range(min_bpm, max_bpm)
    if beats_per_bar is not None and not (1 <= int(beats_per_bar) <= 16):
        raise InputError(f"beats_per_bar must be 1..16 (or None to estimate it); got {beats_per_bar}.")
    if analysis is None:
        analysis = analyze(samples, sample_rate)
    num_frames = num_video_frames(analysis.duration, fps)
    notes: list[str] = []

    empty = np.zeros(0, np.float64)
    if analysis.is_silent:
        notes.append(f"no beat found: the audio is silent (loudest moment {analysis.peak_dbfs:.0f} dBFS).")
        return make_beat_track(analysis, fps, num_frames, empty, empty, 0.0, beats_per_bar or 4, 0.0, notes)

    envelope = beat_envelope(analysis)
    tempo = estimate_tempo(envelope, analysis.frame_rate, lo, hi)
    if tempo.clarity < MIN_PULSE_CLARITY:
        notes.append(f"no beat found: no steady pulse in the music (pulse clarity {tempo.clarity:.2f} "
                     f"< {MIN_PULSE_CLARITY}).")
        return make_beat_track(analysis, fps, num_frames, empty, empty, 0.0, beats_per_bar or 4, tempo.clarity, notes)

    beat_frames = dp_beats(envelope, tempo.local_bpm, analysis.frame_rate)
    if tempo.bpm * 2 <= min(hi, PREFER_MAX_BPM) and midpoint_ratio(envelope, beat_frames) >= DOUBLE_TEMPO_RATIO:
        tempo = TempoEstimate(tempo.bpm * 2, tempo.local_bpm * 2, tempo.clarity)
        beat_frames = dp_beats(envelope, tempo.local_bpm, analysis.frame_rate)
    beat_frames = beat_frames[audible_beats(beat_frames, analysis)]
    beat_frames = trim_trailing_beats(beat_frames, analysis)
    if len(beat_frames) < 2:
        notes.append("no beat found: fewer than two beats were detected.")
        return make_beat_track(analysis, fps, num_frames, empty, empty, 0.0, beats_per_bar or 4, tempo.clarity, notes)
    meter, phase = estimate_downbeats(beat_frames, analysis, beats_per_bar)
    beat_times = beat_frames / analysis.frame_rate
    downbeat_times = beat_times[phase::meter]
    bpm = tempo_from_beats(beat_times)
    return make_beat_track(analysis, fps, num_frames, beat_times, downbeat_times, bpm, meter, tempo.clarity, notes)


def estimate_tempo(envelope: np.ndarray, frame_rate: float, min_bpm: float, max_bpm: float) -> TempoEstimate:
    """Global tempo and a smooth local tempo curve (Viterbi through the tempogram)."""
    n_bins = int(round(math.log2(max_bpm / min_bpm) * BINS_PER_OCTAVE)) + 1
    bpms = min_bpm * 2.0 ** (np.arange(n_bins) / BINS_PER_OCTAVE)
    tg, centres = tempogram(envelope, frame_rate, bpms)
    octaves = np.log2(bpms)
    prior = np.exp(-0.5 * ((octaves - math.log2(PRIOR_BPM)) / PRIOR_OCTAVES) ** 2)
    global_bin = int(np.argmax(tg.mean(axis=0) * prior))
    near = np.exp(-0.5 * ((octaves - octaves[global_bin]) / LOCAL_TEMPO_OCTAVES) ** 2)
    path = _viterbi(tg * near, TEMPO_STEP_COST)
    clarity = float(tg[np.arange(len(path)), path].mean())
    local = np.interp(np.arange(len(envelope)), centres, bpms[path])
    return TempoEstimate(float(bpms[global_bin]), local, clarity)


def _viterbi(scores: np.ndarray, step_cost: float) -> np.ndarray:
    """Best path through [W, B] scores with a cost of ``step_cost`` per bin moved."""
    w, b = scores.shape
    idx = np.arange(b)
    penalty = step_cost * np.abs(idx[:, None] - idx[None, :])  # [to, from]
    total = scores[0].copy()
    back = np.zeros((w, b), np.int64)
    for i in range(1, w):
        cand = total[None, :] - penalty
        back[i] = np.argmax(cand, axis=1)
        total = cand[idx, back[i]] + scores[i]
    path = np.empty(w, np.int64)
    path[-1] = int(np.argmax(total))
    for i in range(w - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def dp_beats(envelope: np.ndarray, local_bpm: np.ndarray, frame_rate: float,
             tightness: float = DP_TIGHTNESS) -> np.ndarray:
    """Ellis' dynamic-programming beat tracker (Ellis 2007) with a time-varying beat period.

    Each frame's score is its onset strength plus the best score of a predecessor beat between
    half and twice the local period back, penalised by ``tightness * log(interval/period)^2``.
    Plain numpy (no JIT, so no compile pause on first use).

    Returns:
        beat positions in analysis frames (float, sub-frame refined on the onset curve).
    """
    from scipy.ndimage import gaussian_filter1d

    n = len(envelope)
    period = np.maximum(frame_rate * 60.0 / np.asarray(local_bpm, float), 2.0)  # [F] frames per beat
    score = gaussian_filter1d(envelope / (envelope.std() + 1e-9), float(np.median(period)) / 32.0)
    cum = score.copy()
    back = np.full(n, -1, np.int64)
    offsets = np.arange(1, int(np.ceil(2 * period.max())) + 2)  # candidate distances to predecessor
    log_off = np.log(offsets)
    started = False
    threshold = 0.01 * score.max()
    for i in range(n):
        p = period[i]
        lo, hi = int(round(p / 2)), min(int(2 * p), i)
        if hi >= lo >= 1:
            d = offsets[lo - 1:hi]
            cand = cum[i - d] - tightness * (log_off[lo - 1:hi] - np.log(p)) ** 2
            k = int(np.argmax(cand))
            if started or score[i] >= threshold:
                cum[i] = score[i] + cand[k]
                back[i] = i - d[k]
        if score[i] >= threshold:
            started = True
    # Last beat: the latest local maximum of the cumulative score above half the median peak, or
    # a better one within the beat period before it (when the audio stops just before a beat the
    # score still rises at the very end; backtracking from there bends the last beats off the onsets).
    peaks = np.flatnonzero((cum[1:-1] >= cum[:-2]) & (cum[1:-1] >= cum[2:])) + 1
    if peaks.size == 0:
        return np.zeros(0)
    good = peaks[cum[peaks] >= 0.5 * np.median(cum[peaks])]
    latest = int(good[-1] if good.size else peaks[-1])
    first = max(latest - int(round(period[latest])) + 1, 0)
    beats = [first + int(np.argmax(cum[first:latest + 1]))]
    while back[beats[-1]] >= 0:
        beats.append(int(back[beats[-1]]))
    beats = np.asarray(beats[::-1], dtype=np.float64)
    return _refine(beats, envelope)


def _refine(beats: np.ndarray, envelope: np.ndarray) -> np.ndarray:
    """Move each beat to the onset peak within +-1 frame, with parabolic sub-frame interpolation."""
    n = len(envelope)
    out = beats.copy()
    for j, b in enumerate(beats.astype(int)):
        lo, hi = max(b - 1, 1), min(b + 1, n - 2)
        if hi < lo:
            continue
        k = lo + int(np.argmax(envelope[lo:hi + 1]))
        a, c, e = envelope[k - 1], envelope[k], envelope[k + 1]
        denom = a - 2 * c + e
        shift = 0.5 * (a - e) / denom if denom < 0 else 0.0
        out[j] = k + float(np.clip(shift, -0.5, 0.5))
    return out


def midpoint_ratio(envelope: np.ndarray, beat_frames: np.ndarray) -> float:
    """Balance of the onsets on and half way between the beats: min/max of their medians (0..1).

    Symmetric, so it does not matter whether a half-tempo tracker landed on the kicks or the snares.
    """
    if len(beat_frames) < 4:
        return 0.0
    from scipy.ndimage import maximum_filter1d

    peaks = maximum_filter1d(envelope, size=5)  # strongest onset within +-2 frames
    on = peaks[np.clip(np.round(beat_frames).astype(int), 0, len(envelope) - 1)]
    mid = peaks[np.clip(np.round((beat_frames[1:] + beat_frames[:-1]) / 2).astype(int), 0, len(envelope) - 1)]
    on_level, mid_level = float(np.median(on)), float(np.median(mid))
    return min(on_level, mid_level) / (max(on_level, mid_level) + 1e-9)


def trim_trailing_beats(beat_frames: np.ndarray, analysis: SpectralAnalysis) -> np.ndarray:
    """Drop the trailing beats with no onset under them (librosa's ``trim`` rule, end only).

    A beat's strength is the peak of the raw onset curve (log-mel flux, not level-normalised, so
    a decaying reverb tail stays weak) within ``TRIM_SEARCH_S``; the beats after the last one at
    least ``TRIM_ONSET_RATIO`` times the RMS strength over all beats are removed. Leading beats
    are not trimmed: a quiet intro has weak onsets but real beats, and leading silence is already
    dropped by ``audible_beats``.
    """
    if len(beat_frames) == 0:
        return beat_frames
    strength = beat_onset_strength(beat_frames, analysis.onset, int(round(TRIM_SEARCH_S * analysis.frame_rate)))
    strong = np.flatnonzero(strength >= TRIM_ONSET_RATIO * np.sqrt(np.mean(strength**2)))
    if strong.size == 0:
        return beat_frames[:0]
    return beat_frames[:strong[-1] + 1]


def beat_onset_strength(beat_frames: np.ndarray, onset: np.ndarray, radius: int) -> np.ndarray:
    """[NB] peak of ``onset`` within ``radius`` analysis frames of each beat."""
    from scipy.ndimage import maximum_filter1d

    peaks = maximum_filter1d(onset, size=2 * radius + 1, mode="nearest")
    return peaks[np.clip(np.round(beat_frames).astype(int), 0, len(onset) - 1)].astype(np.float64)


def estimate_downbeats(beat_frames: np.ndarray, analysis: SpectralAnalysis,
                       beats_per_bar: int | None) -> tuple[int, int]:
    """Choose (meter, phase): beats ``phase, phase+meter, ...`` are the downbeats."""
    idx = np.clip(beat_frames.astype(int), 0, analysis.num_frames - 1)
    # Bass onset at each beat (max over +-2 frames) and harmony change into each beat.
    padded = np.pad(analysis.onset_bass, 2)
    bass = np.max(np.stack([padded[idx + k] for k in range(5)]), axis=0)
    bounds = np.concatenate([idx, [analysis.num_frames]])
    chroma = np.stack([analysis.chroma[:, a:max(b, a + 1)].mean(axis=1) for a, b in zip(bounds[:-1], bounds[1:])])
    chroma /= np.linalg.norm(chroma, axis=1, keepdims=True) + 1e-9
    change = np.concatenate([[0.0], 1.0 - (chroma[1:] * chroma[:-1]).sum(axis=1)])
    feature = _zscore(bass) + _zscore(change)
    meters = (int(beats_per_bar),) if beats_per_bar else METER_CANDIDATES
    best = (-np.inf, meters[0], 0)
    for meter in meters:
        if meter == 1 or len(feature) < 2 * meter:
            best = max(best, (0.0, meter, 0))
            continue
        for phase in range(meter):
            on = feature[phase::meter]
            off = np.delete(feature, np.arange(phase, len(feature), meter))
            best = max(best, (float(on.mean() - off.mean()), meter, phase))
    return best[1], best[2]


def _zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-9)


