"""Learned music encoders from local Hugging Face folders: MERT-v1, HuBERT, wav2vec2 and CLAP.

A folder is what ``save_pretrained`` writes, or a copy of a Hub repository: ``config.json`` plus
``model.safetensors`` (or ``model.safetensors.index.json`` with its shards, or ``pytorch_model.bin``,
read only with ``torch.load(weights_only=True)``), and ``preprocessor_config.json`` when it has one.
In ComfyUI the folders live in ``models/audio_encoders/<name>/``; the CLI also takes a path. Nothing
is downloaded, and no code from a folder (``auto_map``, ``modeling_*.py``) is ever run: the network is
built from transformers' own classes and the weights are matched to it name by name, so weights that
do not fit the config are an error, never a half-random model.

    family    config.json model_type     network          rate     rows per second of audio
    mert      mert_model (MERT-v1)       HubertModel      24 kHz   75 (conv stride 320)
    hubert    hubert                     HubertModel      16 kHz   50
    wav2vec2  wav2vec2                   Wav2Vec2Model    16 kHz   50
    clap      clap, clap_audio_model     ClapAudioModel   48 kHz   3.2 (32 per 10 s window)

The rate is ``sampling_rate`` of preprocessor_config.json when present (MERT: else ``sample_rate`` of
config.json), else the default above.

MERT-v1 in HubertModel. MERT's own code (``modeling_MERT.py`` of m-a-p/MERT-v1-95M and -330M) defines
``MERTModel(HubertModel)`` from transformers' HubertFeatureEncoder, HubertEncoder /
HubertEncoderStableLayerNorm and HubertPositionalConvEmbedding; its MERTFeatureProjection has the
parameters of HubertFeatureProjection (``layer_norm``, ``projection``). Three MERT config keys change
the network: ``feature_extractor_cqt`` (adds nnAudio CQT bins to the conv features, widening the
projection), ``deepnorm`` (an encoder whose residuals are scaled by (2N)^(1/4)), and
``attention_relax``, read only by that deepnorm encoder and a pure fp16 guard there
(softmax((a/r - max(a/r)) * r) = softmax(a)). With ``feature_extractor_cqt=false`` and
``deepnorm=false``, as in the released MERT-v1 checkpoints, MERTModel computes HubertModel's function
and its checkpoint holds HubertModel's tensors under the same names with no prefix: a HubertModel
built from the MERT-v1-95M config has 211 tensors and 94,371,712 values, the counts an audited strict
loader checks for the real ``pytorch_model.bin``, whose only renames are the legacy weight-norm names
of the positional conv (``weight_g``/``weight_v`` -> ``parametrizations.weight.original0/1``).
``conv_pos_batch_norm`` (a newer HubertConfig key, absent from MERT configs) defaults to false, which
is MERT's network. CQT and deepnorm variants are refused with a message.

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

import json
import math
import pickle
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import AudioError, MusicEncoderError
from ..types import MusicFeatures, num_video_frames
from .analysis import analysis_duration, pool_to_frames
from .beats import check_fps
from .encoders import (
    SPECTRAL_ENCODER_ID,
    MusicEncoder,
    SpectralEncoder,
    get_music_encoder,
    music_encoder_names,
    register_music_encoder,
)

AUDIO_ENCODERS_FOLDER = "audio_encoders"  # ComfyUI's models/audio_encoders
SPECTRAL = "spectral"
CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_FILE = "pytorch_model.bin"

FAMILIES = {"mert_model": "mert", "hubert": "hubert", "wav2vec2": "wav2vec2", "clap": "clap",
            "clap_audio_model": "clap"}
SUPPORTED = "mert_model (MERT-v1-95M, MERT-v1-330M), hubert, wav2vec2, clap"
DEFAULT_SAMPLE_RATES = {"mert": 24_000, "hubert": 16_000, "wav2vec2": 16_000, "clap": 48_000}
# Prefix of the base model's tensors in checkpoints of task models (HubertForCTC, ClapModel, ...).
BASE_PREFIXES = {"mert": ("mert_model.", "hubert."), "hubert": ("hubert.",), "wav2vec2": ("wav2vec2.",),
                 "clap": ("audio_model.",)}
# Tensors the network may have that a checkpoint need not: unused at inference or rebuilt in __init__.
OPTIONAL_TENSORS = ("masked_spec_embed", "relative_position_index", "position_ids", "num_batches_tracked")
MERT_ONLY_KEYS = ("feature_extractor_cqt", "feature_extractor_cqt_bins", "deepnorm", "attention_relax", "sample_rate")
CONFIG_BOOKKEEPING = ("model_type", "architectures", "auto_map", "transformers_version", "_name_or_path",
                      "torch_dtype", "dtype")
LEGACY_WEIGHT_NORM = {".weight_g": ".parametrizations.weight.original0",
                      ".weight_v": ".parametrizations.weight.original1"}
DEFAULT_CHUNK_SECONDS = 10.0
DEFAULT_CONTEXT_SECONDS = 2.5
NORMALIZE_EPS = 1e-7  # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm
MIN_RATE, MAX_RATE = 1000, 768_000


@dataclass(frozen=True)
class BackboneSpec:
    """What a music encoder folder holds, read from its JSON files without loading weights."""

    folder: Path
    family: str  # mert, hubert, wav2vec2, clap
    model_type: str
    sample_rate: int
    normalize: bool  # zero-mean unit-variance input (transformer families)
    weights: tuple[Path, ...]
    config: dict = field(repr=False, compare=False)
    preprocessor: dict = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.folder.name


def inspect_backbone(folder: str | Path) -> BackboneSpec:
    """Read and check a music encoder folder (no weights loaded, no transformers import).

    Raises:
        MusicEncoderError: not a folder, no config.json, not a supported audio model, or no weights.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MusicEncoderError(f"music encoder folder not found: '{folder}'. Give a Hugging Face model folder "
                                "(config.json + model.safetensors), e.g. models/audio_encoders/MERT-v1-95M.")
    config = _read_json(folder, CONFIG_FILE, required=True)
    model_type = str(config.get("model_type", ""))
    family = FAMILIES.get(model_type)
    if family is None:
        arch = ", ".join(map(str, config.get("architectures") or [])) or "no architectures listed"
        raise MusicEncoderError(f"'{folder.name}' holds a '{model_type or 'unknown'}' model ({arch}), not a music "
                                f"encoder MuseDance can run; supported config.json model_type: {SUPPORTED}.")
    if family == "mert":
        _check_mert(config, folder.name)
    weights = _weight_files(folder)
    preprocessor = _read_json(folder, PREPROCESSOR_FILE, required=False)
    rate = preprocessor.get("sampling_rate") or (config.get("sample_rate") if family == "mert" else None)
    rate = rate or DEFAULT_SAMPLE_RATES[family]
    if not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
        raise MusicEncoderError(f"'{folder.name}': sampling rate {rate!r} in {PREPROCESSOR_FILE} is not a whole "
                                f"number of Hz in {MIN_RATE}..{MAX_RATE}.")
    normalize = bool(preprocessor.get("do_normalize", True)) and family != "clap"
    return BackboneSpec(folder, family, model_type, rate, normalize, weights, config, preprocessor)


def _read_json(folder: Path, name: str, required: bool) -> dict:
    path = folder / name
    if not path.is_file():
        if required:
            raise MusicEncoderError(f"'{folder.name}' has no {name}: a music encoder folder is a Hugging Face model "
                                    f"folder ({CONFIG_FILE} + {SAFETENSORS_FILE} or {PICKLE_FILE}, e.g. a copy of "
                                    f"m-a-p/MERT-v1-95M). Looked in '{folder}'.")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MusicEncoderError(f"cannot read '{folder.name}/{name}': {exc}. Copy the file again.") from exc
    if not isinstance(data, dict):
        raise MusicEncoderError(f"'{folder.name}/{name}' is not a JSON object; copy the file again.")
    return data


def _check_mert(config: dict, name: str) -> None:
    if config.get("feature_extractor_cqt"):
        raise MusicEncoderError(f"'{name}' is a MERT variant with the CQT feature extractor (feature_extractor_cqt="
                                "true): it needs nnAudio and MERT's own modeling code, which MuseDance does not run. "
                                "Use MERT-v1-95M or MERT-v1-330M (feature_extractor_cqt=false).")
    if config.get("deepnorm"):
        raise MusicEncoderError(f"'{name}' is a MERT variant with deepnorm=true (residuals scaled by (2N)^(1/4)), "
                                "which transformers' HubertModel does not compute. Use MERT-v1-95M or MERT-v1-330M.")


def _weight_files(folder: Path) -> tuple[Path, ...]:
    if (folder / SAFETENSORS_FILE).is_file():
        return (folder / SAFETENSORS_FILE,)
    if (folder / SAFETENSORS_INDEX).is_file():
        shards = sorted(set(_read_json(folder, SAFETENSORS_INDEX, required=True).get("weight_map", {}).values()))
        bad = [s for s in shards if Path(s).name != s or not (folder / s).is_file()]
        if not shards or bad:
            raise MusicEncoderError(f"'{folder.name}/{SAFETENSORS_INDEX}' names shards that are not in the folder "
                                    f"({', '.join(map(str, bad)) or 'none listed'}); copy all model-*.safetensors.")
        return tuple(folder / s for s in shards)
    if (folder / PICKLE_FILE).is_file():
        return (folder / PICKLE_FILE,)
    other = sorted(p.name for p in folder.iterdir() if p.suffix in {".h5", ".msgpack", ".ckpt", ".pt", ".pth", ".onnx"})
    raise MusicEncoderError(f"'{folder.name}' has {CONFIG_FILE} but no weights: put the model's {SAFETENSORS_FILE} "
                            f"(or {PICKLE_FILE}) in '{folder}'"
                            + (f"; {', '.join(other)} cannot be read by MuseDance." if other else "."))


def find_backbones(dirs: Iterable[str | Path]) -> tuple[dict[str, BackboneSpec], dict[str, str]]:
    """Scan the sub-folders of each folder in ``dirs`` (like ComfyUI's models/audio_encoders).

    Returns:
        (usable folders by name, unusable folders by name -> why); the first folder of a name wins.
    """
    found: dict[str, BackboneSpec] = {}
    broken: dict[str, str] = {}
    for root in dirs:
        root = Path(root)
        if not root.is_dir():
            continue
        for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))):
            if sub.name in found or sub.name in broken:
                continue
            try:
                found[sub.name] = inspect_backbone(sub)
            except MusicEncoderError as exc:
                broken[sub.name] = str(exc)
    return found, broken


def music_encoder_choices(dirs: Iterable[str | Path]) -> list[str]:
    """'spectral', the usable folders in ``dirs``, then any other registered encoder: the node's list."""
    found, _ = find_backbones(dirs)
    names = [SPECTRAL] + sorted(n for n in found if n != SPECTRAL)
    return names + [n for n in music_encoder_names() if n not in names and n not in _REGISTERED_FOLDERS]


_REGISTERED_FOLDERS: set[str] = set()  # names register_backbones added to the encoder registry


def register_backbones(dirs: Iterable[str | Path]) -> list[str]:
    """Register every usable folder in ``dirs`` under its folder name, so that ``get_music_encoder(name,
    layer=..., device=...)`` and ``music_encoder_names()`` offer it. Returns the names registered."""
    found, _ = find_backbones(dirs)
    names = []
    for name, spec in found.items():
        if name == SPECTRAL:
            continue  # the built-in encoder keeps its name
        register_music_encoder(name, partial(load_backbone, spec))
        _REGISTERED_FOLDERS.add(name)
        names.append(name)
    return names


def music_encoder(name_or_path: str | Path, dirs: Iterable[str | Path] = (), **options) -> MusicEncoder:
    """The encoder called ``name_or_path``: 'spectral', the name of a folder in ``dirs``, a model folder path,
    or another registered encoder. ``options`` (layer, device, dtype, chunk_seconds, ...) go to backbones."""
    dirs = list(dirs)
    name = str(name_or_path)
    if name == SPECTRAL:
        return SpectralEncoder()
    found, broken = find_backbones(dirs)
    if name in found:
        return load_backbone(found[name], **options)
    if name in broken:
        raise MusicEncoderError(broken[name])
    if Path(name).is_dir():
        return load_backbone(Path(name), **options)
    if name in music_encoder_names():
        return get_music_encoder(name, **options)
    where = ", ".join(str(d) for d in dirs) or "no audio_encoders folder given"
    raise MusicEncoderError(f"unknown music encoder '{name}': not 'spectral', not a folder, and not a folder in "
                            f"{where}. Available: {', '.join([SPECTRAL, *sorted(found)])}.")


def parse_encoder_id(encoder_id: str) -> tuple[str, str, str] | None:
    """'mert:MERT-v1-95M:mean' -> ('mert', 'MERT-v1-95M', 'mean'); None for ids that are not backbone ids."""
    family, _, rest = encoder_id.partition(":")
    name, _, layer = rest.rpartition(":")
    if family not in DEFAULT_SAMPLE_RATES or not name or not layer:
        return None
    return family, name, layer


def encoder_for_model(trained_id: str, choice: str | Path | None = None, dirs: Iterable[str | Path] = (),
                      **options) -> MusicEncoder:
    """The music encoder for a model trained on ``trained_id`` features: ``choice`` (name or folder) if given,
    else the folder the id names, looked up in ``dirs``. A chosen folder of the same name gets the id's layer."""
    dirs = list(dirs)
    parsed = parse_encoder_id(trained_id)
    if choice is None:
        if trained_id == SPECTRAL_ENCODER_ID:
            return SpectralEncoder()
        if parsed is None:
            raise MusicEncoderError(f"the model was trained on music features '{trained_id}', which no MuseDance "
                                    "encoder makes; give --music-encoder.")
        family, name, layer = parsed
        found, broken = find_backbones(dirs)
        if name in broken:
            raise MusicEncoderError(broken[name])
        if name not in found:
            where = ", ".join(str(d) for d in dirs) or "no audio_encoders folder given"
            raise MusicEncoderError(f"the model was trained on music features from the {family} folder '{name}' "
                                    f"({trained_id}), which is not in {where}. Put that folder in models/"
                                    f"{AUDIO_ENCODERS_FOLDER} (CLI: --audio-encoders DIR) or give its path with "
                                    "--music-encoder.")
        return load_backbone(found[name], layer=_layer_value(layer), **options)
    if parsed is not None and Path(str(choice)).name == parsed[1] and "layer" not in options:
        options["layer"] = _layer_value(parsed[2])
    return music_encoder(choice, dirs, **options)


def _layer_value(token: str) -> str | int:
    return int(token) if token.lstrip("-").isdigit() else token


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
    model, extractor = _build(spec)
    _load_weights(model, spec)
    model = model.to(device=torch.device(device), dtype=dtype or torch.float32).eval().requires_grad_(False)
    return BackboneEncoder(spec, model, extractor, layer, chunk_seconds, context_seconds)


def _build(spec: BackboneSpec):
    """The transformers network (random weights, not initialised) and, for CLAP, its feature extractor."""
    import transformers

    kwargs = {k: v for k, v in spec.config.items() if k not in CONFIG_BOOKKEEPING + MERT_ONLY_KEYS}
    try:  # the weights are loaded next: skip the random initialisation
        from transformers.initialization import no_init_weights  # transformers 5
    except ImportError:
        from transformers.modeling_utils import no_init_weights  # transformers 4
    try:
        with no_init_weights():
            if spec.family in ("mert", "hubert"):
                return transformers.HubertModel(transformers.HubertConfig(**kwargs)), None
            if spec.family == "wav2vec2":
                return transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**kwargs)), None
            audio = kwargs.get("audio_config", {}) if spec.model_type == "clap" else kwargs
            config = transformers.ClapAudioConfig(**{k: v for k, v in audio.items() if k not in CONFIG_BOOKKEEPING})
            model = transformers.ClapAudioModel(config)
    except (TypeError, ValueError, KeyError, ZeroDivisionError) as exc:
        raise MusicEncoderError(f"'{spec.name}/{CONFIG_FILE}' does not describe a valid {spec.family} model: "
                                f"{exc}") from exc
    prep = {k: v for k, v in spec.preprocessor.items() if k not in ("feature_extractor_type", "processor_class")}
    extractor = transformers.ClapFeatureExtractor(**prep)
    if extractor.feature_size != config.num_mel_bins:
        raise MusicEncoderError(f"'{spec.name}': {PREPROCESSOR_FILE} makes {extractor.feature_size} mel bands but the "
                                f"model expects {config.num_mel_bins}; copy the model's own {PREPROCESSOR_FILE}.")
    # Windows are never longer than max_length_s, so truncation only picks the input layout.
    extractor.truncation = "fusion" if config.enable_fusion else "rand_trunc"
    return model, extractor


def _load_weights(model, spec: BackboneSpec) -> None:
    """Load the folder's tensors into ``model`` by name; every tensor the network needs must be there."""
    import torch

    state: dict[str, Any] = {}
    for path in spec.weights:
        state.update(_read_tensors(path, spec.name))
    for old, new in LEGACY_WEIGHT_NORM.items():
        state = {(k[: -len(old)] + new if k.endswith(old) else k): v for k, v in state.items()}
    expected = model.state_dict()
    prefixes = ("",) + BASE_PREFIXES[spec.family]
    prefix = max(prefixes, key=lambda p: sum(k.startswith(p) and k[len(p):] in expected for k in state))
    mapped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    missing = [k for k in expected if k not in mapped and not _optional(k)]
    extra = [k for k in mapped if k not in expected and not _optional(k)]
    shapes = [f"{k} {tuple(v.shape)} vs {tuple(expected[k].shape)}" for k, v in mapped.items()
              if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} of the {len(expected)} tensors the config describes are missing "
                        f"(e.g. {', '.join(missing[:3])})")
    if extra:
        problems.append(f"{len(extra)} tensors are not in that network (e.g. {', '.join(extra[:3])})")
    if shapes:
        problems.append(f"shapes differ: {', '.join(shapes[:3])}")
    if problems:
        raise MusicEncoderError(f"the weights in '{spec.name}' do not fit its {CONFIG_FILE} ({spec.family}): "
                                f"{'; '.join(problems)}. Keep the config.json and weights of one model together.")
    with torch.no_grad():
        model.load_state_dict({k: v for k, v in mapped.items() if k in expected}, strict=False)


def _optional(key: str) -> bool:
    return key.split(".")[-1] in OPTIONAL_TENSORS


def _read_tensors(path: Path, name: str) -> dict:
    import torch

    where = f"'{name}/{path.name}'"
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise MusicEncoderError(f"cannot read {where}: {exc}. The file is damaged or incomplete; "
                                    "copy it again.") from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, OSError, EOFError, ValueError) as exc:
        raise MusicEncoderError(f"cannot read {where} with weights-only loading ({str(exc).splitlines()[0]}): it is "
                                "damaged, or pickles more than tensors. Use the model's model.safetensors.") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MusicEncoderError(f"{where} is not a plain name -> tensor dictionary; use the model's model.safetensors.")
    return state


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
        from .io import Audio, resample, sanitize, to_mono

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
