"""The transformers network a music encoder folder describes, with the folder's weights loaded into it.

The network is built from transformers' own classes (HubertModel, Wav2Vec2Model, ClapAudioModel)
and the folder's tensors are matched to it name by name (``pytorch_model.bin`` is read only with
``torch.load(weights_only=True)``), so weights that do not fit the config are an error, never a
half-random model.

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
is MERT's network. CQT and deepnorm variants are refused by ``folders.inspect_backbone``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from ...errors import MusicEncoderError
from .folders import CONFIG_FILE, PREPROCESSOR_FILE, BackboneSpec

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


def build_network(spec: BackboneSpec):
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


def load_weights(model, spec: BackboneSpec) -> None:
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
