"""Onset envelope and short-time autocorrelation tempogram.

Read by the spectral music encoder (its tempo-band features) and by the hand-tuned DSP beat
tracker the learned one replaced (``benchmarks/dsp_beat_tracker.py``).
"""

from __future__ import annotations

import math

import numpy as np

from .analysis import SpectralAnalysis

TEMPOGRAM_WINDOW_S, TEMPOGRAM_HOP_S = 8.0, 0.5


def beat_envelope(analysis: SpectralAnalysis) -> np.ndarray:
    """Onset curve for tempo and beat tracking, [F], high-passed and level-normalised."""
    from scipy.ndimage import uniform_filter1d

    fr = analysis.frame_rate
    env = analysis.onset.astype(np.float64)
    env = np.maximum(env - uniform_filter1d(env, size=int(0.4 * fr) | 1, mode="nearest"), 0.0)
    # Local level over ~3 s, floored at a fraction of the global level so that silence and
    # faint noise are not blown up into fake onsets.
    level = np.sqrt(uniform_filter1d(env**2, size=int(3.0 * fr) | 1, mode="nearest"))
    floor = 0.15 * float(np.sqrt(np.mean(env**2)) + 1e-9)
    return (env / np.maximum(level, floor)).astype(np.float64)


def tempogram(envelope: np.ndarray, frame_rate: float, bpms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Short-time autocorrelation of ``envelope`` read at the lags of ``bpms``.

    Returns:
        (tg [W, B] normalised autocorrelation (1 = perfectly periodic), centres [W] in frames).
    """
    hop = int(round(TEMPOGRAM_HOP_S * frame_rate))
    n = len(envelope)
    longest_lag = int(math.ceil(60.0 * frame_rate / float(np.min(bpms)))) + 2
    # A clip shorter than the usual window is analysed as one window of its own length (zero
    # padding would taper the music away); only clips too short for two periods of the slowest
    # tempo are padded.
    win = min(int(round(TEMPOGRAM_WINDOW_S * frame_rate)), max(n, 2 * longest_lag))
    if n < win:
        envelope = np.pad(envelope, (0, win - n))
    starts = np.arange(0, max(len(envelope) - win, 0) + 1, hop)
    frames = np.lib.stride_tricks.sliding_window_view(envelope, win)[starts]  # [W, win]
    frames = (frames - frames.mean(axis=1, keepdims=True)) * np.hanning(win)
    nfft = 1 << int(math.ceil(math.log2(2 * win)))
    spec = np.fft.rfft(frames, n=nfft, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, n=nfft, axis=1)[:, :win]
    ac /= np.maximum(ac[:, :1], 1e-12)
    lags = 60.0 * frame_rate / bpms
    lo = np.floor(lags).astype(int)
    frac = lags - lo
    tg = ac[:, lo] * (1 - frac) + ac[:, lo + 1] * frac
    return np.maximum(tg, 0.0), starts + win // 2
