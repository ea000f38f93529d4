"""AnimateDiff motion modules in MuseDance's own names (diffusers ``UNetMotionModel``).

Two layouts reach us (``identify`` tells them apart):

- the original guoyww/AnimateDiff files (``mm_sd_v15.ckpt`` v1, ``mm_sd_v15_v2.ckpt`` v2,
  ``v3_sd15_mm.ckpt`` v3, AnimateLCM, Moore-AnimateAnyone's ``motion_module.pth``):
  ``{down_blocks.i|mid_block|up_blocks.i}.motion_modules.j.temporal_transformer.`` then
  ``norm``, ``proj_in``, ``proj_out`` and ``transformer_blocks.k.{attention_blocks.{0,1}, norms.{0,1},
  ff.net.*, ff_norm}``, each attention block with its own sinusoidal ``pos_encoder.pe`` [1, L, C];
- diffusers ``MotionAdapter`` files: the same slots without ``temporal_transformer.``, with
  ``attn1``/``attn2``, ``norm1``/``norm2``/``norm3`` and one ``pos_embed.pe`` per transformer block.
  These are already the model's names: the adapter's modules are moved into the UNetMotionModel
  under the same slot names (``UNetMotionModel.from_unet2d``).

The renaming is diffusers' own ``convert_animatediff_checkpoint_to_diffusers``
(loaders/single_file_utils.py), except that diffusers drops the ``pos_encoder`` tables (its adapter
recomputes them) while we keep the file's first table as ``pos_embed.pe``: it is the same formula
(diffusers ``SinusoidalPositionalEmbedding`` = AnimateDiff ``PositionalEncoding``), and keeping it
carries the file's length (24 in v1, 32 in v2/v3) into the model's config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from .files import CheckpointError
from .identify import MOTION_FAMILIES, identify, require

ANIMATELCM_LENGTH = 64  # files without pos_encoder tables: AnimateDiff-Evolved assumes 64 positions
WRAPPER_PREFIXES = ("module.",)  # DistributedDataParallel saves every name under "module."
_RENAMES = (  # original AnimateDiff -> diffusers, as in diffusers' convert_animatediff_checkpoint_to_diffusers
    (".temporal_transformer.", "."),
    (".attention_blocks.0.", ".attn1."),
    (".attention_blocks.1.", ".attn2."),
    (".norms.0.", ".norm1."),
    (".norms.1.", ".norm2."),
    (".ff_norm.", ".norm3."),
)
_ORIGINAL_PE = re.compile(r"^(?P<block>.+\.transformer_blocks\.\d+)\.attention_blocks\.(?P<attn>\d+)\.pos_encoder\.pe$")
_BLOCK_NORM = re.compile(r"^(?P<block>.+\.motion_modules\.\d+\.transformer_blocks\.\d+)\.norm1\.weight$")
PE_NAME = "pos_embed.pe"


@dataclass
class MotionWeights:
    """A motion module's tensors in the model's names (the bundle component ``motion``).

    Attributes:
        state: ``{down_blocks.i|mid_block|up_blocks.i}.motion_modules.j.*`` tensors, dtype as stored;
            names the converter could not place are kept as they were, so the assembler's report
            lists them as ignored.
        version: "v1", "v2", "v3" or "AnimateLCM-style" (from ``identify``).
        use_mid_block: the file has a mid-block motion module (v2).
        max_seq_length: length of the positional tables, the longest context window.
        notes: what was converted, computed or dropped.
        layout: "animatediff" (original names) or "diffusers" (MotionAdapter names).
    """

    state: dict[str, torch.Tensor]
    version: str
    use_mid_block: bool
    max_seq_length: int | None
    notes: list[str] = field(default_factory=list)
    layout: str = "animatediff"


def unwrap(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` without a prefix every name carries (``module.`` of DDP)."""
    for prefix in WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            return {k[len(prefix):]: v for k, v in state.items()}
    return state


def convert_motion_module(state: dict[str, torch.Tensor], source: str) -> MotionWeights:
    """Rename an AnimateDiff motion module (either layout) to the model's names.

    Args:
        state: every tensor of the file (``read_state_dict`` output; ``{"state_dict": ...}`` already unwrapped).
        source: the file's name, for messages.
    Raises CheckpointError when the file is not a motion module (a motion LoRA, an SDXL module, ...).
    """
    state = unwrap(state)
    kind = require(identify(state), MOTION_FAMILIES, source, "motion module")
    details = kind.details
    notes = [kind.label]
    if details["layout"] == "animatediff":
        out = _from_original(state, notes)
    else:
        out = dict(state)
    length = details["max_seq_length"]
    if length is None:  # no positional tables stored: compute them, as AnimateDiff-Evolved does
        length = ANIMATELCM_LENGTH
        added = _add_positional_tables(out, length)
        if not added:
            raise CheckpointError(f"'{source}' has motion modules but no transformer blocks (no "
                                  "'...transformer_blocks.0.norm1.weight' / 'norms.0.weight'); the file is incomplete.")
        notes.append(f"no positional encoding stored: {added} sinusoidal tables of {length} positions computed "
                     "(AnimateLCM-style file)")
    return MotionWeights(out, details["version"], bool(details["has_mid_block"]), length, notes, details["layout"])


def motion_config(weights: MotionWeights, base: dict) -> dict:
    """``base`` (MotionAdapter kwargs, ``config.motion``) with the mid block and the positional
    length of the file, so that the model's motion modules have the file's shapes."""
    config = dict(base)
    config["use_motion_mid_block"] = weights.use_mid_block
    if weights.max_seq_length is not None:
        config["motion_max_seq_length"] = int(weights.max_seq_length)
    return config


def _from_original(state: dict[str, torch.Tensor], notes: list[str]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    first_tables: dict[str, torch.Tensor] = {}
    second_tables: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if ".motion_modules." not in key:
            out[key] = tensor  # not ours to place: the report lists it as ignored
            continue
        pe = _ORIGINAL_PE.match(key)
        if pe:
            # diffusers' block has one table, added before each of its two temporal attentions;
            # AnimateDiff stores the same sinusoid once per attention block
            block = _rename(pe.group("block"))
            (first_tables if pe.group("attn") == "0" else second_tables)[block] = tensor
            continue
        out[_rename(key)] = tensor
    for block, table in first_tables.items():
        out[f"{block}.{PE_NAME}"] = table
    differ = [b for b, t in second_tables.items()
              if b in first_tables and not t.is_meta and not torch.equal(t, first_tables[b])]
    notes.append(f"converted from AnimateDiff names (temporal_transformer., attention_blocks.0/1 -> attn1/attn2, "
                 f"norms.0/1 -> norm1/norm2, ff_norm -> norm3); {len(second_tables)} duplicate positional tables "
                 "of the second attention dropped")
    if differ:
        notes.append(f"{len(differ)} blocks store a second positional table that differs from the first "
                     f"({differ[0]}); the model applies the first to both temporal attentions")
    return out


def _rename(key: str) -> str:
    key = f".{key}."
    for old, new in _RENAMES:
        key = key.replace(old, new)
    return key[1:-1]


def _add_positional_tables(state: dict[str, torch.Tensor], length: int) -> int:
    """Add diffusers' sinusoidal ``pos_embed.pe`` [1, length, C] to every transformer block lacking one."""
    from diffusers.models.embeddings import SinusoidalPositionalEmbedding

    tables: dict[int, torch.Tensor] = {}
    added = 0
    for key in list(state):
        match = _BLOCK_NORM.match(key)
        name = f"{match.group('block')}.{PE_NAME}" if match else None
        if name is None or name in state:
            continue
        channels = int(state[key].shape[0])
        if channels not in tables:
            tables[channels] = SinusoidalPositionalEmbedding(channels, length).pe
        state[name] = tables[channels].clone()
        added += 1
    return added
