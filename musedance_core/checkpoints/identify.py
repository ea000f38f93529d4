"""What family a weight file belongs to, decided from its tensor names and shapes.

Users put files in the wrong folder all the time: an SDXL checkpoint where an SD 1.5 one goes, a
motion LoRA instead of a motion module, a VAE instead of a checkpoint. Loading such a file fails
deep inside ``load_state_dict`` with hundreds of key names; ``identify`` names the file's family
first, and ``require`` turns a wrong family into one sentence: what the file is, what MuseDance
needs and where that goes.

The checks are small and named (AnimateDiff-Evolved's habit), each one a fact about a real layout:

- SD 1.5 single files (LDM names) hold ``model.diffusion_model.*`` (UNet), ``first_stage_model.*``
  (VAE) and ``cond_stage_model.transformer.*`` (CLIP ViT-L text tower); cross-attention keys
  ``attn2.to_k.weight`` are [C, 768]. SD 2.x has [C, 1024] (OpenCLIP-H, ``cond_stage_model.model.``),
  SDXL [C, 2048] plus ``conditioner.embedders.*`` / ``label_emb``. The UNet's first conv
  ``input_blocks.0.0.weight`` takes 4 channels, 9 in inpainting models (latents + mask + masked
  image). (diffusers ``single_file_utils.infer_diffusers_model_type``, ComfyUI ``model_detection``.)
- Flux has ``double_blocks.*``, SD3 ``joint_blocks.*`` (MMDiT), with or without the LDM prefix.
- AnimateDiff motion modules (guoyww/AnimateDiff ``motion_module.py``) are plain state dicts
  ``{down_blocks.i|mid_block|up_blocks.i}.motion_modules.j.temporal_transformer.*`` with a
  sinusoidal ``pos_encoder.pe`` buffer [1, max_len, C]: v1 = no mid block, max_len 24; v2 = mid
  block, 32; v3 = no mid block, 32. SDXL motion modules have 3 resolution levels (320, 640, 1280
  channels), SD 1.5 ones 4 (320, 640, 1280, 1280). diffusers' ``MotionAdapter`` names the same
  layers ``motion_modules.j.transformer_blocks.k.attn1`` with ``pos_embed.pe``.
- LoRAs carry ``lora`` in (nearly) every name: kohya ``lora_unet_*.lora_down``, PEFT ``lora_A``,
  AnimateDiff motion LoRAs ``...attention_blocks.0.processor.to_q_lora.down.weight``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .bundle import BUNDLE_FORMAT, COMPONENTS
from .files import CheckpointError

# -- layout names shared with the loaders -------------------------------------------------------
LDM_UNET = "model.diffusion_model."
LDM_EMA = "model_ema."  # EMA copy of the UNet, names flattened ("model_ema.diffusion_modelinput_blocks00weight")
LDM_VAE = "first_stage_model."
LDM_TEXT = "cond_stage_model.transformer."  # CLIP (SD 1.x); SD 2.x has OpenCLIP under cond_stage_model.model.
LDM_OPEN_CLIP = "cond_stage_model.model."
SDXL_CONDITIONER = "conditioner.embedders."

SD15_CONTEXT_DIM = 768  # CLIP ViT-L/14 width: the second dim of every attn2.to_k.weight
SD2_CONTEXT_DIM = 1024  # OpenCLIP ViT-H/14
SDXL_CONTEXT_DIM = 2048  # CLIP-L + OpenCLIP-bigG concatenated
LATENT_CHANNELS = 4  # SD 1.x/2.x/XL latents; inpainting UNets take 4 + 1 mask + 4 masked image = 9
INPAINT_CHANNELS = 9
SD15_MOTION_LEVELS, SDXL_MOTION_LEVELS = 4, 3
SDXL_MOTION_DEEPEST = 1280  # channels of the deepest SDXL motion level
V1_MOTION_LENGTH = 24  # pos_encoder.pe length of mm_sd_v14/v15; v2 and v3 have 32

ACCEPTED = frozenset({"sd15", "sd15_diffusers_unet", "animatediff_motion", "diffusers_motion_adapter",
                      "musedance_bundle"})
REJECTED = frozenset({"sd15_inpaint", "sd2", "sdxl", "sd3", "flux", "lora", "motion_lora", "vae",
                      "animatediff_sdxl", "unknown"})
MOTION_FAMILIES = frozenset({"animatediff_motion", "diffusers_motion_adapter"})

_LORA = re.compile(r"lora|\.hada_w|\.lokr_w", re.IGNORECASE)
_MOTION_SLOT = re.compile(r"(down_blocks|up_blocks)\.(\d+)\.motion_modules\.(\d+)\."
                          r"|(mid_block)\.motion_modules\.(\d+)\.")
_DTYPE_NAMES = {torch.float16: "fp16", torch.float32: "fp32", torch.bfloat16: "bf16", torch.float64: "fp64"}
for _name, _short in (("float8_e4m3fn", "fp8_e4m3fn"), ("float8_e5m2", "fp8_e5m2")):
    if hasattr(torch, _name):
        _DTYPE_NAMES[getattr(torch, _name)] = _short


@dataclass(frozen=True)
class FileKind:
    """The family of a weight file, a human label and the facts the decision rests on.

    Attributes:
        family: one of ``ACCEPTED`` or ``REJECTED``.
        label: e.g. "Stable Diffusion 1.5 checkpoint (LDM single file, with EMA weights, fp16)".
        details: tensor count, dtype, and per family: motion version / has_mid_block /
            max_seq_length, EMA tensor count, context and input channels, components present.
    """

    family: str
    label: str
    details: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def accepted(self) -> bool:
        return self.family in ACCEPTED


def identify(state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> FileKind:
    """The family of the weights ``state`` (all tensors of one file, any device including meta).

    ``metadata`` is the file's safetensors metadata, if any (a MuseDance bundle names itself there).
    Never raises for odd content: what no check recognises is ``unknown``.
    """
    keys = list(state)
    base = {"tensors": len(keys), **_dtype_summary(state)}
    for check in (_bundle, _lora, _transformer_family, _ldm_checkpoint, _diffusers_unet, _motion, _vae_only):
        kind = check(state, keys, metadata or {}, base)
        if kind is not None:
            return kind
    return _unknown(keys, base)


def require(kind: FileKind, wanted: set[str] | frozenset[str], path: str | os.PathLike, role: str) -> FileKind:
    """``kind`` if its family is one of ``wanted``, else CheckpointError saying what the file IS,
    what MuseDance NEEDS for ``role`` and WHERE that goes (one message per family)."""
    if kind.family in wanted:
        return kind
    name = Path(path).name
    what = _article(kind.label if kind.family == "unknown" else _NOUNS.get(kind.family, kind.label))
    raise CheckpointError(f"'{name}' is {what}; MuseDance needs {_need(wanted)} as its {role} "
                          f"({_hint(kind, wanted)}).")


# -- the checks, in order: each returns a FileKind or None ------------------------------------------
def _bundle(state, keys, meta, base) -> FileKind | None:
    heads = {k.split(".", 1)[0] for k in keys}
    by_keys = heads <= set(COMPONENTS) and bool(heads - {"vae", "text_encoder"})  # "vae." alone is a VAE file
    if meta.get("format") != BUNDLE_FORMAT and not by_keys:
        return None
    parts = [c for c in COMPONENTS if c in heads]
    details = {**base, "parts": parts, "format_version": meta.get("format_version"), "base": meta.get("base")}
    return FileKind("musedance_bundle", f"MuseDance bundle ({', '.join(parts)}; {base['dtype']})", details)


def _lora(state, keys, meta, base) -> FileKind | None:
    lora_keys = [k for k in keys if _LORA.search(k)]
    if not lora_keys or 2 * len(lora_keys) < len(keys):
        return None
    motion = [k for k in lora_keys if ".motion_modules." in k or "temporal" in k]
    if motion:
        mid = any("mid_block." in k for k in motion)
        details = {**base, "has_mid_block": mid, "lora_tensors": len(lora_keys)}
        return FileKind("motion_lora", f"AnimateDiff motion LoRA ({'v2' if mid else 'v1/v3'} layout, "
                                       f"{base['dtype']})", details)
    style = "kohya" if any(k.startswith(("lora_unet_", "lora_te")) for k in lora_keys) else \
        "PEFT" if any(".lora_A." in k for k in lora_keys) else "diffusers/other"
    return FileKind("lora", f"LoRA ({style} names, {len(lora_keys)} tensors, {base['dtype']})",
                    {**base, "lora_tensors": len(lora_keys), "style": style})


def _transformer_family(state, keys, meta, base) -> FileKind | None:
    names = [k.removeprefix(LDM_UNET) for k in keys]
    if any(n.startswith("double_blocks.") for n in names) or \
            (any(n.startswith("single_transformer_blocks.") for n in names) and "x_embedder.weight" in names):
        return FileKind("flux", f"Flux model ({base['dtype']})", dict(base))
    if any(n.startswith("joint_blocks.") for n in names) or \
            ("context_embedder.weight" in names and "pos_embed.proj.weight" in names):
        return FileKind("sd3", f"Stable Diffusion 3 model ({base['dtype']})", dict(base))
    return None


def _ldm_checkpoint(state, keys, meta, base) -> FileKind | None:
    """Single files with the original (LDM / CompVis) names: SD 1.x, 2.x, XL."""
    unet = [k for k in keys if k.startswith(LDM_UNET)]
    ema = [k for k in keys if k.startswith(LDM_EMA)]
    if not unet:
        if len(ema) > 100:  # EMA-only files are rare; their flattened names cannot be mapped back reliably
            return FileKind("unknown", "checkpoint whose UNet is stored only as EMA weights (model_ema.*), "
                                       "which MuseDance does not read; save the EMA weights as a regular "
                                       "checkpoint first", {**base, "ema_tensors": len(ema)})
        return None
    sdxl = any(k.startswith(SDXL_CONDITIONER) for k in keys) or f"{LDM_UNET}label_emb.0.0.weight" in state
    in_ch, context, channels = _unet_probe(state, LDM_UNET, "input_blocks.0.0.weight")
    text = [k for k in keys if k.startswith(LDM_TEXT)]
    parts = {"unet": bool(unet), "vae": any(k.startswith(LDM_VAE) for k in keys), "text_encoder": bool(text)}
    details = {**base, "layout": "ldm", "components": [p for p, present in parts.items() if present],
               "in_channels": in_ch, "context_dim": context, "model_channels": channels,
               "ema": len(ema) > 0, "ema_tensors": len(ema),
               "text_encoder_names": "text_model" if any(k.startswith(LDM_TEXT + "text_model.") for k in text)
               else ("legacy (no text_model.)" if text else None)}
    facts = ["LDM single file"]
    missing = [name for p, name in (("vae", "VAE"), ("text_encoder", "text encoder")) if not parts[p]]
    if missing:
        facts.append("no " + " or ".join(missing))
    if ema:
        facts.append("with EMA weights")
    facts.append(base["dtype"])
    if sdxl or context == SDXL_CONTEXT_DIM:
        family = "sdxl"
    elif context == SD2_CONTEXT_DIM or any(k.startswith(LDM_OPEN_CLIP) for k in keys):
        family = "sd2"
    elif context == SD15_CONTEXT_DIM and in_ch == INPAINT_CHANNELS:
        family = "sd15_inpaint"
    elif context == SD15_CONTEXT_DIM and in_ch == LATENT_CHANNELS:
        family = "sd15"
    else:
        return FileKind("unknown", f"Stable-Diffusion-style checkpoint of no supported family (UNet input "
                                   f"channels {in_ch}, cross-attention width {context})", details)
    return FileKind(family, f"{_NOUNS[family]} ({', '.join(facts)})", details)


def _diffusers_unet(state, keys, meta, base) -> FileKind | None:
    """A bare ``UNet2DConditionModel`` state dict (diffusers names, no prefix)."""
    if "conv_in.weight" not in state or not any(k.startswith("down_blocks.") for k in keys):
        return None
    if any(k.startswith("controlnet_cond_embedding.") for k in keys):
        return FileKind("unknown", f"ControlNet in diffusers layout ({base['dtype']})", dict(base))
    in_ch, context, channels = _unet_probe(state, "", "conv_in.weight")
    motion = sum(1 for k in keys if ".motion_modules." in k)
    details = {**base, "layout": "diffusers", "in_channels": in_ch, "context_dim": context,
               "model_channels": channels, "has_output_head": "conv_out.weight" in state,
               "motion_tensors": motion}
    facts = [base["dtype"]]
    if "conv_out.weight" not in state:
        facts.insert(0, "no output head: a reference net")
    if motion:
        facts.insert(0, "with motion modules")
    if "add_embedding.linear_1.weight" in state or context == SDXL_CONTEXT_DIM:
        return FileKind("sdxl", f"SDXL UNet (diffusers layout, {base['dtype']})", details)
    if context == SD2_CONTEXT_DIM:
        return FileKind("sd2", f"Stable Diffusion 2.x UNet (diffusers layout, {base['dtype']})", details)
    if context == SD15_CONTEXT_DIM and in_ch == INPAINT_CHANNELS:
        return FileKind("sd15_inpaint", f"SD 1.5 inpainting UNet (diffusers layout, {base['dtype']})", details)
    if context == SD15_CONTEXT_DIM and in_ch == LATENT_CHANNELS:
        return FileKind("sd15_diffusers_unet", f"SD 1.5 UNet2DConditionModel weights (diffusers layout, "
                                               f"{', '.join(facts)})", details)
    return FileKind("unknown", f"diffusers UNet of no supported family (input channels {in_ch}, "
                               f"cross-attention width {context})", details)


def _motion(state, keys, meta, base) -> FileKind | None:
    if any(".temporal_attentions." in k for k in keys):  # Hotshot-XL: AnimateDiff-like layers for SDXL
        return FileKind("animatediff_sdxl", f"Hotshot-XL temporal layers for SDXL ({base['dtype']})", dict(base))
    slots = {m.group(0) for k in keys if (m := _MOTION_SLOT.search(k))}
    if not slots:
        return None
    original = any(".temporal_transformer." in k for k in keys)
    down = sorted({int(m.group(2)) for s in slots if (m := _MOTION_SLOT.match(s)) and m.group(1) == "down_blocks"})
    levels = down[-1] + 1 if down else 0
    mid = any(s.startswith("mid_block.") for s in slots)
    pe = next((state[k] for k in keys if k.endswith(("pos_encoder.pe", "pos_embed.pe"))), None)
    length = int(pe.shape[1]) if pe is not None and pe.ndim == 3 else None
    deepest = _motion_channels(state, keys, levels - 1) if levels else None
    if mid:
        version = "v2"
    elif length is None:
        version = "AnimateLCM-style"  # no positional encoding; AnimateDiff-Evolved assumes 64 frames
    else:
        version = "v1" if length == V1_MOTION_LENGTH else "v3"
    details = {**base, "layout": "animatediff" if original else "diffusers", "version": version,
               "has_mid_block": mid, "max_seq_length": length, "levels": levels,
               "deepest_channels": deepest, "motion_modules": len(slots)}
    if levels == SDXL_MOTION_LEVELS and deepest == SDXL_MOTION_DEEPEST:
        return FileKind("animatediff_sdxl", f"AnimateDiff motion module for SDXL ({levels} levels, "
                                            f"{base['dtype']})", details)
    family = "animatediff_motion" if original else "diffusers_motion_adapter"
    title = "AnimateDiff motion module" if original else "diffusers MotionAdapter"
    frames = f"max {length} frames" if length else "no positional encoding"
    return FileKind(family, f"{title} {version} ({levels} levels, {'with' if mid else 'no'} mid block, {frames}, "
                            f"{base['dtype']})", details)


def _vae_only(state, keys, meta, base) -> FileKind | None:
    prefix = next((p for p in (LDM_VAE, "vae.") if keys and all(k.startswith(p) for k in keys)), "")
    names = [k[len(prefix):] for k in keys]
    vae = [n for n in names if n.startswith(("encoder.", "decoder.", "quant_conv.", "post_quant_conv."))]
    if not vae or 10 * len(vae) < 9 * len(names) or not any(n.startswith("decoder.") for n in vae):
        return None
    conv = state.get(prefix + "decoder.conv_in.weight")  # [C, latent channels, 3, 3] in both layouts
    latent = int(conv.shape[1]) if conv is not None and conv.ndim == 4 else None
    details = {**base, "latent_channels": latent, "layout": "diffusers" if any(".down_blocks." in n for n in vae)
               else "ldm"}
    size = f"{latent}-channel " if latent else ""
    names_of = "diffusers" if details["layout"] == "diffusers" else "LDM"
    return FileKind("vae", f"{size}VAE alone ({names_of} names, {base['dtype']})", details)


def _unknown(keys, base) -> FileKind:
    if keys and all(k.startswith(("text_model.", LDM_TEXT, "cond_stage_model.")) for k in keys):
        return FileKind("unknown", "text encoder alone (no UNet, no VAE)", dict(base))
    if any(k.startswith("control_model.") or "input_hint_block." in k for k in keys):
        return FileKind("unknown", "ControlNet (LDM layout)", dict(base))
    first = ", ".join(sorted(keys)[:3]) or "no tensors"
    return FileKind("unknown", f"file of no layout MuseDance knows (first tensor names: {first})", dict(base))


# -- small probes --------------------------------------------------------------------------------
def _unet_probe(state, prefix: str, first_conv: str) -> tuple[int | None, int | None, int | None]:
    """(input channels, cross-attention width, base channels) of a UNet under ``prefix``."""
    conv = state.get(prefix + first_conv)
    to_k = next((t for k, t in state.items() if k.startswith(prefix) and k.endswith("attn2.to_k.weight")
                 and ".motion_modules." not in k), None)
    in_ch = int(conv.shape[1]) if conv is not None and conv.ndim == 4 else None
    channels = int(conv.shape[0]) if conv is not None and conv.ndim == 4 else None
    context = int(to_k.shape[1]) if to_k is not None and to_k.ndim == 2 else None
    return in_ch, context, channels


def _motion_channels(state, keys, level: int) -> int | None:
    """Width of the first motion module of down level ``level`` (its GroupNorm weight)."""
    for tail in ("temporal_transformer.norm.weight", "norm.weight"):
        tensor = state.get(f"down_blocks.{level}.motion_modules.0.{tail}")
        if tensor is not None:
            return int(tensor.shape[0])
    return None


def _dtype_summary(state) -> dict:
    counts = Counter(_DTYPE_NAMES.get(t.dtype, str(t.dtype).replace("torch.", ""))
                     for t in state.values() if t.is_floating_point())
    main = counts.most_common(1)[0][0] if counts else "no floating tensors"
    return {"dtype": main, "dtypes": dict(counts)}


# -- messages ------------------------------------------------------------------------------------
_NOUNS = {
    "sd15": "Stable Diffusion 1.5 checkpoint",
    "sd15_diffusers_unet": "SD 1.5 UNet alone in diffusers layout (no VAE, no text encoder)",
    "animatediff_motion": "AnimateDiff motion module",
    "diffusers_motion_adapter": "diffusers MotionAdapter (AnimateDiff motion module)",
    "musedance_bundle": "MuseDance bundle",
    "sd15_inpaint": "SD 1.5 inpainting checkpoint",
    "sd2": "Stable Diffusion 2.x checkpoint",
    "sdxl": "SDXL checkpoint",
    "sd3": "Stable Diffusion 3 checkpoint",
    "flux": "Flux checkpoint",
    "lora": "LoRA",
    "motion_lora": "AnimateDiff motion LoRA",
    "vae": "VAE alone",
    "animatediff_sdxl": "AnimateDiff motion module for SDXL",
}
_OTHER_FAMILIES = "SD 2.x, SDXL, SD3 and Flux are different model families"
_HINTS = {
    "sd15_inpaint": "its UNet takes 9 input channels, latents + mask + masked image, instead of 4; use the "
                    "regular, non-inpainting version of the model",
    "sd2": _OTHER_FAMILIES, "sdxl": _OTHER_FAMILIES, "sd3": _OTHER_FAMILIES, "flux": _OTHER_FAMILIES,
    "lora": "a LoRA holds only changes to a model, not the model; MuseDance does not apply LoRAs: merge it into "
            "an SD 1.5 checkpoint first, e.g. with ComfyUI's LoraLoader and CheckpointSave, and use that",
    "motion_lora": "a motion LoRA such as v2_lora_ZoomIn.ckpt adjusts a motion module but is not one, and "
                   "MuseDance does not apply motion LoRAs; use the motion module itself, e.g. mm_sd_v15_v2.ckpt",
    "vae": "a VAE alone has no UNet and no text encoder; use the full checkpoint, whose VAE MuseDance uses",
    "animatediff_sdxl": "SDXL motion modules have 3 resolution levels and SD 1.5 ones 4, so they do not fit; "
                        "use mm_sd_v15_v2.ckpt or v3_sd15_mm.ckpt",
    "sd15": "it is a base model: choose it as the base checkpoint, from models/checkpoints",
    "animatediff_motion": "it is a motion module: put it in models/animatediff_models and choose it as the "
                          "motion module",
    "diffusers_motion_adapter": "it is a motion module: put it in models/animatediff_models and choose it as the "
                                "motion module",
    "musedance_bundle": "it is a MuseDance bundle: put it in models/musedance and load it as the bundle",
    "sd15_diffusers_unet": "a bare UNet such as Moore-AnimateAnyone's reference_unet.pth / denoising_unet.pth "
                           "goes with the other Animate Anyone files in their own folder, given as the "
                           "Animate Anyone weights; a base needs UNet, VAE and text encoder together",
}
_NEEDS = [  # (families wanted, how to say it), the first that intersects wins
    ({"sd15"}, "a Stable Diffusion 1.5 checkpoint in models/checkpoints"),
    (MOTION_FAMILIES, ("an AnimateDiff motion module for SD 1.5 (mm_sd_v15.ckpt, mm_sd_v15_v2.ckpt or "
                       "v3_sd15_mm.ckpt) in models/animatediff_models")),
    ({"musedance_bundle"}, "a MuseDance bundle (.safetensors) in models/musedance"),
    ({"sd15_diffusers_unet"}, ("Moore-AnimateAnyone's UNet weights (reference_unet.pth / denoising_unet.pth, "
                               "SD 1.5 UNet in diffusers layout) in the Animate Anyone folder")),
]


def _article(noun: str) -> str:
    return ("an " if noun[:1] in "AEIOUaeiou" or noun.startswith("SD") else "a ") + noun


def _need(wanted) -> str:
    for families, text in _NEEDS:
        if set(wanted) & families:
            return text
    return " or ".join(_article(_NOUNS.get(f, f)) for f in sorted(wanted))


def _hint(kind: FileKind, wanted) -> str:
    if kind.family == "unknown":
        return "check that this is the file you meant and that it was downloaded completely"
    return _HINTS.get(kind.family, "")
