"""Checks shared by the local model folders data preparation reads (masks, poses, captions).

A model folder is what ``save_pretrained`` writes, or a copy of a Hub repository: ``config.json``
plus ``model.safetensors`` (or ``model.safetensors.index.json`` with its shards, or
``pytorch_model.bin``). Nothing here loads weights or imports transformers; the checks run first so
a wrong folder is reported by name, with its fix, before any model code sees it.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...errors import MuseDanceError

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_FILE = "pytorch_model.bin"
FOLDER_LAYOUT = f"a Hugging Face model folder ({CONFIG_FILE} + {SAFETENSORS_FILE} or {PICKLE_FILE})"


class ModelFolderError(MuseDanceError):
    """A local model folder cannot be used: missing, incomplete, damaged, or the wrong kind of model.
    The message names the folder, what was expected and the fix."""


def check_model_folder(folder: Path, role: str, fix: str) -> Path:
    """``folder`` if it is a folder with a readable ``config.json``; else ModelFolderError.

    Args:
        role: what the folder is for, as the user knows it ("mask model (--mask-model)").
        fix: the sentence that tells the user what to give instead.
    """
    read_model_config(folder, role, fix)
    return Path(folder)


def read_model_config(folder: Path, role: str, fix: str) -> dict:
    """The folder's ``config.json`` as a dict, after the checks of ``check_model_folder``."""
    folder = Path(folder)
    if not folder.exists():
        raise ModelFolderError(f"{role}: folder '{folder}' not found; expected {FOLDER_LAYOUT}. {fix}")
    if not folder.is_dir():
        raise ModelFolderError(f"{role}: '{folder}' is a file, not a folder; expected {FOLDER_LAYOUT}. {fix}")
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise ModelFolderError(f"{role}: '{folder}' has no {CONFIG_FILE}; expected {FOLDER_LAYOUT}. {fix}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFolderError(f"{role}: cannot read '{path}' ({exc}); copy the model's {CONFIG_FILE} again. "
                               f"{fix}") from exc
    if not isinstance(config, dict):
        raise ModelFolderError(f"{role}: '{path}' is not a JSON object; copy the model's {CONFIG_FILE} again. {fix}")
    return config


def check_weight_files(folder: Path, role: str, fix: str) -> tuple[Path, ...]:
    """The weight files of a model folder (safetensors, its shards, or pytorch_model.bin); present, not read."""
    folder = Path(folder)
    if (folder / SAFETENSORS_FILE).is_file():
        return (folder / SAFETENSORS_FILE,)
    if (folder / SAFETENSORS_INDEX).is_file():
        try:
            index = json.loads((folder / SAFETENSORS_INDEX).read_text(encoding="utf-8"))
            shards = sorted(set(index["weight_map"].values()))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ModelFolderError(f"{role}: cannot read '{folder / SAFETENSORS_INDEX}' ({exc}); copy it again. "
                                   f"{fix}") from exc
        missing = [s for s in shards if Path(s).name != s or not (folder / s).is_file()]
        if not shards or missing:
            raise ModelFolderError(f"{role}: '{folder / SAFETENSORS_INDEX}' names shards that are not in the folder "
                                   f"({', '.join(missing) or 'none listed'}); copy every model-*.safetensors. {fix}")
        return tuple(folder / s for s in shards)
    if (folder / PICKLE_FILE).is_file():
        return (folder / PICKLE_FILE,)
    raise ModelFolderError(f"{role}: '{folder}' has {CONFIG_FILE} but no weights; expected {SAFETENSORS_FILE} "
                           f"(or {PICKLE_FILE}) beside it. {fix}")
