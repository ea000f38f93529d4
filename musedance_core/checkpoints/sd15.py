"""Stable Diffusion 1.5 base weights, read offline into MuseDance's own module names.

Users bring SD 1.5 in one of two forms:

- a single ``.safetensors`` / ``.ckpt`` file with the original LDM (CompVis) names:
  ``model.diffusion_model.*`` (UNet), ``first_stage_model.*`` (VAE) and
  ``cond_stage_model.transformer.text_model.*`` (CLIP ViT-L; the oldest files lack ``text_model.``),
  often with an EMA copy of the UNet (``model_ema.*``, flattened names) and the DDPM schedule
  buffers (``alphas_cumprod`` ...);
- a diffusers folder: ``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``, each with its
  ``config.json`` and weights.

Both end as ``Sd15Weights``: three state dicts named as ``UNet2DConditionModel``,
``AutoencoderKL`` and transformers 5.x ``CLIPTextModel`` (no ``text_model.`` prefix) name their
parameters, checked against the modules MuseDance builds from its config, so that
``load_state_dict(strict=True)`` succeeds. The UNet and VAE renaming is diffusers'
(``convert_ldm_unet_checkpoint`` / ``convert_ldm_vae_checkpoint``) given OUR shipped config dicts,
so nothing is fetched from the Hub; dtypes are kept as stored (the assembler casts).

Like ComfyUI, the UNet is read from ``model.diffusion_model`` and an EMA copy is ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..models.config import MuseDanceConfig, sd15_config
from ..models.text import BUILTIN_TOKENIZER
from .files import CheckpointError, read_state_dict
from .identify import LDM_EMA, LDM_TEXT, LDM_UNET, LDM_VAE, FileKind, require

TOKENIZER_FILES = ("vocab.json", "merges.txt")
_DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model",)
_TRANSFORMERS_WEIGHTS = ("model", "pytorch_model")
_CONFIG_IGNORED = {"sample_size", "scaling_factor", "projection_dim"}  # do not change any weight's shape
_UNET_EXTRAS_OFF = {  # set in a folder's unet/config.json, these add or reshape weights SD 1.5 lacks
    "use_linear_projection": False, "class_embed_type": None, "addition_embed_type": None,
    "time_cond_proj_dim": None, "encoder_hid_dim": None, "num_class_embeds": None,
}
_DEPRECATED_VAE_ATTENTION = {".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.",
                             ".proj_attn.": ".to_out.0."}  # diffusers < 0.14 folders


@dataclass
class Sd15Weights:
    """SD 1.5 weights in MuseDance's module names (a missing component is an empty dict + a note)."""

    unet: dict[str, torch.Tensor]
    vae: dict[str, torch.Tensor]
    text_encoder: dict[str, torch.Tensor]
    tokenizer_dir: Path | None
    source: str
    notes: list[str] = field(default_factory=list)


# -- single LDM file -----------------------------------------------------------------------------
def from_single_file(state: dict[str, torch.Tensor], source: str,
                     config: MuseDanceConfig | None = None) -> Sd15Weights:
    """Convert an LDM single-file checkpoint's tensors (``read_state_dict`` output) to our names.

    Args:
        state: every tensor of the file, LDM names.
        source: the file's name, for messages.
        config: the model the weights are for (default ``sd15_config()``); its ``unet``/``vae``
            dicts drive the renaming and every tensor is checked against its modules' shapes.
    Raises CheckpointError naming ``source`` when a present component lacks tensors or has
    tensors of other shapes than ``config`` needs.
    """
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    config = config or sd15_config()
    unet_ldm = {k: v for k, v in state.items() if k.startswith(LDM_UNET)}
    vae_ldm = {k: v for k, v in state.items() if k.startswith(LDM_VAE)}
    text_ldm = {k[len(LDM_TEXT):]: v for k, v in state.items() if k.startswith(LDM_TEXT)}
    ema = sum(1 for k in state if k.startswith(LDM_EMA))
    notes = []
    if ema:
        notes.append(f"{ema} EMA tensors (model_ema.*) ignored: the UNet is read from model.diffusion_model, "
                     "as ComfyUI does")
    other = len(state) - len(unet_ldm) - len(vae_ldm) - len(text_ldm) - ema
    if other:
        notes.append(f"{other} other tensors ignored (noise-schedule buffers such as alphas_cumprod, or parts "
                     "MuseDance has no place for)")
    # diffusers' converters only read config["layers_per_block"] / the block types: no Hub, no network
    unet = convert_ldm_unet_checkpoint(unet_ldm, dict(config.unet)) if unet_ldm else {}
    vae = convert_ldm_vae_checkpoint(vae_ldm, dict(config.vae)) if vae_ldm else {}
    expected = expected_shapes(config)
    text = _clip_names(text_ldm, expected["text_encoder"], notes)
    return Sd15Weights(
        unet=_fit("UNet", unet, expected["unet"], source, config, notes),
        vae=_fit("VAE", vae, expected["vae"], source, config, notes),
        text_encoder=_fit("text encoder", text, expected["text_encoder"], source, config, notes),
        tokenizer_dir=None, source=source, notes=notes)


# -- diffusers folder ----------------------------------------------------------------------------
def from_diffusers_folder(folder: str | os.PathLike, config: MuseDanceConfig | None = None) -> Sd15Weights:
    """Read a diffusers SD 1.5 folder (``unet/``, ``vae/``, ``text_encoder/``, ``tokenizer/``).

    Each component's ``config.json`` is compared with ``config`` first, so that an SD 2.x, SDXL,
    SD3, Flux or inpainting folder is named as such instead of failing on tensor shapes. Weights:
    ``diffusion_pytorch_model[.fp16].safetensors`` / ``model[.fp16].safetensors`` (sharded
    ``.index.json`` too), else the ``.bin`` files (read with ``weights_only=True``).
    """
    folder = Path(folder)
    config = config or sd15_config()
    if not folder.is_dir():
        raise CheckpointError(f"diffusers model folder not found: '{folder}'.")
    kind = _folder_kind(folder)
    require(kind, {"sd15"}, folder, "base checkpoint")
    notes: list[str] = []
    _compare(_read_json(folder / "unet" / "config.json"), config.unet, folder, "unet", config)
    vae_cfg = _read_json(folder / "vae" / "config.json")
    _compare(vae_cfg, config.vae, folder, "vae", config)
    _compare(_read_json(folder / "text_encoder" / "config.json"), config.text_encoder, folder, "text_encoder",
             config)
    vae_scale = vae_cfg.get("scaling_factor")
    if vae_scale is not None and abs(float(vae_scale) - float(config.vae.get("scaling_factor", vae_scale))) > 1e-6:
        notes.append(f"vae/config.json has scaling_factor {vae_scale}; the model uses {config.vae['scaling_factor']}")
    expected = expected_shapes(config)
    unet = _read_component(folder, "unet", _DIFFUSERS_WEIGHTS, notes)
    vae = _modern_vae_names(_read_component(folder, "vae", _DIFFUSERS_WEIGHTS, notes))
    text = _read_component(folder, "text_encoder", _TRANSFORMERS_WEIGHTS, notes)
    text = _clip_names(text, expected["text_encoder"], notes)
    tokenizer = folder / "tokenizer"
    tokenizer_dir = tokenizer if _has_tokenizer(tokenizer) else None
    if tokenizer_dir is None:
        notes.append(f"{folder.name} has no tokenizer/ with {' and '.join(TOKENIZER_FILES)}")
    source = folder.name
    return Sd15Weights(
        unet=_fit("UNet", unet, expected["unet"], source, config, notes),
        vae=_fit("VAE", vae, expected["vae"], source, config, notes),
        text_encoder=_fit("text encoder", text, expected["text_encoder"], source, config, notes),
        tokenizer_dir=tokenizer_dir, source=source, notes=notes)


def _folder_kind(folder: Path) -> FileKind:
    """The family of a diffusers folder, from model_index.json and the component configs."""
    index = _read_json(folder / "model_index.json", required=False)
    pipeline = str(index.get("_class_name", ""))
    transformer = _read_json(folder / "transformer" / "config.json", required=False).get("_class_name", "")
    if "Flux" in pipeline or "Flux" in transformer:
        return FileKind("flux", f"Flux diffusers folder ({pipeline or transformer})")
    if "StableDiffusion3" in pipeline or "SD3" in transformer:
        return FileKind("sd3", f"Stable Diffusion 3 diffusers folder ({pipeline or transformer})")
    unet_file = folder / "unet" / "config.json"
    if not unet_file.is_file():
        found = ", ".join(sorted(p.name for p in folder.iterdir() if p.is_dir())) or "no subfolders"
        return FileKind("unknown", f"folder without unet/config.json (it has {found}); a diffusers SD 1.5 folder "
                                   "has unet/, vae/, text_encoder/ and tokenizer/")
    unet = _read_json(unet_file)
    cross, in_ch = unet.get("cross_attention_dim"), unet.get("in_channels")
    if "XL" in pipeline or unet.get("addition_embed_type") == "text_time" or cross == 2048:
        return FileKind("sdxl", f"SDXL diffusers folder ({pipeline or 'unet addition_embed_type text_time'})")
    if cross == 1024:
        return FileKind("sd2", "Stable Diffusion 2.x diffusers folder (cross_attention_dim 1024)")
    if in_ch == 9:
        return FileKind("sd15_inpaint", "SD 1.5 inpainting diffusers folder (unet in_channels 9)")
    if cross == 768 and in_ch == 4:
        return FileKind("sd15", f"Stable Diffusion 1.5 diffusers folder ({pipeline or 'no model_index.json'})")
    return FileKind("unknown", f"diffusers folder of no supported family (unet cross_attention_dim {cross}, "
                               f"in_channels {in_ch})")


def _compare(theirs: dict, ours: dict, folder: Path, part: str, config: MuseDanceConfig) -> None:
    """CheckpointError listing every structural setting where ``theirs`` differs from ``ours``."""
    wrong = [f"{k}={theirs[k]!r} (MuseDance's '{config.name}' {part} has {v!r})" for k, v in ours.items()
             if k not in _CONFIG_IGNORED and k in theirs and _plain(theirs[k]) != _plain(v)]
    if part == "unet":
        wrong += [f"{k}={theirs[k]!r} (SD 1.5 has {v!r})" for k, v in _UNET_EXTRAS_OFF.items()
                  if k not in ours and theirs.get(k) not in (None, False)]
    if wrong:
        raise CheckpointError(f"'{folder.name}/{part}/config.json' does not describe an SD 1.5 {part}: "
                              f"{'; '.join(wrong)}. Use a diffusers folder of a Stable Diffusion 1.5 model.")


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _read_json(path: Path, required: bool = True) -> dict:
    if not path.is_file():
        if required:
            raise CheckpointError(f"'{path.parent.parent.name}' lacks {path.parent.name}/{path.name}; a diffusers "
                                  "SD 1.5 folder has unet/, vae/, text_encoder/ and tokenizer/, each with its files.")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"'{path}' is not readable JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"'{path}' holds a {type(data).__name__}, not a JSON object.")
    return data


def _read_component(folder: Path, part: str, stems: tuple[str, ...], notes: list[str]) -> dict[str, torch.Tensor]:
    """The weights of ``folder/part``: full-precision safetensors first, then fp16, sharded, .bin."""
    sub = folder / part
    names = [f"{stem}{variant}{ext}" for ext in (".safetensors", ".safetensors.index.json", ".bin",
                                                 ".bin.index.json")
             for stem in stems for variant in ("", ".fp16")]
    for name in names:
        path = sub / name
        if not path.is_file():
            continue
        if ".fp16." in name:
            notes.append(f"{part}: fp16 variant {name}")
        if name.endswith(".index.json"):
            shards = sorted(set(_read_json(path).get("weight_map", {}).values()))
            if not shards:
                raise CheckpointError(f"'{path}' lists no weight files in its weight_map.")
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                state.update(read_state_dict(sub / shard))
            return state
        return read_state_dict(path)
    raise CheckpointError(f"'{folder.name}/{part}' has no weights: expected one of {', '.join(names[:4])} ... "
                          "(download the component's weight file into that folder).")


def _modern_vae_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """VAE attention names of diffusers < 0.14 (query/key/value/proj_attn) -> to_q/to_k/to_v/to_out.0."""
    out = {}
    for key, tensor in state.items():
        if "mid_block.attentions." in key:
            for old, new in _DEPRECATED_VAE_ATTENTION.items():
                key = key.replace(old, new)
        out[key] = tensor
    return out


# -- shared: text encoder names, shape check -----------------------------------------------------
def _clip_names(state: dict[str, torch.Tensor], expected: dict[str, tuple],
                notes: list[str]) -> dict[str, torch.Tensor]:
    """CLIP text tower names as the installed transformers' ``CLIPTextModel`` has them.

    Files say ``text_model.embeddings...`` (transformers 4.x) or, in the oldest SD checkpoints,
    ``embeddings...``; transformers 5.x dropped the ``text_model.`` level. The ``position_ids``
    buffer (in older files) is not a parameter: dropped, the model recomputes it.
    """
    wrapped = any(k.startswith("text_model.") for k in expected)
    out, dropped = {}, 0
    for key, tensor in state.items():
        name = key.removeprefix("text_model.")
        if name.endswith("position_ids"):
            dropped += 1
            continue
        out[("text_model." if wrapped else "") + name] = tensor
    if dropped:
        notes.append("text encoder: position_ids buffer dropped (recomputed)")
    return out


def expected_shapes(config: MuseDanceConfig) -> dict[str, dict[str, tuple[int, ...]]]:
    """Names and shapes of the UNet, VAE and text encoder MuseDance builds from ``config``
    (built on the meta device: no memory, about a second for sd15)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from ..models.text import build_text_encoder

    with torch.device("meta"):
        modules = {"unet": UNet2DConditionModel(**config.unet), "vae": AutoencoderKL(**config.vae),
                   "text_encoder": build_text_encoder(config.text_encoder, config.tokenizer)}
    return {part: {k: tuple(t.shape) for k, t in module.state_dict().items()} for part, module in modules.items()}


def _fit(part: str, state: dict[str, torch.Tensor], expected: dict[str, tuple], source: str,
         config: MuseDanceConfig, notes: list[str]) -> dict[str, torch.Tensor]:
    """``state`` restricted to the model's names; CheckpointError if it lacks any or shapes differ."""
    if not state:
        notes.append(f"{source} has no {part}")
        return {}
    extra = sorted(set(state) - set(expected))
    missing = sorted(set(expected) - set(state))
    shapes = [f"'{k}' is {tuple(state[k].shape)}, the model needs {expected[k]}" for k in sorted(state)
              if k in expected and tuple(state[k].shape) != expected[k]]
    if missing or shapes:
        problems = []
        if missing:
            problems.append(f"{len(missing)} of its {len(expected)} tensors are missing ({_few(missing)})")
        if shapes:
            problems.append(f"{len(shapes)} have another shape ({shapes[0]})")
        raise CheckpointError(f"'{source}': the {part} does not fit MuseDance's '{config.name}' {part}: "
                              f"{'; '.join(problems)}. The file is not a standard Stable Diffusion 1.5 checkpoint "
                              "(pruned, distilled, or another architecture); use an unmodified SD 1.5 model.")
    if extra:
        notes.append(f"{part}: {len(extra)} tensors the model has no place for ignored ({_few(extra)})")
    return {k: state[k] for k in expected}


def _few(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f" ... (+{len(keys) - n})" if len(keys) > n else "")


# -- the CLIP tokenizer --------------------------------------------------------------------------
def find_tokenizer(explicit: str | os.PathLike | None = None, base_dir: str | os.PathLike | None = None) -> Path:
    """The CLIP tokenizer folder (``vocab.json`` + ``merges.txt``), looked for in this order:

    1. ``explicit`` (the folder itself, or a diffusers folder with ``tokenizer/``); a wrong
       explicit path is an error, never silently replaced;
    2. ``base_dir``: a diffusers base folder's ``tokenizer/`` (or that folder itself);
    3. the copy shipped with MuseDance, ``musedance_core/models/clip_tokenizer`` (OpenAI's CLIP
       ViT-L/14 BPE files, the ones every SD 1.5 model uses).
    Nothing is downloaded. CheckpointError for a wrong explicit folder, or if the shipped copy
    was left out of the install.
    """
    if explicit is not None:
        found = _tokenizer_in(Path(explicit))
        if found is None:
            raise CheckpointError(f"tokenizer folder '{explicit}' has no {' and '.join(TOKENIZER_FILES)} (nor a "
                                  "tokenizer/ subfolder with them); point it at a folder with both, such as a "
                                  "diffusers model's 'tokenizer/', or leave it out to use MuseDance's built-in CLIP "
                                  "tokenizer.")
        return found
    if base_dir is not None and (found := _tokenizer_in(Path(base_dir))) is not None:
        return found
    if _has_tokenizer(BUILTIN_TOKENIZER):
        return BUILTIN_TOKENIZER
    raise CheckpointError(
        f"MuseDance's built-in CLIP tokenizer is missing ({BUILTIN_TOKENIZER} should hold "
        f"{' and '.join(TOKENIZER_FILES)}): reinstall the MuseDance pack, or give a tokenizer folder explicitly "
        "(e.g. a diffusers model's 'tokenizer/'), or use a diffusers SD 1.5 folder as the base.")


def _tokenizer_in(folder: Path) -> Path | None:
    for candidate in (folder, folder / "tokenizer"):
        if _has_tokenizer(candidate):
            return candidate
    return None


def _has_tokenizer(folder: Path) -> bool:
    return all((folder / name).is_file() for name in TOKENIZER_FILES)
