"""The MuseDance model: VAE, CLIP text encoder, ReferenceNet, denoising 3D UNet with motion
modules, and the music and beat branches — built from diffusers/transformers modules so that
real SD 1.5 and AnimateDiff weights load into them by name.

Module names (they are the prefixes of the bundle's tensors):
    vae, text_encoder, reference_unet (UNet2DConditionModel),
    denoising_unet (UNetMotionModel: SD 1.5 spatial layers + AnimateDiff motion modules),
    music, beat (ConditionBranch).
"""

from __future__ import annotations

import contextlib
import functools
import re
from dataclasses import dataclass

import torch
import torch.utils.checkpoint
from einops import rearrange
from torch import nn

from .attention import (
    AttentionContext,
    CaptureSelfAttention,
    DecoupledCrossAttention,
    PlainAttention,
    ReferenceSelfAttention,
)
from .branches import ConditionBranch
from .config import MuseDanceConfig
from .text import ByteTokenizer, PromptTokenizer, build_text_encoder, tokenize


@dataclass
class FrameConditions:
    """Music/beat tokens of every frame of a video, computed once per video.

    music_tokens, beat_tokens: [V, T, W, C]; film: [V, T, FILM_DIM], the beat FiLM's
    pre-activation (``denoise`` adds the caption, when the model takes it, and activates).
    """

    music_tokens: torch.Tensor
    beat_tokens: torch.Tensor
    film: torch.Tensor

    def frames(self, index: torch.Tensor | slice) -> "FrameConditions":
        """The conditions of some frames (a context window)."""
        return FrameConditions(self.music_tokens[:, index], self.beat_tokens[:, index], self.film[:, index])


ReferenceBank = dict[str, tuple[torch.Tensor, torch.Tensor]]
_SPATIAL_BLOCK = re.compile(r"(^|\.)attentions\.\d+\.transformer_blocks\.\d+$")
_MOTION_MODULE = re.compile(r"(^|\.)motion_modules\.\d+$")


def transformer_blocks(unet: nn.Module) -> dict[str, nn.Module]:
    """Spatial transformer blocks (``...attentions.i.transformer_blocks.j``) by name, in order."""
    return {name: module for name, module in unet.named_modules() if _SPATIAL_BLOCK.search(name)}


def motion_modules(unet: nn.Module) -> dict[str, nn.Module]:
    """AnimateDiff temporal transformers (``...motion_modules.i``) by name, in order."""
    return {name: module for name, module in unet.named_modules() if _MOTION_MODULE.search(name)}


def pool_reference_tokens(tokens: torch.Tensor, latent_h: int, latent_w: int, max_tokens: int) -> torch.Tensor:
    """Average-pool a block's reference tokens [V, N, C] 2x2 at a time until N <= max_tokens.

    The block's grid is found from the latent size: N = ceil(h / 2^k) * ceil(w / 2^k).
    ``max_tokens`` 0 keeps every token.
    """
    n = tokens.shape[1]
    if max_tokens <= 0 or n <= max_tokens:
        return tokens
    for k in range(8):
        gh, gw = -(-latent_h // 2**k), -(-latent_w // 2**k)
        if gh * gw == n:
            break
    else:
        return tokens  # unknown layout: keep all tokens
    grid = rearrange(tokens, "v (h w) c -> v c h w", h=gh, w=gw)
    while grid.shape[-2] * grid.shape[-1] > max_tokens and min(grid.shape[-2:]) >= 2:
        grid = nn.functional.avg_pool2d(grid, 2, ceil_mode=True)
    return rearrange(grid, "v c h w -> v (h w) c")


class MuseDanceModel(nn.Module):
    """All MuseDance modules, and the three calls the sampler and the trainer make:
    ``encode_prompt``, ``encode_reference`` (ReferenceNet, once per video), ``frame_conditions``
    (music/beat tokens, once per video) and ``denoise`` (one UNet call on some frames).
    """

    def __init__(self, config: MuseDanceConfig, tokenizer: PromptTokenizer | None = None):
        super().__init__()
        from diffusers import AutoencoderKL, MotionAdapter, UNet2DConditionModel, UNetMotionModel

        self.config = config
        self.vae = AutoencoderKL(**config.vae)
        self.text_encoder = build_text_encoder(config.text_encoder, config.tokenizer)
        self.reference_unet = UNet2DConditionModel(**config.unet)
        # The spatial UNet and the adapter only describe the layout here (meta device, no memory);
        # from_unet2d then allocates the 3D UNet once (building them for real doubled sd15's peak).
        with torch.device("meta"):
            spatial = UNet2DConditionModel(**config.unet)
            adapter = MotionAdapter(**config.motion)
        self.denoising_unet = UNetMotionModel.from_unet2d(spatial, adapter, load_weights=False)
        del spatial, adapter
        for module in motion_modules(self.denoising_unet).values():  # AnimateDiff zero-initialises
            nn.init.zeros_(module.proj_out.weight)                     # the temporal output layers
            nn.init.zeros_(module.proj_out.bias)
        self.tokenizer = tokenizer if tokenizer is not None else (ByteTokenizer() if config.tokenizer == "byte-bpe" else None)

        self.music, self.beat = self.build_branches(config, self.denoising_unet)
        self._install_processors()
        self._context: AttentionContext | None = None

    @staticmethod
    def build_branches(config: MuseDanceConfig, denoising_unet: nn.Module) -> tuple[ConditionBranch, ConditionBranch]:
        """Fresh music and beat branches (zero-initialised outputs: they add nothing until trained),
        sized from the denoising UNet's attention and motion layers (which may be on the meta device)."""
        blocks = transformer_blocks(denoising_unet)
        inner = {name: block.attn2.to_q.out_features for name, block in blocks.items()}
        motion = {name: module.proj_in.in_features for name, module in motion_modules(denoising_unet).items()}
        args = (config.branch_hidden, config.cross_attention_dim, config.token_window)
        music = ConditionBranch(config.music_dim, *args, attention_layers=inner)
        beat = ConditionBranch(config.beat_dim, *args, attention_layers=inner, film_layers=motion)
        if config.caption_film:
            beat.add_text_film(config.cross_attention_dim)
        return music, beat

    def rebuild_beat_branch(self, beat_features: tuple[str, ...]) -> None:
        """A fresh (zero-initialised) beat branch that reads ``beat_features``: for training on data
        whose beat columns differ from the ones the old branch was made for."""
        config = self.config.with_changes(beat_features=tuple(beat_features))
        _, beat = self.build_branches(config, self.denoising_unet)
        reference = next(self.beat.parameters())
        self.beat = beat.to(device=reference.device, dtype=reference.dtype)
        self.config = config

    def enable_caption_film(self) -> None:
        """Let the motion modules' FiLM see the caption (``config.caption_film``): adds the beat
        branch's zero-initialised ``film_text``, so the model's output is unchanged until it trains."""
        if self.beat.film_text is None:
            self.beat.add_text_film(self.config.cross_attention_dim)
        self.config = self.config.with_changes(caption_film=True)

    # -- wiring -------------------------------------------------------------------------------
    def _install_processors(self) -> None:
        for name, block in transformer_blocks(self.reference_unet).items():
            block.attn1.set_processor(CaptureSelfAttention(name))
            block.attn2.set_processor(PlainAttention())
        for name, block in transformer_blocks(self.denoising_unet).items():
            for attn in (block.attn1, block.attn2):
                if attn.spatial_norm is not None or attn.group_norm is not None or attn.residual_connection:
                    raise ValueError(f"{name}: unexpected attention layout for an SD 1.5 UNet")
            block.attn1.set_processor(ReferenceSelfAttention(name))
            block.attn2.set_processor(DecoupledCrossAttention(name))
        for name, module in motion_modules(self.denoising_unet).items():
            # a partial of a bound method (not a closure) so that copy.deepcopy rebinds it to the copy
            module.register_forward_pre_hook(functools.partial(self._film, name), with_kwargs=True)
            module.register_forward_hook(self._motion_switch, with_kwargs=True)

    def _film(self, name: str, module, args, kwargs):
        """Forward pre-hook of motion module ``name``: frame-wise FiLM of its input by the beats."""
        ctx = self._context
        if ctx is None or ctx.cond is None or ctx.film is None or ctx.beat_scale == 0:
            return None
        hidden = args[0]  # ((V F), C, H, W)
        scale, shift = self.beat.film_params(name, ctx.film)  # (rows in cond, C)
        rows = ctx.cond
        part = hidden[rows] * (1 + ctx.beat_scale * scale[:, :, None, None]) + ctx.beat_scale * shift[:, :, None, None]
        hidden = torch.cat([hidden[: rows.start], part.to(hidden.dtype), hidden[rows.stop :]], dim=0)
        return (hidden,) + tuple(args[1:]), kwargs

    def _motion_switch(self, module, args, kwargs, output):
        if self._context is not None and not self._context.motion:
            return args[0] if args else kwargs["hidden_states"]
        return output

    # -- properties ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @device.setter
    def device(self, value) -> None:
        """Host memory managers (ComfyUI's ModelPatcher) record a device here; the parameters'
        device stays the truth, so the value is not stored."""

    @property
    def dtype(self) -> torch.dtype:
        return next(self.denoising_unet.parameters()).dtype

    @property
    def vae_scale_factor(self) -> int:
        return self.config.vae_scale_factor

    # -- the calls ----------------------------------------------------------------------------
    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        """Prompts -> CLIP last hidden state [B, 77, cross_attention_dim]."""
        if self.tokenizer is None:
            raise ValueError("this model has no tokenizer; load one (see README: CLIP tokenizer).")
        ids = tokenize(self.tokenizer, prompts).to(self.text_encoder.device)  # with stage offload the encoder may sit elsewhere
        return self.text_encoder(input_ids=ids).last_hidden_state.to(self.dtype)

    def encode_images(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images [B, 3, H, W] in [-1, 1] -> scaled latents [B, 4, H/f, W/f] (posterior mode when no generator)."""
        dist = self.vae.encode(images.to(self.vae.dtype)).latent_dist
        latents = dist.sample(generator) if generator is not None else dist.mode()
        return latents * self.vae.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents [N, 4, h, w] -> images [N, 3, H, W] in [-1, 1]."""
        return self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample

    def encode_reference(self, reference_latents: torch.Tensor, text: torch.Tensor) -> ReferenceBank:
        """Run ReferenceNet once (t = 0) and project its block tokens with the denoising UNet's
        ``attn1.to_k/to_v``: {block: (keys, values)} each [V, N, inner]."""
        capture: dict[str, torch.Tensor] = {}
        ctx = AttentionContext(capture=capture)
        timestep = torch.zeros(reference_latents.shape[0], device=reference_latents.device)
        self.reference_unet(reference_latents.to(self.dtype), timestep, encoder_hidden_states=text,
                            cross_attention_kwargs={"musedance": ctx})
        bank: ReferenceBank = {}
        h, w = reference_latents.shape[-2:]
        for name, block in transformer_blocks(self.denoising_unet).items():
            tokens = pool_reference_tokens(capture[name], h, w, self.config.reference_max_tokens)
            bank[name] = (block.attn1.to_k(tokens), block.attn1.to_v(tokens))
        return bank

    def frame_conditions(self, music: torch.Tensor, beats: torch.Tensor) -> FrameConditions:
        """music [V, T, music_dim], beats [V, T, beat_dim] -> tokens for every frame."""
        if music.shape[:2] != beats.shape[:2]:
            raise ValueError(f"music {tuple(music.shape)} and beats {tuple(beats.shape)} must have the same [V, T]")
        music_tokens, _ = self.music(music.to(self.dtype))
        beat_tokens, film = self.beat(beats.to(self.dtype))
        return FrameConditions(music_tokens, beat_tokens, film)

    def denoise(self, latents: torch.Tensor, timestep: torch.Tensor | float, text: torch.Tensor, *,
                reference: ReferenceBank | None = None, conditions: FrameConditions | None = None,
                cond: slice | None = None, music_scale: float = 1.0, beat_scale: float = 1.0,
                motion: bool = True) -> torch.Tensor:
        """One denoising-UNet call.

        Args:
            latents: [B, 4, F, h, w] noisy latents of B videos (F frames each).
            timestep: scalar or [B].
            text: [B, 77, C] prompt embeddings (one per video; repeated over frames here).
            reference: ReferenceNet bank for the videos in ``cond`` (V = number of those videos).
            conditions: music/beat conditions [V, F, ...] of the videos in ``cond``.
            cond: which videos (a slice over B) get reference, music and beats; default all
                when ``reference`` or ``conditions`` is given. The others are unconditional.
            music_scale, beat_scale: branch strengths (0 = branch off, exactly).
            motion: False bypasses the motion modules (single-image training).

        Returns:
            model output (noise or v) [B, 4, F, h, w].
        """
        b, _, f = latents.shape[:3]
        if cond is None and (reference is not None or conditions is not None):
            cond = slice(0, b)
        rows = None if cond is None else slice(cond.start * f, cond.stop * f)
        flat = (lambda x: None if x is None else x.reshape(-1, *x.shape[2:]))
        film = None
        if conditions is not None:
            # the caption's mean token state: CLIP's causal attention lets the padding tokens
            # after the prompt see all of it, so the mean summarises the prompt
            caption = text[cond].mean(dim=1).repeat_interleave(f, dim=0) if self.beat.film_text is not None else None
            film = self.beat.film_embedding(flat(conditions.film), caption)
        ctx = AttentionContext(num_frames=f, cond=rows, reference=reference, music=self.music, beat=self.beat,
                               music_tokens=flat(conditions.music_tokens) if conditions else None,
                               beat_tokens=flat(conditions.beat_tokens) if conditions else None,
                               film=film,
                               music_scale=float(music_scale), beat_scale=float(beat_scale), motion=motion)
        text = text.to(self.dtype).repeat_interleave(f, dim=0)  # ((B F), 77, C)
        if not torch.is_tensor(timestep):
            timestep = torch.tensor([float(timestep)], device=latents.device)
        with self._use_context(ctx):
            return self.denoising_unet(latents.to(self.dtype), timestep, encoder_hidden_states=text,
                                       cross_attention_kwargs={"musedance": ctx}).sample

    def enable_gradient_checkpointing(self) -> None:
        """Recompute the UNets' blocks in the backward pass instead of keeping their activations.
        The motion modules' FiLM and bypass hooks read the call's context (``_use_context``), which
        is gone by the time backward recomputes a block: each checkpoint carries the context of its
        forward pass into the recomputation, or the two would differ (torch's CheckpointError)."""
        def checkpoint(block, *args):
            ctx = self._context

            def run(*inputs):
                with self._use_context(ctx):
                    return block(*inputs)

            return torch.utils.checkpoint.checkpoint(run, *args, use_reentrant=False)

        for unet in (self.denoising_unet, self.reference_unet):
            unet.enable_gradient_checkpointing(checkpoint)

    @contextlib.contextmanager
    def _use_context(self, ctx: AttentionContext):
        previous, self._context = self._context, ctx
        try:
            yield
        finally:
            self._context = previous

    def parameter_counts(self) -> dict[str, int]:
        return {name: sum(p.numel() for p in module.parameters()) for name, module in self.named_children()}
