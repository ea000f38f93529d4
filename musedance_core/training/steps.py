"""One training step's loss for each stage, and which parameters each stage trains.

Stages (docs/ARCHITECTURE.md, Training; ``vae`` only for models without a pretrained VAE, like ``tiny``):
- ``vae``: autoencoder reconstruction (L1 + MSE + a small KL) on single frames.
- ``appearance`` (stage 1): single target frames, a reference frame from a short window of the
  same clip, ReferenceNet + spatial layers, subject-mask-weighted loss; motion modules bypassed.
- ``motion`` (stage 2): clips of N frames with their music and beats; spatial layers frozen;
  motion modules, music and beat branches train; the loss is weighted by each frame's subject
  mask too, since the motion to learn lies in the subject's pixels.
Condition dropout: a fraction of the samples of each batch is trained unconditionally (empty
prompt, no reference, no music/beats), the unconditional branch classifier-free guidance uses.
Caption dropout: a fraction of the conditioned samples keeps reference, music and beats but gets
the empty prompt: the "same dance without a description" that prompt guidance compares with.

Randomness is drawn per sample, from a generator seeded by the run's seed and the sample's global
number in the run (``batch["sample"]``): each sample gets the same dropout, noise and timestep
whichever process and batch position it lands in, so N processes with batch b follow one process
with batch N*b (README: Training on several GPUs or machines). Losses are means of per-sample
losses, so the mean over processes (DDP's gradient average) is the mean over the global batch.
"""

from __future__ import annotations

import torch

from ..models.musedance import MuseDanceModel
from .config import STAGES, LossSettings
from .losses import (
    diffusion_loss,
    min_snr_weights,
    offset_noise,
    sample_timesteps,
    training_target,
)

PARTS = ("vae", "vae_decoder", "text_encoder", "reference_unet", "spatial", "spatial_resnets", "motion", "music", "beat")
VAE_KL_WEIGHT = 1e-6


def named_trainable(model: MuseDanceModel, parts: list[str]) -> dict[str, torch.nn.Parameter]:
    """Parameters of ``parts`` keyed by their bundle names (``motion.down_blocks...`` etc.)."""
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown trainable parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    out: dict[str, torch.nn.Parameter] = {}
    for part in parts:
        if part == "vae_decoder":  # the decoder alone: the latent space the UNets learned stays as it is
            for sub in ("decoder", "post_quant_conv"):
                module = getattr(model.vae, sub, None)
                if module is not None:
                    out.update({f"vae.{sub}.{name}": p for name, p in module.named_parameters()})
        elif part in ("spatial", "spatial_resnets", "motion"):
            for name, p in model.denoising_unet.named_parameters():
                is_motion = ".motion_modules." in name
                if part == "spatial_resnets" and ".attentions." in name:
                    continue  # the paper's stage 2 freezes the spatial attention blocks only
                if is_motion == (part == "motion"):
                    out[f"{'motion' if is_motion else 'denoising_unet'}.{name}"] = p
        else:
            out.update({f"{part}.{name}": p for name, p in getattr(model, part).named_parameters()})
    return out


def set_trainable(model: MuseDanceModel, parts: list[str]) -> dict[str, torch.nn.Parameter]:
    model.requires_grad_(False)
    params = named_trainable(model, parts)
    for p in params.values():
        p.requires_grad_(True)
    return params


def sample_generators(seed: int, samples) -> list[torch.Generator]:
    """One CPU generator per sample, seeded by the run's seed and the sample's global number."""
    return [torch.Generator().manual_seed((int(seed) * 1_000_003 + int(k)) % (2**63 - 1)) for k in samples]


def _generators(batch: dict, seed: int) -> list[torch.Generator]:
    samples = batch.get("sample")
    samples = range(len(batch["caption"])) if samples is None else samples.tolist()
    return sample_generators(seed, samples)


def vae_loss(model: MuseDanceModel, batch: dict, seed: int, mask_weight: float = 0.0) -> torch.Tensor:
    """L1 + L2 reconstruction (+ a tiny KL), the mean of per-sample losses. With ``mask_weight`` the
    subject's pixels weigh 1 + mask_weight: a small subject on a large plain background otherwise
    barely counts."""
    generators = _generators(batch, seed)
    pixels = batch["pixels"][:, 0].to(model.device)  # (B, 3, H, W)
    dist = model.vae.encode(pixels).latent_dist
    noise = torch.stack([torch.randn(dist.mean.shape[1:], generator=g) for g in generators]).to(pixels.device)
    latents = dist.mean + dist.std * noise
    recon = model.vae.decode(latents).sample
    error = recon - pixels
    weights = 1.0 + mask_weight * batch["mask"][:, 0].to(pixels.device) if mask_weight > 0 else torch.ones_like(pixels[:, :1])
    dims = tuple(range(1, error.ndim))
    rec = ((error.abs() + error ** 2) * weights).mean(dim=dims) / weights.mean(dim=dims)
    return (rec + VAE_KL_WEIGHT * dist.kl()).mean()


def condition_dropout(batch: dict, fraction: float, generators: list[torch.Generator],
                  caption_dropout: float = 0.0) -> tuple[dict, int, list[torch.Generator]]:
    """Reorder the batch so the dropped (unconditional) samples come first; returns it, their count
    and the samples' generators in the new order. With ``caption_dropout``, that fraction of the
    other samples loses only its caption."""
    b = len(batch["caption"])
    drop = torch.tensor([bool(torch.rand(1, generator=g) < fraction) for g in generators])
    silent = ([bool(torch.rand(1, generator=g) < caption_dropout) for g in generators] if caption_dropout > 0
              else [False] * b)  # drawn only when asked, so runs without it keep their random stream
    order = torch.argsort(drop.logical_not().int(), stable=True).tolist()  # dropped first
    out = {k: (v[order] if torch.is_tensor(v) else [v[i] for i in order]) for k, v in batch.items()}
    n = int(drop.sum())
    out["caption"] = ["" if i < n or silent[j] else out["caption"][i] for i, j in enumerate(order)]
    return out, n, [generators[i] for i in order]


def _noisy(model: MuseDanceModel, scheduler, latents: torch.Tensor, settings: LossSettings,
           generators: list[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    shape = (1,) + tuple(latents.shape[1:])
    noise = torch.cat([offset_noise(shape, g, settings.noise_offset) for g in generators]).to(latents.device)
    t = torch.cat([sample_timesteps(1, scheduler.config.num_train_timesteps, settings.timestep_shift, g)
                   for g in generators]).to(latents.device)
    return scheduler.add_noise(latents, noise, t), noise, t


@torch.no_grad()
def _encode(model: MuseDanceModel, pixels: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """[B, F, 3, H, W] -> latents [B, 4, F, h, w] (VAE frozen in these stages)."""
    b, f = pixels.shape[:2]
    flat = pixels.flatten(0, 1).to(model.device)
    dist = model.vae.encode(flat.to(model.vae.dtype)).latent_dist
    per_sample = (f,) + tuple(dist.mean.shape[1:])
    noise = torch.cat([torch.randn(per_sample, generator=g) for g in generators]).to(flat.device)
    latents = dist.mean + dist.std * noise
    latents = latents * model.vae.config.scaling_factor
    return latents.unflatten(0, (b, f)).transpose(1, 2).float()


def diffusion_step_loss(model: MuseDanceModel, scheduler, batch: dict, stage: str, settings: LossSettings,
                        seed: int, music_scale: float = 1.0, beat_scale: float = 1.0) -> torch.Tensor:
    """Loss of one ``appearance`` or ``motion`` batch (the mean of per-sample losses)."""
    batch, n_uncond, generators = condition_dropout(batch, settings.uncond_fraction, _generators(batch, seed),
                                                settings.caption_dropout)
    latents = _encode(model, batch["pixels"], generators)  # (B, 4, F, h, w)
    b = latents.shape[0]
    cond = slice(n_uncond, b) if n_uncond < b else None
    text = model.encode_prompt(batch["caption"])
    reference = None
    if cond is not None:
        ref_latents = _encode(model, batch["reference"][cond][:, None], generators[cond])[:, :, 0]
        reference = model.encode_reference(ref_latents, text[cond])
    conditions = None
    if stage == "motion" and cond is not None:
        conditions = model.frame_conditions(batch["music"][cond].to(model.device), batch["beats"][cond].to(model.device))
    noisy, noise, t = _noisy(model, scheduler, latents, settings, generators)
    prediction = model.denoise(noisy, t, text, reference=reference, conditions=conditions, cond=cond,
                               music_scale=music_scale, beat_scale=beat_scale, motion=(stage == "motion"))
    target = training_target(scheduler, latents, noise, t)
    weights = min_snr_weights(scheduler, t, settings.min_snr_gamma)
    pixel_weights = None
    if settings.mask_weight > 0:  # stage 2 too: a small subject's motion is a few latent pixels of each frame
        mask = batch["mask"].to(latents.device).transpose(1, 2)  # (B, 1, F, H, W)
        mask = torch.nn.functional.adaptive_avg_pool3d(mask, latents.shape[2:])
        pixel_weights = 1.0 + settings.mask_weight * mask
    return diffusion_loss(prediction, target, weights, pixel_weights)


class TrainingStep(torch.nn.Module):
    """The model and one stage's loss as a module, so that ``accelerator.prepare`` can wrap it for
    data-parallel training (DDP syncs gradients through ``forward``): ``forward(batch)`` -> loss."""

    def __init__(self, model: MuseDanceModel, stage: str, settings: LossSettings, seed: int, scheduler=None):
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}; got '{stage}'")
        self.model, self.stage, self.settings, self.seed, self.scheduler = model, stage, settings, seed, scheduler

    def forward(self, batch: dict) -> torch.Tensor:
        if self.stage == "vae":
            return vae_loss(self.model, batch, self.seed, self.settings.mask_weight)
        return diffusion_step_loss(self.model, self.scheduler, batch, self.stage, self.settings, self.seed)


@torch.no_grad()
def latent_scale(model: MuseDanceModel, pixels: torch.Tensor) -> float:
    """1 / std of the VAE latents of ``pixels`` [N, 3, H, W]: the SD practice for ``scaling_factor``."""
    latents = model.vae.encode(pixels.to(model.device)).latent_dist.mean
    return float(1.0 / latents.std().clamp_min(1e-6))
