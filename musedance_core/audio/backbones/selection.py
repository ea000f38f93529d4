"""Which music encoder a name, a folder or a trained model's encoder id means: ``music_encoder`` (the
CLI's ``--music-encoder``), ``encoder_for_model`` (the encoder a model was trained with), the list
the ComfyUI node offers (``music_encoder_choices``) and ``register_backbones`` for the encoder
registry (``encoders.get_music_encoder``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Iterable

from ...errors import MusicEncoderError
from ..encoders import (
    SPECTRAL_ENCODER_ID,
    MusicEncoder,
    SpectralEncoder,
    get_music_encoder,
    music_encoder_names,
    register_music_encoder,
)
from .encoder import load_backbone
from .folders import AUDIO_ENCODERS_FOLDER, DEFAULT_SAMPLE_RATES, find_backbones

SPECTRAL = "spectral"


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
