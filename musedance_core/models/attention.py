"""MuseDance attention processors and the per-call context they read.

Installed on diffusers ``Attention`` modules (``attn.processor``); they receive the context as the
``musedance`` cross-attention kwarg, so no model state changes between calls.

- ``CaptureSelfAttention`` (ReferenceNet ``attn1``): plain self-attention that also stores its
  input tokens (the transformer block's ``norm1`` output) in ``context.capture[block]``.
- ``ReferenceSelfAttention`` (denoising UNet ``attn1``): self-attention whose keys/values are the
  frame's own tokens plus the reference tokens of the same block (Animate Anyone's spatial
  reference attention). The reference keys/values arrive precomputed (``context.reference``),
  so ReferenceNet runs once per video.
- ``DecoupledCrossAttention`` (denoising UNet ``attn2``): text cross-attention plus the music and
  beat branches, each ``scale * attention(q, K_branch, V_branch)`` added before ``to_out``
  (IP-Adapter's decoupled cross-attention).
- ``PlainAttention``: standard attention that accepts (and ignores) the context.

Rows: the UNets see frames as batch rows, row = video * F + frame. ``context.cond`` is the slice
of rows that receive reference, music and beat; the other rows (the unconditional half under
classifier-free guidance) get plain attention.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange

from .branches import ConditionBranch, layer_key


@dataclass
class AttentionContext:
    """What one UNet call needs beyond its inputs.

    Attributes:
        num_frames: F, frames per video in this call.
        cond: rows (a slice over video*F rows) that get reference/music/beat; None = none.
        reference: {block name: (keys, values)}, each [V, N, inner] for the V conditioned videos.
        music, beat: the branches (for their K/V projections and FiLM).
        music_tokens, beat_tokens: [rows in cond, W, C] tokens of each conditioned row.
        film: [rows in cond, FILM_DIM] beat embedding per conditioned row.
        music_scale, beat_scale: branch strengths.
        capture: when a dict, ReferenceNet stores its block tokens here.
        motion: False skips the motion modules (single-image training).
    """

    num_frames: int = 1
    cond: slice | None = None
    reference: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
    music: ConditionBranch | None = None
    beat: ConditionBranch | None = None
    music_tokens: torch.Tensor | None = None
    beat_tokens: torch.Tensor | None = None
    film: torch.Tensor | None = None
    music_scale: float = 1.0
    beat_scale: float = 1.0
    capture: dict[str, torch.Tensor] | None = field(default=None)
    motion: bool = True


def attend(attn, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Multi-head scaled dot-product attention: [R, Nq, inner] x [R, Nk, inner] -> [R, Nq, inner]."""
    q, k, v = (rearrange(x, "r n (h d) -> r h n d", h=attn.heads) for x in (query, key, value))
    out = F.scaled_dot_product_attention(q, k, v)
    return rearrange(out, "r h n d -> r n (h d)").to(query.dtype)


def _project_out(attn, hidden: torch.Tensor) -> torch.Tensor:
    return attn.to_out[1](attn.to_out[0](hidden))


def _with_rows(full: torch.Tensor, rows: slice, part: torch.Tensor) -> torch.Tensor:
    """``full`` with ``full[rows]`` replaced by ``part`` (out of place, so autograd is happy)."""
    return torch.cat([full[: rows.start], part, full[rows.stop :]], dim=0)


class PlainAttention:
    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 musedance: AttentionContext | None = None):
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        return _project_out(attn, attend(attn, attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)))


class CaptureSelfAttention:
    def __init__(self, block: str):
        self.block = block

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 musedance: AttentionContext | None = None):
        if musedance is not None and musedance.capture is not None:
            musedance.capture[self.block] = hidden_states  # (V, N, C) norm1 output of this block
        return _project_out(attn, attend(attn, attn.to_q(hidden_states), attn.to_k(hidden_states),
                                         attn.to_v(hidden_states)))


class ReferenceSelfAttention:
    def __init__(self, block: str):
        self.block = block

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 musedance: AttentionContext | None = None):
        q, k, v = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        ctx = musedance
        ref = ctx.reference.get(self.block) if ctx is not None and ctx.reference and ctx.cond else None
        if ref is None:
            return _project_out(attn, attend(attn, q, k, v))
        rows = ctx.cond
        ref_k, ref_v = (r.repeat_interleave(ctx.num_frames, dim=0) for r in ref)  # (rows in cond, N, inner)
        cond = attend(attn, q[rows], torch.cat([k[rows], ref_k], 1), torch.cat([v[rows], ref_v], 1))
        if rows.start == 0 and rows.stop >= q.shape[0]:
            return _project_out(attn, cond)
        plain = torch.cat([attend(attn, q[: rows.start], k[: rows.start], v[: rows.start]),
                           attend(attn, q[rows.stop :], k[rows.stop :], v[rows.stop :])], dim=0)
        return _project_out(attn, torch.cat([plain[: rows.start], cond, plain[rows.start :]], dim=0))


class DecoupledCrossAttention:
    def __init__(self, block: str):
        self.block = block
        self.key = layer_key(block)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 musedance: AttentionContext | None = None):
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        q = attn.to_q(hidden_states)
        out = attend(attn, q, attn.to_k(context), attn.to_v(context))
        ctx = musedance
        if ctx is not None and ctx.cond is not None:
            rows = ctx.cond
            extra = None
            for branch, tokens, scale in ((ctx.music, ctx.music_tokens, ctx.music_scale),
                                          (ctx.beat, ctx.beat_tokens, ctx.beat_scale)):
                if branch is None or tokens is None or scale == 0:
                    continue
                part = scale * attend(attn, q[rows], branch.to_k[self.key](tokens), branch.to_v[self.key](tokens))
                extra = part if extra is None else extra + part
            if extra is not None:
                out = _with_rows(out, rows, out[rows] + extra)
        return _project_out(attn, out)
