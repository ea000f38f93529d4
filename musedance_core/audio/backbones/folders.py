"""What a music encoder folder holds, read from its JSON files: no weights are loaded and nothing is
imported from transformers.

A folder is what ``save_pretrained`` writes, or a copy of a Hub repository: ``config.json`` plus
``model.safetensors`` (or ``model.safetensors.index.json`` with its shards, or ``pytorch_model.bin``),
and ``preprocessor_config.json`` when it has one. In ComfyUI the folders live in
``models/audio_encoders/<name>/``; the CLI also takes a path. Nothing is downloaded, and no code from a
folder (``auto_map``, ``modeling_*.py``) is ever run.

    family    config.json model_type     network          rate     rows per second of audio
    mert      mert_model (MERT-v1)       HubertModel      24 kHz   75 (conv stride 320)
    hubert    hubert                     HubertModel      16 kHz   50
    wav2vec2  wav2vec2                   Wav2Vec2Model    16 kHz   50
    clap      clap, clap_audio_model     ClapAudioModel   48 kHz   3.2 (32 per 10 s window)

The rate is ``sampling_rate`` of preprocessor_config.json when present (MERT: else ``sample_rate`` of
config.json), else the default above. MERT variants whose network transformers cannot compute (the
CQT feature extractor, deepnorm; see network.py) are refused here, with a message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ...errors import MusicEncoderError

AUDIO_ENCODERS_FOLDER = "audio_encoders"  # ComfyUI's models/audio_encoders
CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_FILE = "pytorch_model.bin"

FAMILIES = {"mert_model": "mert", "hubert": "hubert", "wav2vec2": "wav2vec2", "clap": "clap",
            "clap_audio_model": "clap"}
SUPPORTED = "mert_model (MERT-v1-95M, MERT-v1-330M), hubert, wav2vec2, clap"
DEFAULT_SAMPLE_RATES = {"mert": 24_000, "hubert": 16_000, "wav2vec2": 16_000, "clap": 48_000}
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
