"""The beat tracker's training material: rendered pieces (<name>.flac + <name>.json with beats,
downbeats and meter, written by training/make_beat_data.py) turned into log-mel input and frame
targets once and kept in memory as float16 (80 bands x 50 frames/s = 16 kB per second of music),
beatless noise and speech-like babble made on the fly, and the batches of a step.

Targets: 1 at the frame of each beat (downbeat), 0.5 on the frames either side (a beat falls
between two frames; the widening of Boeck & Davies), 0 elsewhere. Batches are drawn from a
generator seeded with (seed, step): resuming at step k draws exactly what an unbroken run would
have drawn."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ...audio.beat_net import (
    FRAME_RATE,
    NET_SAMPLE_RATE,
    log_mel,
)
from ...errors import MuseDanceError

if TYPE_CHECKING:
    from .trainer import BeatTrainConfig


NEIGHBOUR_TARGET = 0.5


class BeatDataError(MuseDanceError):
    """A beat training folder is missing, empty or holds unreadable pieces."""


@dataclass
class Piece:
    name: str
    mel: torch.Tensor  # (T, n_mels) float16
    target: torch.Tensor  # (T, 2) float16: beat, downbeat
    beats_per_bar: int
    category: str
    beats: np.ndarray  # seconds
    downbeats: np.ndarray  # seconds


def frame_targets(beats: np.ndarray, downbeats: np.ndarray, num_frames: int) -> np.ndarray:
    """(T, 2) widened beat and downbeat targets at FRAME_RATE."""
    target = np.zeros((num_frames, 2), np.float32)
    for col, times in enumerate((beats, downbeats)):
        frames = np.round(np.asarray(times, np.float64) * FRAME_RATE).astype(np.int64)
        frames = frames[(frames >= 0) & (frames < num_frames)]
        for offset, value in ((-1, NEIGHBOUR_TARGET), (1, NEIGHBOUR_TARGET), (0, 1.0)):
            idx = np.clip(frames + offset, 0, num_frames - 1)
            target[idx, col] = np.maximum(target[idx, col], value)
    return target


def load_pieces(folder: str | Path, n_mels: int, max_pieces: int = 0, progress: bool = True) -> list[Piece]:
    """Every labelled piece of a data folder as network input and targets."""
    import soundfile as sf
    from tqdm import tqdm

    folder = Path(folder)
    if not folder.is_dir():
        raise BeatDataError(f"beat data folder {folder} does not exist; make it with "
                            f"'python training/make_beat_data.py --out {folder}'.")
    labels = sorted(p for p in folder.glob("*.json") if p.name != "index.json")
    if max_pieces:
        labels = labels[:max_pieces]
    if not labels:
        raise BeatDataError(f"{folder} holds no labelled pieces (<name>.json + <name>.flac); make them with "
                            f"'python training/make_beat_data.py --out {folder}'.")
    pieces = []
    for path in tqdm(labels, desc=f"reading {folder.name}", disable=not progress, unit="piece"):
        audio = path.with_suffix(".flac")
        try:
            label = json.loads(path.read_text())
            samples, rate = sf.read(audio, dtype="float32", always_2d=True)
        except (OSError, RuntimeError, json.JSONDecodeError) as exc:
            raise BeatDataError(f"{path.stem} in {folder} cannot be read ({exc}); delete it and run "
                                f"make_beat_data.py again to remake it.") from exc
        if rate != NET_SAMPLE_RATE:
            raise BeatDataError(f"{audio} is at {rate} Hz; beat data must be at {NET_SAMPLE_RATE} Hz.")
        mel = log_mel(samples.mean(axis=1), n_mels)
        target = frame_targets(np.asarray(label["beats"]), np.asarray(label["downbeats"]), mel.shape[0])
        pieces.append(Piece(path.stem, mel.half(), torch.from_numpy(target).half(),
                            int(label.get("beats_per_bar") or 0), str(label.get("category", "")),
                            np.asarray(label["beats"], np.float64), np.asarray(label["downbeats"], np.float64)))
    return pieces


def noise_audio(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Beatless noise: white, pink or brown, maybe with mains hum, at a random level."""
    n = int(seconds * NET_SAMPLE_RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / NET_SAMPLE_RATE)
    slope = float(rng.choice([0.0, 0.5, 1.0]))  # white, pink, brown (power ~ 1/f^(2*slope))
    spectrum /= np.maximum(freqs, 20.0) ** slope
    x = np.fft.irfft(spectrum, n)
    x /= np.abs(x).max() + 1e-9
    if rng.random() < 0.3:
        t = np.arange(n) / NET_SAMPLE_RATE
        x += float(rng.uniform(0.2, 2.0)) * np.sin(2 * np.pi * float(rng.choice([50.0, 60.0])) * t)
    return (x * float(rng.uniform(0.01, 0.5)) / (np.abs(x).max() + 1e-9)).astype(np.float32)


VOWEL_FORMANTS_HZ = ((250, 850), (800, 2400), (2300, 3200))  # ranges of F1, F2, F3
FORMANT_BANDWIDTH_HZ = (80.0, 110.0, 160.0)


def speech_like_audio(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Beatless speech-like babble from a source-filter model: syllables of random length and
    vowel (a glottal pulse train with a wandering pitch through three formant resonators), noise
    bursts for consonants, and pauses, all at irregular times; one to three voices.

    The rendered music has no speech in it, and a talk-over or a podcast must not get beats. This
    is a synthesiser of our own (no recordings, no text-to-speech engine, whose voice the
    evaluation set may use).
    """
    from scipy.signal import lfilter

    sr = NET_SAMPLE_RATE
    n = int(seconds * sr)
    out = np.zeros(n)
    for _ in range(int(rng.integers(1, 4))):
        voice = np.zeros(n)
        f0 = float(rng.uniform(85.0, 250.0))
        t = float(rng.uniform(0.0, 1.0))
        while t < seconds:
            dur = float(np.clip(rng.lognormal(np.log(0.18), 0.45), 0.06, 0.5))
            a, b = int(t * sr), min(int((t + dur) * sr), n)
            if b - a > 64:
                k = np.arange(b - a)
                pitch = f0 * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * k / sr + rng.uniform(0, 6.3)))
                phase = np.cumsum(pitch / sr)
                source = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(float)  # one pulse per period
                syllable = source
                for (lo, hi), bw in zip(VOWEL_FORMANTS_HZ, FORMANT_BANDWIDTH_HZ):
                    freq = rng.uniform(lo, hi)
                    r = np.exp(-np.pi * bw / sr)
                    syllable = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * freq / sr), r * r], syllable)
                envelope = np.minimum(1.0, np.minimum(k, k[::-1]) / (0.02 * sr)) * rng.uniform(0.3, 1.0)
                voice[a:b] += syllable * envelope
                if rng.random() < 0.5:  # a consonant: a short high-passed noise burst before the vowel
                    c = int(rng.uniform(0.02, 0.08) * sr)
                    burst = np.diff(rng.standard_normal(c + 1)) * rng.uniform(0.05, 0.3)
                    start = max(a - c, 0)
                    voice[start:start + len(burst[: a - start])] += burst[: a - start]
            t += dur + (float(rng.exponential(0.08)) if rng.random() < 0.8 else float(rng.uniform(0.3, 1.2)))
        out += voice / (np.abs(voice).max() + 1e-9) * rng.uniform(0.3, 1.0)
    return (out / (np.abs(out).max() + 1e-9) * float(rng.uniform(0.05, 0.7))).astype(np.float32)


def make_batch(pieces: list[Piece], cfg: BeatTrainConfig, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mel (B, T, M), target (B, T, 2), mask (B, T)) for ``step``; depends only on (seed, step)."""
    rng = np.random.default_rng([cfg.seed, step])
    frames = int(round(cfg.crop_seconds * FRAME_RATE))
    n_mels = pieces[0].mel.shape[1]
    mel = torch.zeros(cfg.batch_size, frames, n_mels)
    target = torch.zeros(cfg.batch_size, frames, 2)
    mask = torch.zeros(cfg.batch_size, frames)
    for i in range(cfg.batch_size):
        if rng.random() < cfg.noise_items:
            beatless = noise_audio if rng.random() < 0.5 else speech_like_audio
            m = log_mel(beatless(rng, cfg.crop_seconds), n_mels)[:frames]
            mel[i, : len(m)], mask[i, : len(m)] = m, 1.0
            continue
        piece = pieces[int(rng.integers(len(pieces)))]
        length = piece.mel.shape[0]
        start = int(rng.integers(0, max(length - frames, 0) + 1))
        n = min(frames, length - start)
        mel[i, :n] = piece.mel[start:start + n].float()
        target[i, :n] = piece.target[start:start + n].float()
        mask[i, :n] = 1.0
    return mel, target, mask
