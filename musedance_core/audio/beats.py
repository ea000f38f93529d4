"""Beat and downbeat tracking with a learned network, and per-video-frame beat features.

``track_beats`` (used by the CLI, the Beat Extractor node, the data preparation and the
pipeline) runs:
1. ``beat_net``: a small dilated TCN over a log-mel spectrogram at 50 frames/s gives each frame a
   beat and a downbeat probability. Its weights ship in ``weights/beat_tracker.safetensors`` and
   were trained only on music the project renders itself (``training/make_beat_data.py``).
2. ``beat_decode``: one best path over tempo and bar position through those probabilities, within
   the tempo range (which is how ``min_bpm``/``max_bpm`` choose the octave) and the meters allowed
   (2, 3 or 4 beats per bar, or the one given).
3. Beats in near-silence are dropped; ``beat_offset_ms`` shifts the grid by hand.
4. "No beat" only when the network finds none with any confidence (silence, noise, pads, speech);
   music whose beats it is unsure of gets them with a low-confidence note.
The hand-tuned DSP tracker it replaced is kept as a baseline in ``benchmarks/dsp_beat_tracker.py``.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..notes import note
from ..types import BEAT_FEATURE_NAMES, BeatTrack, num_video_frames
from .analysis import SpectralAnalysis, analyze, pool_to_frames

MIN_FPS, MAX_FPS = 1.0, 120.0
MIN_BPM, MAX_BPM = 30.0, 300.0
DEFAULT_MIN_BPM, DEFAULT_MAX_BPM = 50.0, 220.0
MAX_BEAT_OFFSET_MS = 1000.0
BEAT_PULSE_SIGMA_S = 0.04  # width of the Gaussian beat pulse (seconds, at least half a frame)
SILENT_BEAT_DB = 45.0  # beats more than this below the track's loudest moment are dropped
# Confidence = mean beat probability at the decoded beats. Below NO_BEAT_CONFIDENCE = no beat;
# below LOW_CONFIDENCE = beats with a note. On the tuning set (training/tune_beat_decoder.py, 150
# held-out renders of the training generator) the most confident beatless piece scored 0.12 and
# 95 % of the pieces with beats scored above 0.60: the no-beat line sits near their geometric mean.
NO_BEAT_CONFIDENCE = 0.3
LOW_CONFIDENCE = 0.5


def track_beats(
    samples: np.ndarray,
    sample_rate: int,
    fps: float,
    *,
    min_bpm: float | None = None,
    max_bpm: float | None = None,
    beats_per_bar: int | None = None,
    beat_offset_ms: float = 0.0,
    analysis: SpectralAnalysis | None = None,
) -> BeatTrack:
    """Find beats and downbeats in mono audio and sample beat features at ``fps``.

    Args:
        samples: float [N] mono audio.
        sample_rate: its rate in Hz.
        fps: video frame rate of ``frame_features`` (1..120).
        min_bpm, max_bpm: optional tempo range (30..300); defaults 50..220. The beats are the
            pulse inside this range, so raising ``min_bpm`` above a half-tempo reading doubles it.
        beats_per_bar: meter for downbeats; ``None`` estimates 2, 3 or 4.
        beat_offset_ms: shift every beat and downbeat by this much (-1000..1000; + = later).
        analysis: a precomputed ``analyze(samples, sample_rate)`` to reuse.

    Returns:
        ``BeatTrack`` with ``round(duration * fps)`` feature rows; ``pulse_clarity`` is the
        tracker's confidence (mean beat probability at the beats, 0..1).
    """
    from .beat_decode import DEFAULT_METERS, decode_beats
    from .beat_net import FRAME_RATE, NET_SAMPLE_RATE, beat_activations

    fps = check_fps(fps)
    lo, hi = check_tempo_range(min_bpm, max_bpm)
    if beats_per_bar is not None and not (1 <= int(beats_per_bar) <= 16):
        raise InputError(f"beats_per_bar must be 1..16 (or None to estimate it); got {beats_per_bar}.")
    offset_s = check_beat_offset(beat_offset_ms) / 1000.0
    # the network and the analysis read the same rate: resample once, for both
    mono = np.asarray(samples, np.float32)
    rate = sample_rate
    if sample_rate != NET_SAMPLE_RATE and mono.ndim == 1 and mono.size:  # else analyze() names the problem
        import soxr

        mono, rate = soxr.resample(mono, sample_rate, NET_SAMPLE_RATE, quality="HQ").astype(np.float32), NET_SAMPLE_RATE
    if analysis is None:
        analysis = analyze(mono, rate)
    num_frames = num_video_frames(analysis.duration, fps)
    notes: list[str] = []
    empty = np.zeros(0, np.float64)
    if analysis.is_silent:
        notes.append(f"no beat found: the audio is silent (loudest moment {analysis.peak_dbfs:.0f} dBFS).")
        return make_beat_track(analysis, fps, num_frames, empty, empty, 0.0, beats_per_bar or 4, 0.0, notes)

    meters = (int(beats_per_bar),) if beats_per_bar else DEFAULT_METERS
    decoded = decode_beats(beat_activations(mono), FRAME_RATE, lo, hi, meters)
    beat_times = decoded.beats / FRAME_RATE + offset_s
    keep = (beat_times >= 0) & (beat_times <= analysis.duration)
    keep[keep] = audible_beats(beat_times[keep] * analysis.frame_rate, analysis)
    beat_times, positions = beat_times[keep], decoded.positions[keep]
    if decoded.salience < NO_BEAT_CONFIDENCE or len(beat_times) < 2:
        why = (f"no pulse the tracker is sure of (confidence {decoded.salience:.2f} < {NO_BEAT_CONFIDENCE})"
               if decoded.salience < NO_BEAT_CONFIDENCE else "fewer than two beats in the audible part")
        notes.append(f"no beat found: {why}; if the music has a beat, give min_bpm/max_bpm around its tempo.")
        return make_beat_track(analysis, fps, num_frames, empty, empty, 0.0, beats_per_bar or 4, decoded.salience, notes)
    if decoded.salience < LOW_CONFIDENCE:
        notes.append(f"beats found with low confidence ({decoded.salience:.2f}): check them in the beat plot; "
                     f"min_bpm/max_bpm and beat_offset_ms can correct the tempo and the grid.")
    downbeat_times = beat_times[positions == 0]
    bpm = tempo_from_beats(beat_times)
    return make_beat_track(analysis, fps, num_frames, beat_times, downbeat_times, bpm, decoded.beats_per_bar,
                   decoded.salience, notes)


def check_beat_offset(beat_offset_ms: float) -> float:
    value = float(beat_offset_ms)
    if not math.isfinite(value) or abs(value) > MAX_BEAT_OFFSET_MS:
        raise InputError(f"beat_offset_ms must be between -{MAX_BEAT_OFFSET_MS:g} and {MAX_BEAT_OFFSET_MS:g}; "
                         f"got {beat_offset_ms}.")
    return value


def tempo_from_beats(beat_times: np.ndarray) -> float:
    """Tempo in BPM: mean of the beat intervals within 15 % of the median (robust to gaps and
    finer than the median, which is quantised to analysis frames)."""
    intervals = np.diff(beat_times)
    median = float(np.median(intervals))
    typical = intervals[np.abs(intervals - median) <= 0.15 * median]
    return float(60.0 / typical.mean())


def check_fps(fps: float) -> float:
    fps = float(fps)
    if not math.isfinite(fps) or not (MIN_FPS <= fps <= MAX_FPS):
        raise InputError(f"fps must be between {MIN_FPS:g} and {MAX_FPS:g}; got {fps}. Typical: 8, 12, 24 or 30.")
    return fps


def check_tempo_range(min_bpm: float | None, max_bpm: float | None) -> tuple[float, float]:
    """Validate a tempo hint; a zero or None bound means 'default'."""
    lo = float(min_bpm) if min_bpm else DEFAULT_MIN_BPM
    hi = float(max_bpm) if max_bpm else DEFAULT_MAX_BPM
    if min_bpm and not max_bpm:
        hi = max(hi, lo * 2.0)
    if max_bpm and not min_bpm:
        lo = min(lo, hi / 2.0)
    if not (MIN_BPM <= lo < hi <= MAX_BPM):
        raise InputError(f"tempo range must satisfy {MIN_BPM:g} <= min_bpm < max_bpm <= {MAX_BPM:g}; "
                         f"got min_bpm={min_bpm}, max_bpm={max_bpm}.")
    return lo, hi


def audible_beats(beat_frames: np.ndarray, analysis: SpectralAnalysis) -> np.ndarray:
    """True for the beats (in analysis frames) at moments less than SILENT_BEAT_DB below the track's
    peak: beats in leading or trailing silence or a silent break are False."""
    if len(beat_frames) == 0:
        return np.zeros(0, bool)
    from scipy.ndimage import maximum_filter1d

    loud = maximum_filter1d(analysis.rms_db, size=int(0.5 * analysis.frame_rate) | 1)
    idx = np.clip(beat_frames.astype(int), 0, len(loud) - 1)
    return loud[idx] > analysis.peak_dbfs - SILENT_BEAT_DB


def make_beat_track(analysis: SpectralAnalysis, fps: float, num_frames: int, beat_times: np.ndarray,
            downbeat_times: np.ndarray, bpm: float, meter: int, confidence: float,
            notes: list[str]) -> BeatTrack:
    """The BeatTrack of decoded beats: per-frame features and local tempo at ``fps``; ``notes`` said
    (a benchmark's baseline tracker builds its result with it too)."""
    for message in notes:
        note(message)
    features = beat_frame_features(beat_times, downbeat_times, analysis, fps, num_frames)
    if len(beat_times) < 2:
        local = np.zeros(num_frames, np.float32)
    else:  # tempo from the beat intervals, held outside the first/last beat
        mids = (beat_times[1:] + beat_times[:-1]) / 2
        local = np.interp(np.arange(num_frames) / fps, mids, 60.0 / np.diff(beat_times)).astype(np.float32)
    return BeatTrack(
        beat_times=beat_times.astype(np.float64),
        downbeat_times=downbeat_times.astype(np.float64),
        tempo=float(bpm),
        beats_per_bar=int(meter),
        frame_features=features,
        fps=fps,
        duration=float(analysis.duration),
        local_tempo=local,
        pulse_clarity=float(confidence),
        notes=tuple(notes),
    )


def beat_frame_features(beat_times: np.ndarray, downbeat_times: np.ndarray, analysis: SpectralAnalysis,
                        fps: float, num_frames: int) -> np.ndarray:
    """[T, K] beat features (columns named by BEAT_FEATURE_NAMES) for video frames at ``fps``."""
    t = np.arange(num_frames) / fps
    sigma = max(BEAT_PULSE_SIGMA_S, 0.5 / fps)
    onset = pool_to_frames(analysis.onset, analysis.frame_rate, fps, num_frames, how="max")
    scale = float(np.percentile(analysis.onset, 99)) if analysis.onset.size else 0.0
    onset = np.clip(onset / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(onset)
    beat_pulse, beat_index = pulse_and_index(t, beat_times, sigma)
    bar_pulse, bar_index = pulse_and_index(t, downbeat_times, sigma)
    cols = {"beat_pulse": beat_pulse, "downbeat": bar_pulse, "onset_strength": onset}
    for prefix, index, events in (("beat", beat_index, beat_times), ("bar", bar_index, downbeat_times)):
        for name, period in ((f"{prefix}_phase", 1.0), (f"{prefix}_pair_phase", 2.0)):
            angle = 2 * np.pi * np.mod(index, period) / period
            cols[f"{name}_sin"] = np.sin(angle) if len(events) >= 2 else np.zeros(num_frames)
            cols[f"{name}_cos"] = np.cos(angle) if len(events) >= 2 else np.zeros(num_frames)
    return np.stack([cols[name] for name in BEAT_FEATURE_NAMES], axis=1).astype(np.float32)


def pulse_and_phase(t: np.ndarray, events: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian pulse at each event and phase in [0, 1) between events (extrapolated at the ends)."""
    pulse, index = pulse_and_index(t, events, sigma)
    return pulse, np.mod(index, 1.0)


def pulse_and_index(t: np.ndarray, events: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian pulse at each event and the fractional event index (0 at the first event, linear
    between events, extrapolated with the first/last period; 0 everywhere with fewer than 2)."""
    if len(events) == 0:
        return np.zeros_like(t), np.zeros_like(t)
    pos = np.searchsorted(events, t)
    prev = events[np.clip(pos - 1, 0, len(events) - 1)]
    nxt = events[np.clip(pos, 0, len(events) - 1)]
    dist = np.minimum(np.abs(t - prev), np.abs(t - nxt))
    pulse = np.exp(-0.5 * (dist / sigma) ** 2)
    if len(events) < 2:
        return pulse, np.zeros_like(t)
    # Fractional event index: linear between events, extended with the first/last period.
    idx = np.interp(t, events, np.arange(len(events), dtype=np.float64))
    first_period, last_period = events[1] - events[0], events[-1] - events[-2]
    idx = np.where(t < events[0], (t - events[0]) / first_period, idx)
    idx = np.where(t > events[-1], len(events) - 1 + (t - events[-1]) / last_period, idx)
    return pulse, idx
