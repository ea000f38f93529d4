"""The learned beat and downbeat network: a log-mel front-end and a small dilated TCN.

Design (our own, after reading the multi-task TCN of Böck & Davies 2019/2020 and beat_this,
Foscarin et al. 2024):
- Input: log-magnitude mel spectrogram, ``N_MELS`` bands 30 Hz-10 kHz, at ``FRAME_RATE`` = 50
  frames per second (hop 441 at 22.05 kHz, 46 ms window), after a level normalisation that puts
  the loud parts of any track at the same level (so a quiet file and a loud one look alike).
- Front-end: three 2-D convolutions with max-pooling over frequency only, which keep the full
  time resolution and collapse the spectrum into ``channels`` features per frame.
- Body: residual blocks of two parallel dilated 1-D convolutions (dilation d and 2d, kernel 5),
  d = 1, 2, 4, ... 64: each frame sees +-10 s of music, enough to carry the beat through a
  breakdown and to hear the bar, and less than the 20 s crops it is trained on, so that what it
  sees at inference (real music on both sides) is what it saw in training.
- Heads: per-frame beat and downbeat logits (a downbeat is also a beat).
Post-processing (turning activations into tempo-consistent beats and bars) is in
``beat_decode.py``; the pair is put together in ``beats.py``.

The weights the project ships (``weights/beat_tracker.safetensors``) are trained only on music
the project renders itself (``training/make_beat_data.py``, ``training/train_beat_tracker.py``);
the config travels in the file's metadata, so a retrained net of another size loads the same way.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import MuseDanceError
from .analysis import ANALYSIS_SAMPLE_RATE

NET_SAMPLE_RATE = ANALYSIS_SAMPLE_RATE  # one resampling serves the net and the spectral analysis
HOP = 441
FRAME_RATE = NET_SAMPLE_RATE / HOP  # 50 frames per second
N_FFT = 1024
N_MELS = 80
F_MIN, F_MAX = 30.0, 10000.0
# Level normalisation: the 95th percentile of 100 ms RMS levels is brought to this level, with
# at most MAX_GAIN_DB of gain so that a near-silent file is not blown up into loud noise.
REFERENCE_DBFS = -20.0
MAX_GAIN_DB = 50.0
LOG_SCALE = 1000.0  # log1p(LOG_SCALE * mel magnitude), as beat_this
FORMAT = "musedance-beat-tracker"
FORMAT_VERSION = 1
CHUNK_FRAMES = 6000  # 2 minutes per network call on long audio
SHIPPED_WEIGHTS = Path(__file__).with_name("weights") / "beat_tracker.safetensors"


class BeatWeightsError(MuseDanceError):
    """The beat tracker's weights file is missing, corrupt or of another format."""


@dataclass(frozen=True)
class BeatNetConfig:
    n_mels: int = N_MELS
    channels: int = 64
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    kernel: int = 5
    dropout: float = 0.1

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "BeatNetConfig":
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("config is not a JSON object")
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        if "dilations" in known:
            known["dilations"] = tuple(int(d) for d in known["dilations"])
        cfg = cls(**known)
        if not (8 <= cfg.n_mels <= 256 and 4 <= cfg.channels <= 512 and 1 <= len(cfg.dilations) <= 16
                and all(1 <= d <= 4096 for d in cfg.dilations) and cfg.kernel in (3, 5, 7)):
            raise ValueError(f"config out of range: {cfg}")
        return cfg


class TCNBlock(nn.Module):
    """x + W[ELU(conv_d(x)) ; ELU(conv_2d(x))]: two dilation rates, one residual step."""

    def __init__(self, channels: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        pad = (kernel - 1) // 2
        self.conv_a = nn.Conv1d(channels, channels, kernel, dilation=dilation, padding=pad * dilation)
        self.conv_b = nn.Conv1d(channels, channels, kernel, dilation=2 * dilation, padding=pad * 2 * dilation)
        self.mix = nn.Conv1d(2 * channels, channels, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        h = torch.cat([F.elu(self.conv_a(x)), F.elu(self.conv_b(x))], dim=1)
        return x + self.mix(self.dropout(h))


class BeatNet(nn.Module):
    """log-mel (B, T, n_mels) -> beat and downbeat logits (B, T, 2)."""

    def __init__(self, config: BeatNetConfig = BeatNetConfig()):
        super().__init__()
        self.config = config
        c = config.channels
        self.frontend = nn.Sequential(
            nn.Conv2d(1, 16, (3, 3), padding=(1, 1)), nn.ELU(), nn.MaxPool2d((3, 1)),
            nn.Conv2d(16, 32, (3, 3), padding=(1, 1)), nn.ELU(), nn.MaxPool2d((3, 1)),
        )
        bins = config.n_mels // 3 // 3
        self.collapse = nn.Conv2d(32, c, (bins, 3), padding=(0, 1))
        self.blocks = nn.ModuleList(TCNBlock(c, config.kernel, d, config.dropout) for d in config.dilations)
        self.head = nn.Conv1d(c, 2, 1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.frontend(mel.transpose(1, 2)[:, None])  # (B, 32, bins, T)
        x = F.elu(self.collapse(x)).squeeze(2)  # (B, C, T)
        for block in self.blocks:
            x = block(x)
        return self.head(x).transpose(1, 2)  # (B, T, 2)


@lru_cache(maxsize=4)
def _mel_basis(n_mels: int) -> torch.Tensor:
    import librosa

    basis = librosa.filters.mel(sr=NET_SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels, fmin=F_MIN, fmax=F_MAX)
    return torch.from_numpy(basis.astype(np.float32))


def normalise_level(samples: np.ndarray) -> np.ndarray:
    """Scale mono audio so its loud parts (95th percentile of 100 ms RMS) sit at REFERENCE_DBFS."""
    x = np.asarray(samples, np.float32)
    block = int(0.1 * NET_SAMPLE_RATE)
    n = len(x) // block
    if n == 0:
        return x
    rms = np.sqrt(np.mean(np.square(x[: n * block].reshape(n, block), dtype=np.float64), axis=1))
    loud = float(np.percentile(rms, 95))
    if loud <= 0:
        return x
    gain_db = min(REFERENCE_DBFS - 20 * math.log10(loud), MAX_GAIN_DB)
    return x * np.float32(10 ** (gain_db / 20))


def log_mel(samples: np.ndarray, n_mels: int = N_MELS) -> torch.Tensor:
    """Network input for mono audio at NET_SAMPLE_RATE: (T, n_mels) float32, frame t at t / 50 s."""
    x = torch.from_numpy(np.ascontiguousarray(normalise_level(samples)))
    # reflect padding at the edges, as in training; a clip shorter than half a window cannot be
    # reflected and is zero-padded instead
    pad_mode = "reflect" if len(x) > N_FFT // 2 else "constant"
    spec = torch.stft(x, N_FFT, HOP, window=torch.hann_window(N_FFT), center=True, pad_mode=pad_mode,
                      return_complex=True).abs()
    mel = _mel_basis(n_mels) @ spec  # (n_mels, T)
    return torch.log1p(LOG_SCALE * mel).T.contiguous()


def save_beat_net(net: BeatNet, path: str | Path, metadata: dict | None = None) -> None:
    from safetensors.torch import save_file

    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "config": net.config.to_json()}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    tensors = {k: v.detach().cpu().float().contiguous() for k, v in net.state_dict().items()}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def load_beat_net(path: str | Path | None = None) -> BeatNet:
    """The network from a weights file (default: the shipped one), in eval mode on the CPU."""
    path = Path(path) if path is not None else SHIPPED_WEIGHTS
    return _load_cached(str(path.resolve()), path.stat().st_mtime_ns if path.is_file() else 0)


@lru_cache(maxsize=2)
def _load_cached(path: str, _mtime: int) -> BeatNet:
    from safetensors import safe_open

    file = Path(path)
    if not file.is_file():
        raise BeatWeightsError(f"beat tracker weights not found at {file}. They ship with MuseDance "
                               f"(musedance_core/audio/weights/); reinstall the pack, or retrain them with "
                               f"training/train_beat_tracker.py.")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises several types for a damaged header
        raise BeatWeightsError(f"beat tracker weights {file} cannot be read ({exc}); the file is damaged: "
                               f"reinstall the pack or retrain the weights.") from exc
    if meta.get("format") != FORMAT:
        raise BeatWeightsError(f"{file} is not a MuseDance beat tracker file (format {meta.get('format')!r}, "
                               f"expected {FORMAT!r}).")
    try:
        config = BeatNetConfig.from_json(meta.get("config", ""))
    except (ValueError, TypeError) as exc:
        raise BeatWeightsError(f"{file}: its config metadata is invalid ({exc}).") from exc
    net = BeatNet(config)
    try:
        net.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise BeatWeightsError(f"{file}: its tensors do not match its config ({str(exc).splitlines()[0]}).") from exc
    return net.eval().requires_grad_(False)


def receptive_field(config: BeatNetConfig) -> int:
    """Frames on each side of a frame that can change its output."""
    return 3 + sum(2 * (config.kernel - 1) // 2 * d for d in config.dilations)


def beat_activations(samples: np.ndarray, net: BeatNet | None = None) -> np.ndarray:
    """Per-frame beat and downbeat probabilities (T, 2) at FRAME_RATE for mono audio at NET_SAMPLE_RATE.

    Long audio runs in chunks of CHUNK_FRAMES with the receptive field as context on each side, so
    memory stays flat with length and the result is the one the whole track at once would give.
    """
    net = net if net is not None else load_beat_net()
    with torch.inference_mode():
        mel = log_mel(samples, net.config.n_mels)
        context = receptive_field(net.config)
        chunks = []
        for start in range(0, max(mel.shape[0], 1), CHUNK_FRAMES):
            lo, hi = max(0, start - context), min(mel.shape[0], start + CHUNK_FRAMES + context)
            logits = net(mel[lo:hi][None])[0]
            chunks.append(logits[start - lo:start - lo + CHUNK_FRAMES])
        logits = torch.cat(chunks)
    return torch.sigmoid(logits).numpy().astype(np.float64)
