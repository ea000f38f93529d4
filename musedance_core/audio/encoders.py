"""Music encoders: audio -> per-video-frame feature rows (``MusicFeatures [T, D]``).

Every encoder has the same interface (``MusicEncoder``): an ``id`` recorded with the model that
was trained on it, a fixed output ``dim``, and ``encode(samples, sample_rate, fps)`` returning
exactly ``round(duration * fps)`` rows, aligned row for row with ``BeatTrack.frame_features``.

Built in: ``spectral`` (no weights): log-mel, MFCC, chroma, onset, loudness, timbre and a
tempogram summary, normalised per track (a richer cousin of EDGE's 35-d librosa feature).
Learned backbones (HuBERT/MERT, wav2vec2, CLAP from a local folder) register under their own
names with ``register_music_encoder``.
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from ..errors import InputError
from ..types import MusicFeatures, num_video_frames
from .analysis import N_MELS, SpectralAnalysis, analyze, pool_to_frames
from .beats import check_fps
from .tempogram import tempogram

SPECTRAL_ENCODER_ID = "spectral-v1"
SPECTRAL_MELS = 32  # the 64 analysis mel bands averaged in pairs
SPECTRAL_MFCC = 20
TEMPO_BANDS_BPM = (50.0, 70.0, 90.0, 110.0, 130.0, 160.0, 220.0)  # edges of the tempogram summary
SPECTRAL_DIM = SPECTRAL_MELS + SPECTRAL_MFCC + 12 + 4 + (len(TEMPO_BANDS_BPM) - 1)


class MusicEncoder(Protocol):
    """What every music encoder provides."""

    id: str
    dim: int

    def encode(self, samples: np.ndarray, sample_rate: int, fps: float, *, start: float = 0.0,
               analysis: SpectralAnalysis | None = None) -> MusicFeatures:
        """Encode mono ``samples`` [N] to ``MusicFeatures`` with round(N / sample_rate * fps) rows."""
        ...


class SpectralEncoder:
    """Hand-made spectral features; needs no weights and runs far faster than real time."""

    id = SPECTRAL_ENCODER_ID
    dim = SPECTRAL_DIM

    def encode(self, samples: np.ndarray, sample_rate: int, fps: float, *, start: float = 0.0,
               analysis: SpectralAnalysis | None = None) -> MusicFeatures:
        import librosa

        fps = check_fps(fps)
        if analysis is None:
            analysis = analyze(samples, sample_rate)
        fr = analysis.frame_rate
        num_frames = num_video_frames(analysis.duration, fps)
        mel = analysis.mel_db.reshape(SPECTRAL_MELS, N_MELS // SPECTRAL_MELS, -1).mean(axis=1)  # [32, F]
        mfcc = librosa.feature.mfcc(S=analysis.mel_db, n_mfcc=SPECTRAL_MFCC)  # [20, F]
        timbre = np.stack([analysis.onset, analysis.rms_db, np.log2(analysis.centroid + 1.0), analysis.flatness])
        per_frame = np.concatenate([mel, mfcc, analysis.chroma, timbre]).T  # [F, 68]
        pooled = pool_to_frames(per_frame, fr, fps, num_frames)  # [T, 68]
        pooled = _standardize(pooled)
        tempo = _tempo_summary(analysis, fps, num_frames)  # [T, 6], already 0..1
        feats = np.concatenate([pooled, tempo], axis=1).astype(np.float32)
        return MusicFeatures(feats, fps, self.id, float(start), float(analysis.duration), int(sample_rate))


def _standardize(x: np.ndarray) -> np.ndarray:
    """Per-track z-score of each column; constant columns become 0."""
    if x.shape[0] == 0:
        return x
    std = x.std(axis=0, keepdims=True)
    return np.where(std > 1e-6, (x - x.mean(axis=0, keepdims=True)) / np.maximum(std, 1e-6), 0.0)


def _tempo_summary(analysis: SpectralAnalysis, fps: float, num_frames: int) -> np.ndarray:
    """Mean tempogram strength in each tempo band, per video frame: [T, len(TEMPO_BANDS_BPM)-1]."""
    from .tempogram import beat_envelope

    n_bands = len(TEMPO_BANDS_BPM) - 1
    if num_frames == 0:
        return np.zeros((0, n_bands), np.float32)
    bins_per_band = 8
    bpms = np.concatenate([np.geomspace(a, b, bins_per_band, endpoint=False)
                           for a, b in zip(TEMPO_BANDS_BPM[:-1], TEMPO_BANDS_BPM[1:])])
    tg, centres = tempogram(beat_envelope(analysis), analysis.frame_rate, bpms)  # [W, bands*8]
    bands = tg.reshape(tg.shape[0], n_bands, bins_per_band).mean(axis=2)
    t = np.arange(num_frames) / fps * analysis.frame_rate
    return np.stack([np.interp(t, centres, bands[:, j]) for j in range(n_bands)], axis=1).astype(np.float32)


# Registry of encoders by name: name -> factory(**options) -> MusicEncoder.
_ENCODERS: dict[str, Callable[..., MusicEncoder]] = {"spectral": SpectralEncoder}


def register_music_encoder(name: str, factory: Callable[..., MusicEncoder]) -> None:
    """Make an encoder available to ``get_music_encoder`` (and the nodes and CLI) by name."""
    _ENCODERS[name] = factory


def music_encoder_names() -> list[str]:
    return sorted(_ENCODERS)


def get_music_encoder(name: str = "spectral", **options) -> MusicEncoder:
    """Build the encoder called ``name`` (see ``music_encoder_names()``)."""
    if name not in _ENCODERS:
        raise InputError(f"unknown music encoder '{name}'; available: {', '.join(music_encoder_names())}.")
    return _ENCODERS[name](**options)

