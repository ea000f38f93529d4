"""The MuseDance bundle: one ``.safetensors`` file with the model's tensors and its config.

Layout (docs/ARCHITECTURE.md, File formats):
- tensors are prefixed by component: ``vae.``, ``text_encoder.``, ``reference_unet.``,
  ``denoising_unet.`` (the spatial SD 1.5 layers), ``motion.`` (the AnimateDiff motion modules,
  in MotionAdapter / UNetMotionModel names), ``music.``, ``beat.``;
- metadata: ``format`` = "musedance", ``format_version``, ``config`` (MuseDanceConfig JSON),
  ``parts`` (the components present), ``base`` (optional: the SD 1.5 checkpoint a partial bundle
  is meant to sit on).
Written atomically (temporary file + rename); read with safetensors only (never pickle).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import MuseDanceError
from ..models.config import MuseDanceConfig
from ..models.musedance import MuseDanceModel

BUNDLE_FORMAT = "musedance"
BUNDLE_VERSION = 1
COMPONENTS = ("vae", "text_encoder", "reference_unet", "denoising_unet", "motion", "music", "beat")


class BundleError(MuseDanceError):
    """A file is not a usable MuseDance bundle."""


def component_state(model: MuseDanceModel) -> dict[str, dict[str, torch.Tensor]]:
    """The model's tensors grouped by bundle component (motion split from the denoising UNet)."""
    groups: dict[str, dict[str, torch.Tensor]] = {c: {} for c in COMPONENTS}
    for name in ("vae", "text_encoder", "reference_unet", "music", "beat"):
        groups[name] = dict(getattr(model, name).state_dict())
    for key, tensor in model.denoising_unet.state_dict().items():
        groups["motion" if ".motion_modules." in key else "denoising_unet"][key] = tensor
    return groups


def save_bundle(model: MuseDanceModel, path: str | os.PathLike, *, parts: tuple[str, ...] = COMPONENTS,
                base: str | None = None, dtype: torch.dtype | None = None,
                extra_metadata: dict[str, str] | None = None) -> Path:
    """Write ``parts`` of ``model`` (default: all) to ``path``.

    Args:
        parts: components to store; a partial bundle should name its ``base``.
        dtype: store floating tensors in this dtype (e.g. torch.float16 to halve the size).
        extra_metadata: more string metadata (training step, data set, ...).
    """
    from safetensors.torch import save_file

    unknown = set(parts) - set(COMPONENTS)
    if unknown:
        raise BundleError(f"unknown bundle parts {sorted(unknown)}; known: {', '.join(COMPONENTS)}.")
    groups = component_state(model)
    tensors = {}
    for part in parts:
        for key, tensor in groups[part].items():
            tensor = tensor.detach().to("cpu")
            if dtype is not None and tensor.is_floating_point():
                tensor = tensor.to(dtype)
            tensors[f"{part}.{key}"] = tensor.contiguous()
    metadata = {"format": BUNDLE_FORMAT, "format_version": str(BUNDLE_VERSION),
                "config": model.config.to_json(), "parts": ",".join(parts)}
    if base:
        metadata["base"] = base
    metadata.update(extra_metadata or {})
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The safetensors metadata of ``path``; BundleError when it is not a safetensors file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise BundleError(f"model file not found: '{path}'.")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own SafetensorError and OSError variants
        raise BundleError(f"'{path.name}' is not a readable .safetensors file ({exc}). MuseDance bundles are "
                          ".safetensors; re-download or re-export the file.") from exc


def bundle_config(path: str | os.PathLike) -> tuple[MuseDanceConfig, dict[str, str]]:
    """Config and metadata of a bundle, checking the format and its version."""
    path = Path(path)
    meta = read_metadata(path)
    if meta.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"'{path.name}' is a .safetensors file but not a MuseDance bundle (no "
                          f"format=musedance metadata). Put MuseDance bundles in models/musedance; SD 1.5 "
                          "checkpoints go in models/checkpoints and motion modules in models/animatediff_models.")
    try:
        version = int(meta.get("format_version", "0"))
    except ValueError:
        raise BundleError(f"'{path.name}' metadata field 'format_version' must be a whole number; got "
                          f"{meta.get('format_version', '')[:40]!r}.") from None
    if version > BUNDLE_VERSION:
        raise BundleError(f"'{path.name}' uses bundle format {version}, newer than this MuseDance reads "
                          f"({BUNDLE_VERSION}). Update the MuseDance node pack.")
    try:
        config = MuseDanceConfig.from_json(meta["config"])  # depth, types and ranges checked first
    except (KeyError, ValueError, TypeError) as exc:
        raise BundleError(f"'{path.name}' has no valid MuseDance config in its metadata ({exc}).") from None
    check_model_size(config, path.name)
    return config, meta


def check_model_size(config: MuseDanceConfig, source: str) -> None:
    """Build the model the config describes on the meta device (no memory) to catch shapes the
    modules refuse, and refuse one whose fp32 weights would not fit in the available RAM."""
    import psutil

    try:
        with torch.device("meta"):
            probe = MuseDanceModel(config)
    except Exception as exc:  # diffusers/transformers raise ValueError, RuntimeError, AssertionError, ...
        raise BundleError(f"'{source}' has a config that describes no buildable model ({type(exc).__name__}: "
                          f"{str(exc)[:300]}).") from None
    nbytes = 4 * sum(p.numel() for p in probe.parameters())
    available = psutil.virtual_memory().available
    if nbytes > available:
        raise BundleError(f"'{source}' has a config that describes a model of {nbytes / 4e9:.1f} billion weights "
                          f"({nbytes / 1e9:.1f} GB in fp32), more than the {available / 1e9:.1f} GB of memory "
                          "available; the file is corrupt or not meant for this machine.")


def load_bundle(path: str | os.PathLike, *, device: torch.device | str = "cpu",
                dtype: torch.dtype | None = None) -> MuseDanceModel:
    """Build the model a complete bundle describes and load its tensors (exact: strict names and shapes)."""
    from safetensors.torch import load_file

    path = Path(path)
    config, meta = bundle_config(path)
    parts = [p for p in meta.get("parts", "").split(",") if p]
    missing_parts = [c for c in COMPONENTS if c not in parts]
    if missing_parts:
        base = meta.get("base")
        raise BundleError(f"'{path.name}' holds only {', '.join(parts)}; it needs "
                          f"{', '.join(missing_parts)} from its base"
                          + (f" '{base}'" if base else "") + ". Load it together with that base model.")
    tensors = load_file(str(path), device="cpu")
    model = MuseDanceModel(config)
    load_components(model, tensors, path.name)
    return model.to(device=device, dtype=dtype) if dtype is not None else model.to(device)


def load_components(model: MuseDanceModel, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Load prefixed bundle tensors into ``model``, strictly: every tensor named, every shape equal."""
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        part, _, rest = key.partition(".")
        if part not in COMPONENTS:
            raise BundleError(f"'{source}' has tensor '{key}' outside the known components ({', '.join(COMPONENTS)}).")
        groups.setdefault(part, {})[rest] = tensor
    expected = component_state(model)
    for part, state in groups.items():
        want = expected[part]
        missing = sorted(set(want) - set(state))
        unexpected = sorted(set(state) - set(want))
        if missing or unexpected:
            raise BundleError(f"'{source}' component '{part}' does not match this model: "
                              f"{len(missing)} missing tensors {_few(missing)}, {len(unexpected)} unexpected {_few(unexpected)}.")
        for key, tensor in state.items():
            if tuple(tensor.shape) != tuple(want[key].shape):
                raise BundleError(f"'{source}' tensor '{part}.{key}' has shape {tuple(tensor.shape)}, "
                                  f"the model expects {tuple(want[key].shape)}.")
    for part, state in groups.items():
        if part in ("denoising_unet", "motion"):
            model.denoising_unet.load_state_dict(state, strict=False)
        else:
            getattr(model, part).load_state_dict(state, strict=True)


def _few(keys: list[str], n: int = 3) -> str:
    return json.dumps(keys[:n]) + (" ..." if len(keys) > n else "")
