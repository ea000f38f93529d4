"""Reading weight files users bring: ``.safetensors`` and, only through
``torch.load(weights_only=True)``, the pickled ``.ckpt`` / ``.pt`` / ``.pth`` / ``.bin`` formats.

Nothing here executes code from a file: safetensors has no code, and ``weights_only=True`` lets
the unpickler build tensors and plain containers only.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import MuseDanceError

SAFETENSORS = (".safetensors",)
PICKLED = (".ckpt", ".pt", ".pth", ".bin")
WEIGHT_EXTENSIONS = SAFETENSORS + PICKLED
_NESTED = ("state_dict", "module", "model")  # wrappers some trainers save the weights under


class CheckpointError(MuseDanceError):
    """A weight file is unreadable, of the wrong kind, or does not fit the model."""


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor of a weight file, on the CPU, by name (non-tensor entries are dropped).

    Raises CheckpointError naming the file when it is missing, of an unknown extension,
    corrupt, or holds something other than tensors that ``weights_only`` refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weight file not found: '{path}'.")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS:
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except Exception as exc:  # SafetensorError, OSError, ... all mean: not a readable file
            raise CheckpointError(f"'{path.name}' is not a readable .safetensors file ({exc}); the file is "
                                  "damaged or incomplete: download it again.") from exc
    elif suffix in PICKLED:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise CheckpointError(_pickle_message(path, exc)) from exc
            state = _load_pickle(path)  # old (non-zip) torch.save format cannot be memory-mapped
        except Exception as exc:
            raise CheckpointError(_pickle_message(path, exc)) from exc
    else:
        raise CheckpointError(f"'{path.name}': unknown weight file type '{suffix}'; MuseDance reads "
                              f"{', '.join(WEIGHT_EXTENSIONS)}.")
    return _tensors_only(state, path)


def _load_pickle(path: Path):
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(_pickle_message(path, exc)) from exc


def _pickle_message(path: Path, exc: Exception) -> str:
    # torch's own message advises weights_only=False, which this project never does: not repeated here
    return (f"'{path.name}' could not be read as plain tensors ({type(exc).__name__}). MuseDance "
            "loads pickled files only with torch.load(weights_only=True), which refuses files that carry code or "
            "custom objects, and fails on damaged files. Use the .safetensors version of the file if there is one.")


def _tensors_only(state, path: Path) -> dict[str, torch.Tensor]:
    for _ in range(3):  # unwrap {"state_dict": {...}} and similar, a few levels at most
        if isinstance(state, dict) and not any(torch.is_tensor(v) for v in state.values()):
            inner = next((state[k] for k in _NESTED if isinstance(state.get(k), dict)), None)
            if inner is None:
                break
            state = inner
    if not isinstance(state, dict):
        raise CheckpointError(f"'{path.name}' holds a {type(state).__name__}, not a dictionary of tensors.")
    tensors = {str(k): v for k, v in state.items() if torch.is_tensor(v)}
    if not tensors:
        raise CheckpointError(f"'{path.name}' holds no tensors.")
    return tensors
