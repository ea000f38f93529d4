"""Diffusion training losses: noising, targets, min-SNR weights, offset noise, masked MSE."""

from __future__ import annotations

import torch


def offset_noise(shape: tuple[int, ...], generator: torch.Generator, strength: float) -> torch.Tensor:
    """Gaussian noise plus a per-sample, per-channel constant (offset noise, Guttenberg 2023), so
    the model also learns to change an image's overall brightness. [B, C, ...] like ``shape``."""
    noise = torch.randn(shape, generator=generator)
    if strength > 0:
        noise = noise + strength * torch.randn(shape[:2] + (1,) * (len(shape) - 2), generator=generator)
    return noise


def sample_timesteps(count: int, num_train_timesteps: int, shift: float, generator: torch.Generator) -> torch.Tensor:
    """Training timesteps [count]: uniform, or with ``shift`` > 1 moved towards high noise by the
    SD3 shift t = s*u / (1 + (s-1)*u) of a uniform u (Esser et al. 2024). Video models need the
    high-noise steps most: there the frames are barely visible, and the motion is decided from
    the conditions (caption, music, beats) alone, as it is at the first sampling steps."""
    if shift == 1.0:  # the plain draw, so runs without a shift keep their random stream
        return torch.randint(0, num_train_timesteps, (count,), generator=generator)
    u = torch.rand(count, generator=generator)
    shifted = shift * u / (1 + (shift - 1) * u)
    return (shifted * num_train_timesteps).long().clamp_(0, num_train_timesteps - 1)


def alphas_cumprod(scheduler, timesteps: torch.Tensor) -> torch.Tensor:
    return scheduler.alphas_cumprod.to(timesteps.device)[timesteps].float()


def training_target(scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the model predicts: the noise (epsilon) or v = sqrt(a) * noise - sqrt(1 - a) * x0."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    raise ValueError(f"unsupported prediction_type '{kind}' (use epsilon or v_prediction)")


def min_snr_weights(scheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-sample loss weights of Min-SNR-gamma (Hang et al. 2023): min(SNR, gamma) / SNR for
    epsilon prediction; for v prediction min(SNR + 1, gamma) / (SNR + 1), as diffusers' and
    Moore-AnimateAnyone's trainers weigh it, which stays 1 where the SNR is 0 (the last timestep
    of a zero-terminal-SNR schedule, where the motion is made); ones when gamma <= 0."""
    if gamma <= 0:
        return torch.ones(timesteps.shape[0], device=timesteps.device)
    a = alphas_cumprod(scheduler, timesteps)
    snr = a / (1 - a).clamp_min(1e-8)
    if scheduler.config.prediction_type == "v_prediction":
        snr = snr + 1
    return torch.minimum(snr, torch.full_like(snr, gamma)) / snr.clamp_min(1e-8)


def diffusion_loss(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor,
                   pixel_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted MSE. prediction/target [B, C, F, h, w]; weights [B]; pixel_weights broadcastable
    to [B, 1, F, h, w] (e.g. 1 + k * subject mask), normalised to mean 1 per sample."""
    err = (prediction.float() - target.float()) ** 2
    if pixel_weights is not None:
        pixel_weights = pixel_weights / pixel_weights.mean(dim=tuple(range(1, pixel_weights.ndim)), keepdim=True)
        err = err * pixel_weights
    per_sample = err.mean(dim=tuple(range(1, err.ndim)))
    return (per_sample * weights).mean()
