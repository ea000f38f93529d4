"""Shared spectral front-end: one STFT per track, read by the beat tracker and the music encoder.

Everything here is computed at ``ANALYSIS_SAMPLE_RATE`` with ``HOP_LENGTH``, i.e. at
``frame_rate`` ≈ 86 analysis frames per second (11.6 ms), fine enough for beat timing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import AudioError

ANALYSIS_SAMPLE_RATE = 22050
HOP_LENGTH = 256
N_FFT = 2048
N_MELS = 64
BASS_MAX_HZ = 180.0  # mel bands below this make the low-frequency onset curve (kick, bass)
SILENCE_DBFS = -60.0  # a track whose loudest 100 ms is quieter than this counts as silent
# The log-mel flux of a 93 ms window peaks before the attack it detects (the first samples of an
# attack entering the window already make a large jump in dB): ~30 ms early for the instant attacks
# of the synthetic drums (tests), ~10 ms early for sampled instruments with a few ms of attack and
# reverb (the FluidSynth evaluation set, benchmarks/). The onset curves are delayed by the middle
# of that range, so that the beats and per-frame onset features sit within ~10 ms of the attacks
# for both kinds of sound.
ONSET_LAG_S = 0.020


@dataclass(frozen=True)
class SpectralAnalysis:
    """Spectral features of one mono track (analysis frames along the last axis).

    Attributes:
        mel_db: [N_MELS, F] log-mel power in dB (ref: track maximum, floor -80 dB).
        onset: [F] spectral-flux onset strength (all bands).
        onset_bass: [F] onset strength of the bands below BASS_MAX_HZ.
        chroma: [12, F] chroma energy, each frame scaled to max 1.
        rms_db: [F] frame RMS in dBFS.
        centroid: [F] spectral centroid in Hz.
        flatness: [F] spectral flatness (0 tonal .. 1 noise).
        duration: seconds of audio analysed.
        peak_dbfs: loudness of the loudest 100 ms (RMS, dBFS).
    """

    mel_db: np.ndarray
    onset: np.ndarray
    onset_bass: np.ndarray
    chroma: np.ndarray
    rms_db: np.ndarray
    centroid: np.ndarray
    flatness: np.ndarray
    duration: float
    peak_dbfs: float

    @property
    def frame_rate(self) -> float:
        return ANALYSIS_SAMPLE_RATE / HOP_LENGTH

    @property
    def num_frames(self) -> int:
        return int(self.onset.shape[0])

    @property
    def is_silent(self) -> bool:
        return self.peak_dbfs < SILENCE_DBFS

    def frame_times(self) -> np.ndarray:
        """Time in seconds of each analysis frame (frame centres)."""
        return np.arange(self.num_frames) * (HOP_LENGTH / ANALYSIS_SAMPLE_RATE)


def analyze(samples: np.ndarray, sample_rate: int) -> SpectralAnalysis:
    """Compute the spectral front-end of a mono signal.

    Args:
        samples: float [N] mono audio (call ``to_mono`` first for multichannel audio).
        sample_rate: its rate; resampled to ANALYSIS_SAMPLE_RATE here if different.
    """
    import librosa

    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise AudioError(f"analyze() takes mono samples [N]; got shape {samples.shape}. Mix down first.")
    if samples.size == 0:
        raise AudioError("the audio contains no samples.")
    if sample_rate != ANALYSIS_SAMPLE_RATE:
        import soxr

        samples = soxr.resample(samples, sample_rate, ANALYSIS_SAMPLE_RATE, quality="HQ").astype(np.float32)
    duration = samples.size / ANALYSIS_SAMPLE_RATE
    sr = ANALYSIS_SAMPLE_RATE
    if samples.size < N_FFT:  # very short input: pad so every STFT frame is defined
        samples = np.pad(samples, (0, N_FFT - samples.size))

    power = np.abs(librosa.stft(samples, n_fft=N_FFT, hop_length=HOP_LENGTH, center=True)) ** 2  # [1+N_FFT/2, F]
    mel_basis = librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=N_MELS, fmin=30.0, fmax=sr / 2)
    mel = mel_basis @ power
    mel_db = librosa.power_to_db(mel, ref=float(mel.max()) if mel.max() > 0 else 1.0, top_db=80.0)

    # Spectral flux of log-mel (librosa.onset.onset_strength's recipe, with a 3-band max filter
    # on the reference frame to ignore vibrato), half-wave rectified.
    from scipy.ndimage import maximum_filter1d

    ref = maximum_filter1d(mel_db, size=3, axis=0)
    flux = np.maximum(0.0, mel_db[:, 1:] - ref[:, :-1])
    flux = np.pad(flux, ((0, 0), (1, 0)))
    mel_freqs = librosa.mel_frequencies(n_mels=N_MELS + 2, fmin=30.0, fmax=sr / 2)[1:-1]
    bass = mel_freqs < BASS_MAX_HZ
    onset = _delay(flux.mean(axis=0), ONSET_LAG_S * sr / HOP_LENGTH)
    onset_bass = _delay(flux[bass].mean(axis=0), ONSET_LAG_S * sr / HOP_LENGTH) if bass.any() else onset

    chroma = librosa.feature.chroma_stft(S=power, sr=sr, n_fft=N_FFT, hop_length=HOP_LENGTH, tuning=0.0)
    frame_power = librosa.feature.rms(y=samples, frame_length=N_FFT, hop_length=HOP_LENGTH)[0] ** 2
    frame_power = frame_power[: power.shape[1]]
    rms_db = 10.0 * np.log10(np.maximum(frame_power, 1e-10))
    freqs = librosa.fft_frequencies(sr=sr, n_fft=N_FFT)
    total = power.sum(axis=0) + 1e-12
    centroid = (freqs[:, None] * power).sum(axis=0) / total
    flatness = np.exp(np.log(power + 1e-12).mean(axis=0)) / (power.mean(axis=0) + 1e-12)

    win = max(1, int(round(0.1 * sr / HOP_LENGTH)))
    loud = np.convolve(frame_power, np.ones(win) / win, mode="same")
    peak_dbfs = float(10.0 * np.log10(max(float(loud.max()), 1e-12)))
    return SpectralAnalysis(
        mel_db=mel_db.astype(np.float32),
        onset=onset.astype(np.float32),
        onset_bass=onset_bass.astype(np.float32),
        chroma=chroma.astype(np.float32),
        rms_db=rms_db.astype(np.float32),
        centroid=centroid.astype(np.float32),
        flatness=flatness.astype(np.float32),
        duration=duration,
        peak_dbfs=peak_dbfs,
    )


def analysis_duration(num_samples: int, sample_rate: int) -> float:
    """The ``duration`` ``analyze`` reports for ``num_samples`` at ``sample_rate``: the length after
    resampling to ANALYSIS_SAMPLE_RATE (soxr rounds n * 22050 / rate to the nearest sample). Encoders
    that do not call ``analyze`` use it so that every feature of the same audio has the same frame count."""
    if int(sample_rate) == ANALYSIS_SAMPLE_RATE:
        return num_samples / ANALYSIS_SAMPLE_RATE
    return int(np.floor(num_samples * ANALYSIS_SAMPLE_RATE / sample_rate + 0.5)) / ANALYSIS_SAMPLE_RATE


def _delay(curve: np.ndarray, frames: float) -> np.ndarray:
    """Delay ``curve`` by a fractional number of frames (linear interpolation, zero-filled)."""
    idx = np.arange(curve.size) - frames
    return np.interp(idx, np.arange(curve.size), curve, left=0.0, right=float(curve[-1]))


def pool_to_frames(values: np.ndarray, frame_rate: float, fps: float, num_frames: int, how: str = "mean") -> np.ndarray:
    """Pool analysis-rate rows onto video frames: video frame t covers [t/fps, (t+1)/fps).

    Args:
        values: [F, ...] analysis-rate values (first axis is time).
        frame_rate: analysis frames per second.
        fps: video frames per second.
        num_frames: T, the number of video frames wanted.
        how: "mean" or "max".

    Returns:
        [T, ...] float32. A video frame with no analysis frame inside takes the nearest one.
    """
    values = np.asarray(values)
    if num_frames == 0 or values.shape[0] == 0:
        return np.zeros((num_frames,) + values.shape[1:], np.float32)
    edges = np.round(np.arange(num_frames + 1) * frame_rate / fps).astype(np.int64)
    edges = np.clip(edges, 0, values.shape[0])
    lo, hi = edges[:-1], np.maximum(edges[1:], edges[:-1] + 1)
    lo = np.minimum(lo, values.shape[0] - 1)
    hi = np.minimum(hi, values.shape[0])
    if how == "mean":
        csum = np.concatenate([np.zeros((1,) + values.shape[1:]), np.cumsum(values, axis=0, dtype=np.float64)])
        out = (csum[hi] - csum[lo]) / (hi - lo).reshape((-1,) + (1,) * (values.ndim - 1))
    elif how == "max":
        out = np.stack([values[a:b].max(axis=0) for a, b in zip(lo, hi)])
    else:
        raise ValueError(f"how must be 'mean' or 'max'; got {how!r}")
    return out.astype(np.float32)
