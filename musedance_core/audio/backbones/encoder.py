"""``BackboneEncoder``: a learned music encoder that turns audio into feature rows per video frame;
``load_backbone`` makes one from a model folder.

Features. Transformer families take the encoder's hidden states: ``layer="mean"`` (default) averages
all N+1 of them, the untrained form of what MERT's model card recommends (the best layer varies by
task, so its example stacks the 13 hidden states of MERT-v1-95M and learns a weighted average,
``nn.Conv1d(13, 1, 1)``); an integer k takes ``hidden_states[k]`` (0 = the input of the first
transformer layer, N = the last layer's output, -1 = N). CLAP takes the
last feature map of its HTSAT audio encoder [C, F', T'] averaged over frequency (``layer="last"``).
Audio is mixed to mono and resampled with soxr (HQ, ``io.resample``); ``do_normalize`` (zero mean,
unit variance, the default of Wav2Vec2FeatureExtractor) is computed over the whole track, so every
window sees the same scaling. Rows are mean-pooled to video frames (``pool_to_frames``), exactly
``num_video_frames(duration, fps)`` of them, the same count as the beat features of the same audio.

Long audio runs in windows so memory stays bounded: transformer families in ``chunk_seconds`` (10 s)
plus ``context_seconds`` (2.5 s) on each side, aligned to the conv stride, keeping the centre rows.
Attention sees only its window, and group-norm conv encoders (HuBERT-base, wav2vec2-base,
MERT-v1-95M) normalise over the window, so rows depend a little on the windowing; layer-norm
encoders' layer 0 does not depend on it at all. CLAP runs its own 10 s windows back to back, the
last one zero-padded.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import AudioError, MusicEncoderError
from ...types import MusicFeatures, num_video_frames
from ..analysis import analysis_duration, pool_to_frames
from ..beats import check_fps
from .folders import MAX_RATE, MIN_RATE, BackboneSpec, inspect_backbone
from .network import build_network, load_weights

DEFAULT_CHUNK_SECONDS = 10.0
DEFAULT_CONTEXT_SECONDS = 2.5
NORMALIZE_EPS = 1e-7  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm


def load_backbone(folder: str | Path | BackboneSpec, *, layer: str | int | None = None, device: Any = "cpu",
                  dtype: Any = None, chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
                  context_seconds: float = DEFAULT_CONTEXT_SECONDS) -> BackboneEncoder:
    """Build the network of a music encoder folder and load its weights (see the module docstring).

    Args:
        folder: the model folder, or its ``inspect_backbone`` result.
        layer: "mean" of all hidden states (default), "last", or a hidden-state index 0..N; CLAP: "last".
        device, dtype: where and in which precision it runs (default CPU, float32).
        chunk_seconds, context_seconds: window of the transformer families (CLAP uses its own 10 s).
    """
    import torch

    spec = folder if isinstance(folder, BackboneSpec) else inspect_backbone(folder)
    if not (math.isfinite(chunk_seconds) and chunk_seconds > 0 and math.isfinite(context_seconds)
            and context_seconds >= 0):
        raise MusicEncoderError(f"chunk_seconds must be > 0 and context_seconds >= 0; got {chunk_seconds}, "
                                f"{context_seconds}.")
    model, extractor = build_network(spec)
    load_weights(model, spec)
    model = model.to(device=torch.device(device), dtype=dtype or torch.float32).eval().requires_grad_(False)
    return BackboneEncoder(spec, model, extractor, layer, chunk_seconds, context_seconds)


class BackboneEncoder:
    """A learned music encoder (``MusicEncoder``); make one with ``load_backbone``.

    Attributes:
        id: '<family>:<folder name>:<layer>', e.g. 'mert:MERT-v1-95M:mean'; a model records it.
        dim: feature size D (hidden size; CLAP: channels of the last feature map).
        spec: what the folder holds.
    """

    def __init__(self, spec: BackboneSpec, model, extractor, layer: str | int | None, chunk_seconds: float,
                 context_seconds: float):
        self.spec, self.model, self.extractor = spec, model, extractor
        self.chunk_seconds, self.context_seconds = float(chunk_seconds), float(context_seconds)
        if spec.family == "clap":
            self.num_layers = 0
            self.dim = int(model.audio_encoder.num_features)
            if layer not in (None, "last"):
                raise MusicEncoderError(f"'{spec.name}' is a CLAP encoder: it gives its last feature map only, so "
                                        f"layer must be 'last'; got {layer!r}.")
            self.layer = "last"
        else:
            self.num_layers = int(model.config.num_hidden_layers)
            self.dim = int(model.config.hidden_size)
            self.layer = _canonical_layer(layer, self.num_layers, spec.name)
        self.id = f"{spec.family}:{spec.name.replace(':', '_')}:{self.layer}"

    @property
    def device(self):
        return next(self.model.parameters()).device

    def encode(self, samples: np.ndarray, sample_rate: int, fps: float, *, start: float = 0.0,
               analysis=None) -> MusicFeatures:
        """Encode ``samples`` (mono [N] or channels-first [C, N]) to ``MusicFeatures`` [T, dim] with
        T = round(duration * fps). ``analysis`` is accepted for the common interface and not used."""
        from ..io import Audio, resample, sanitize, to_mono

        fps = check_fps(fps)
        samples = np.asarray(samples)
        if samples.ndim not in (1, 2) or (samples.ndim == 2 and samples.shape[0] > 16):
            raise AudioError(f"encode() takes mono samples [N] or channels-first [C, N]; got shape {samples.shape}.")
        if samples.size == 0:
            raise AudioError("the audio contains no samples.")
        if not MIN_RATE <= int(sample_rate) <= MAX_RATE:
            raise AudioError(f"sample_rate must be {MIN_RATE}..{MAX_RATE} Hz; got {sample_rate}.")
        audio = to_mono(Audio(sanitize(samples), int(sample_rate), int(sample_rate)))
        duration = analysis_duration(audio.num_samples, audio.sample_rate)
        num_frames = num_video_frames(duration, fps)
        if num_frames == 0:
            rows = np.zeros((0, self.dim), np.float32)
        else:
            x = resample(audio, self.spec.sample_rate).samples[0]  # [N'] at the backbone's rate
            if self.spec.normalize:
                x = (x - x.mean()) / np.sqrt(x.var() + NORMALIZE_EPS)
            per_second, frame_rate = self._clap_rows(x) if self.spec.family == "clap" else self._transformer_rows(x)
            rows = pool_to_frames(per_second, frame_rate, fps, num_frames)
        return MusicFeatures(rows.astype(np.float32), fps, self.id, float(start), float(duration), int(sample_rate))

    def _transformer_rows(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """Hidden-state rows [G, D] of the whole track at the conv frame rate, window by window."""
        cfg = self.model.config
        stride = math.prod(cfg.conv_stride)
        reach = cfg.conv_kernel[0] + sum((k - 1) * math.prod(cfg.conv_stride[:i])
                                         for i, k in enumerate(cfg.conv_kernel) if i > 0)  # samples per row
        rate = self.spec.sample_rate
        if x.size < reach:  # shorter than one row: pad with silence
            x = np.pad(x, (0, reach - x.size))
        total = (x.size - reach) // stride + 1
        core = max(1, round(self.chunk_seconds * rate / stride))
        context = round(self.context_seconds * rate / stride)
        rows = np.empty((total, self.dim), np.float32)
        for c0 in range(0, total, core):
            c1 = min(total, c0 + core)
            w0, w1 = max(0, c0 - context), min(total, c1 + context)
            end = x.size if w1 == total else (w1 - 1) * stride + reach  # the last window keeps the tail
            hidden = self._hidden(x[w0 * stride: end])  # [w1 - w0, D]
            if hidden.shape[0] != w1 - w0:
                raise RuntimeError(f"{self.id}: a window of {w1 - w0} rows gave {hidden.shape[0]}; the conv stride "
                                   f"({stride}) or reach ({reach}) computed from the config is wrong.")
            rows[c0:c1] = hidden[c0 - w0: c1 - w0]
        return rows, rate / stride

    def _hidden(self, x: np.ndarray) -> np.ndarray:
        import torch

        p = next(self.model.parameters())
        with torch.inference_mode():
            values = torch.from_numpy(np.ascontiguousarray(x))[None].to(device=p.device, dtype=p.dtype)
            states = self.model(values, output_hidden_states=True).hidden_states  # N+1 x (1, T, D)
            chosen = torch.stack(states).mean(0) if self.layer == "mean" else states[int(self.layer)]
            return chosen[0].float().cpu().numpy()

    def _clap_rows(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """Rows [W * T', C] of back-to-back max_length_s windows (the last zero-padded)."""
        import torch

        window = int(self.extractor.nb_max_samples)
        p = next(self.model.parameters())
        rows = []
        for s0 in range(0, x.size, window):
            segment = np.pad(x[s0: s0 + window], (0, max(0, s0 + window - x.size)))
            inputs = self.extractor(segment, sampling_rate=self.spec.sample_rate, return_tensors="pt")
            with torch.inference_mode():
                grid = self.model(input_features=inputs["input_features"].to(device=p.device, dtype=p.dtype),
                                  is_longer=inputs["is_longer"].to(p.device)).last_hidden_state  # (1, C, F', T')
                rows.append(grid.mean(dim=2)[0].T.float().cpu().numpy())  # [T', C]
        return np.concatenate(rows), rows[0].shape[0] * self.spec.sample_rate / window


def _canonical_layer(layer: str | int | None, num_layers: int, name: str) -> str:
    """'mean', or the hidden-state index 0..N as text ('last' and -1 -> N)."""
    if layer is None or layer == "mean":
        return "mean"
    if layer == "last":
        return str(num_layers)
    if isinstance(layer, int) and not isinstance(layer, bool):
        index = layer
    elif isinstance(layer, str) and layer.lstrip("-").isdigit():
        index = int(layer)
    else:
        index = None
    if index is None or not -num_layers - 1 <= index <= num_layers:
        raise MusicEncoderError(f"layer for '{name}' must be 'mean', 'last' or a hidden-state index 0..{num_layers} "
                                f"(0 = input of the first of its {num_layers} transformer layers); got {layer!r}.")
    return str(index % (num_layers + 1))
