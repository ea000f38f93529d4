"""Moore-AnimateAnyone weights (github.com/MooreThreads/Moore-AnimateAnyone) in MuseDance's names.

Its ``pretrained_weights/`` folder (huggingface.co/patrolli/AnimateAnyone) holds:

- ``reference_unet.pth``: the ReferenceNet, a ``UNet2DConditionModel`` state dict in diffusers
  names without ``conv_norm_out``/``conv_out`` (682 tensors): Moore's own
  ``src/models/unet_2d_condition.py`` sets ``conv_norm_out = None`` and comments ``conv_out`` out,
  since a reference net's output is never used. The assembler fills them from the denoiser.
- ``denoising_unet.pth``: the spatial layers of its ``UNet3DConditionModel`` (686 tensors, saved in
  stage 1 without motion modules). Their names are exactly ``UNet2DConditionModel``'s:
  ``UNet3DConditionModel.from_pretrained_2d`` (``src/models/unet_3d.py``) loads a 2D diffusers UNet
  into it by name; ``InflatedConv3d``/``InflatedGroupNorm`` (``resnet.py``) subclass ``nn.Conv2d``/
  ``nn.GroupNorm`` so conv weights stay 4-D; ``Transformer3DModel`` (``transformer_3d.py``) has
  ``norm``, ``proj_in`` (1x1 conv), ``transformer_blocks``, ``proj_out``; its
  ``TemporalBasicTransformerBlock`` (``attention.py``) has ``attn1``/``norm1``/``attn2``/``norm2``/
  ``ff``/``norm3``. Only ``unet_use_temporal_attention=True`` (off in every released config)
  would add ``attn_temp``/``norm_temp``, which MuseDance has no place for.
- ``motion_module.pth``: AnimateDiff v2 names (train_stage_2.py saves the UNet's keys containing
  "motion_module"), converted like ``mm_sd_v15_v2.ckpt``.
- ``pose_guider.pth``: not used (MuseDance follows music, not poses).

Two facts about these weights are not in the names: they were trained for v-prediction with
zero-terminal-SNR betas and trailing timesteps (train_stage_1.py, ``enable_zero_snr``), and their
cross-attention saw CLIP image embeddings of the reference (sd-image-variations), not text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .files import CheckpointError, read_state_dict
from .identify import identify, require
from .motion import MotionWeights, convert_motion_module, unwrap

FILES = {"reference_unet": "reference_unet.pth", "denoising_unet": "denoising_unet.pth",
         "motion": "motion_module.pth"}
EXTENSIONS = (".pth", ".safetensors")  # as released, or converted to safetensors
WHERE = "https://huggingface.co/patrolli/AnimateAnyone"
# train_stage_1.py with enable_zero_snr (the released weights): our scheduler dict's names
SCHEDULER = {"prediction_type": "v_prediction", "rescale_betas_zero_snr": True, "timestep_spacing": "trailing"}
_TEMPORAL_ATTENTION = (".attn_temp.", ".norm_temp.")  # unet_use_temporal_attention=True only


@dataclass
class AnimateAnyoneWeights:
    """The three Animate Anyone parts in the model's names (dtypes as stored).

    ``scheduler``: the noise-schedule settings the UNets were trained with (keys of
    ``MuseDanceConfig.scheduler``); sampling them with SD 1.5's epsilon schedule gives noise.
    """

    reference_unet: dict[str, torch.Tensor]
    denoising_unet: dict[str, torch.Tensor]
    motion: MotionWeights
    notes: list[str] = field(default_factory=list)
    scheduler: dict = field(default_factory=lambda: dict(SCHEDULER))


def load_animate_anyone(folder: str | os.PathLike) -> AnimateAnyoneWeights:
    """Read a Moore-AnimateAnyone weights folder.

    Raises CheckpointError naming the folder and the file when one of ``FILES`` is missing, or
    when a file is not what its name says (e.g. an SDXL UNet).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"Animate Anyone folder not found: '{folder}'. Give the folder that holds "
                              f"{', '.join(FILES.values())} (from {WHERE}).")
    paths = {part: _find(folder, name) for part, name in FILES.items()}
    notes: list[str] = []
    reference = _unet(paths["reference_unet"], "reference UNet", notes)
    denoising = _unet(paths["denoising_unet"], "denoising UNet", notes)
    motion = convert_motion_module(read_state_dict(paths["motion"]), paths["motion"].name)
    notes += [f"{paths['motion'].name}: {n}" for n in motion.notes]
    if any((folder / f"pose_guider{ext}").is_file() for ext in EXTENSIONS):
        notes.append("pose_guider not used: MuseDance is driven by music, not poses")
    notes.append("these UNets were trained for v-prediction with zero-terminal-SNR betas and trailing timesteps "
                 f"({', '.join(f'{k}={v}' for k, v in SCHEDULER.items())}); sample them with those settings")
    notes.append("their cross-attention was trained on CLIP image embeddings of the reference, not on text: "
                 "prompts steer them little until fine-tuned")
    return AnimateAnyoneWeights(reference, denoising, motion, notes)


def _find(folder: Path, name: str) -> Path:
    stem = Path(name).stem
    for ext in EXTENSIONS:
        if (path := folder / f"{stem}{ext}").is_file():
            return path
    present = ", ".join(sorted(p.name for p in folder.iterdir() if p.is_file())[:6]) or "nothing"
    raise CheckpointError(f"the Animate Anyone folder '{folder}' has no {name} (it holds {present}); it needs "
                          f"{', '.join(FILES.values())} from {WHERE}.")


def _unet(path: Path, role: str, notes: list[str]) -> dict[str, torch.Tensor]:
    """A UNet's spatial tensors; names are already the model's (see the module docstring)."""
    state = unwrap(read_state_dict(path))
    require(identify(state), {"sd15_diffusers_unet"}, path, f"Animate Anyone {role}")
    motion = [k for k in state if ".motion_modules." in k]
    if motion:  # a stage-2 save of the whole 3D UNet: motion_module.pth holds the same tensors
        notes.append(f"{path.name}: {len(motion)} motion-module tensors ignored (motion_module.pth provides them)")
        state = {k: v for k, v in state.items() if ".motion_modules." not in k}
    temporal = sum(1 for k in state if any(t in k for t in _TEMPORAL_ATTENTION))
    if temporal:  # kept under their names: the assembler's report lists them as ignored
        notes.append(f"{path.name}: {temporal} spatial temporal-attention tensors (attn_temp/norm_temp, "
                     "unet_use_temporal_attention) have no counterpart in MuseDance")
    return state
