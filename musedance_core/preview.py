"""Cheap sampling previews: a linear latent -> RGB map (ComfyUI's "latent2rgb" previews).

A preview of a step is one frame of the latents multiplied by a [C, 3] matrix plus a bias:
no VAE decoder runs, so it costs next to nothing. For a VAE shaped like Stable Diffusion 1.5's
(4 latent channels, 8x downscale, scaling_factor 0.18215) the map is ComfyUI's own
``SD15.latent_rgb_factors``. Any other VAE (the demo model's tiny one, a retrained one) gets a
map fitted once: a fixed set of synthetic images (solid colours, gradients, colour mosaics,
smooth colour fields) is encoded with the model's VAE encoder, the images are average-pooled
to latent resolution, and a least-squares fit of [latent channels, 1] -> RGB gives the matrix
and the bias. The fit is cached per VAE object (a weak reference), so it runs once per loaded
model, not once per run.

The maps work on *scaled* latents (what the pipeline denoises; ``MuseDanceModel.encode_images``
returns them) and give RGB in [-1, 1], as ComfyUI's factors do.

Also here: ``choose_preview`` (ComfyUI's --preview-method rules applied to a MuseDance model)
and ``denoised_estimate`` (the scheduler's clean-latent estimate the pipeline hands its
callback). No ComfyUI import here; nodes/preview.py is the ComfyUI side.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# ComfyUI comfy/latent_formats.py SD15.latent_rgb_factors (rows: latent channels; columns: R, G, B)
SD15_LATENT_RGB = ((0.3512, 0.2297, 0.3227),
                   (0.3250, 0.4974, 0.2350),
                   (-0.2829, 0.1762, 0.2721),
                   (-0.2120, -0.2616, -0.7177))
SD15_SCALING_FACTOR = 0.18215
FIT_SIZE = 128  # side of the synthetic fitting images, pixels
FIT_RIDGE = 1e-4  # ridge term of the least-squares fit (keeps it stable for near-constant channels)


@dataclass(frozen=True)
class LatentRGB:
    """RGB = latents . weight + bias, per latent pixel. ``source``: "sd15" or "fitted"."""

    weight: torch.Tensor  # [C, 3] float32, CPU
    bias: torch.Tensor  # [3] float32, CPU
    source: str

    @property
    def channels(self) -> int:
        return self.weight.shape[0]

    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [..., C, h, w] -> RGB [..., h, w, 3] in about [-1, 1] (float32, latents' device)."""
        x = latents.float().movedim(-3, -1)
        return F.linear(x, self.weight.t().to(x.device), self.bias.to(x.device))

    def image(self, latents: torch.Tensor) -> torch.Tensor:
        """One frame's latents [C, h, w] (or [1, C, h, w]) -> uint8 image [h, w, 3] on the CPU."""
        if latents.dim() == 4:
            latents = latents[0]
        rgb = self(latents).nan_to_num()
        return ((rgb + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu()


PREVIEW_METHODS = ("none", "auto", "latent2rgb", "taesd")  # ComfyUI's --preview-method values
TAESD_DECODER = "taesd_decoder"  # models/vae_approx file name prefix of SD 1.5's TAESD decoder


@dataclass(frozen=True)
class PreviewChoice:
    """What to preview with: ``kind`` "none", "latent2rgb" or "taesd"; ``note`` says why a
    requested method could not be used (to log once), else None."""

    kind: str
    note: str | None = None


def choose_preview(method: str, sd15_vae: bool, vae_approx: list[str] | tuple[str, ...] = ()) -> PreviewChoice:
    """ComfyUI's rules (latent_preview.get_previewer) for a MuseDance model.

    ``method``: ComfyUI's --preview-method value; ``sd15_vae``: ``is_sd15_vae(model.vae)``;
    ``vae_approx``: the file names in models/vae_approx. none -> no preview; auto and latent2rgb
    -> latent2rgb; taesd -> taesd when the VAE is SD 1.5's and a ``taesd_decoder*`` file exists,
    else latent2rgb with a note (ComfyUI falls back the same way).
    """
    if method == "none":
        return PreviewChoice("none")
    if method in ("auto", "latent2rgb"):
        return PreviewChoice("latent2rgb")
    if method == "taesd":
        if not sd15_vae:
            return PreviewChoice("latent2rgb", "TAESD previews need a model with Stable Diffusion 1.5's VAE and this "
                                               "model's VAE is another one; previewing with latent2rgb instead.")
        if not any(name.startswith(TAESD_DECODER) for name in vae_approx):
            return PreviewChoice("latent2rgb", f"TAESD previews enabled, but models/vae_approx has no "
                                               f"{TAESD_DECODER}; previewing with latent2rgb instead.")
        return PreviewChoice("taesd")
    return PreviewChoice("latent2rgb", f"unknown preview method '{method}'; previewing with latent2rgb.")


def is_sd15_vae(vae) -> bool:
    """True for a VAE in SD 1.5's latent space: 4 latent channels, 8x downscale, scaling 0.18215."""
    cfg = vae.config
    factor = 2 ** (len(cfg.block_out_channels) - 1)
    return (int(cfg.latent_channels) == 4 and factor == 8
            and math.isclose(float(cfg.scaling_factor), SD15_SCALING_FACTOR, rel_tol=1e-3)
            and getattr(cfg, "shift_factor", None) in (None, 0.0))


def sd15_map() -> LatentRGB:
    return LatentRGB(torch.tensor(SD15_LATENT_RGB, dtype=torch.float32), torch.zeros(3), "sd15")


_FITTED: "weakref.WeakKeyDictionary[torch.nn.Module, LatentRGB]" = weakref.WeakKeyDictionary()


def latent_rgb_map(model) -> LatentRGB:
    """The latent -> RGB map for a ``MuseDanceModel``: SD 1.5's factors for an SD 1.5 VAE, else
    one fitted to the model's VAE (done once per VAE object and cached)."""
    vae = model.vae
    if is_sd15_vae(vae):
        return sd15_map()
    cached = _FITTED.get(vae)
    if cached is None:
        cached = _FITTED[vae] = fit_latent_rgb(model.encode_images, model.vae_scale_factor, vae)
    return cached


def fitting_images(size: int = FIT_SIZE) -> torch.Tensor:
    """The fixed synthetic fitting set: [N, 3, size, size] RGB in [0, 1], the same on every call.

    Solid colours (the cube's corners and greys), horizontal and vertical two-colour gradients,
    colour mosaics of blocks of several sizes, and smooth random colour fields.
    """
    g = torch.Generator().manual_seed(2204)
    images = []
    corners = torch.tensor([[r, gr, b] for r in (0.0, 1.0) for gr in (0.0, 1.0) for b in (0.0, 1.0)])
    greys = torch.tensor([[v, v, v] for v in (0.25, 0.5, 0.75)])
    for colour in torch.cat([corners, greys, torch.rand(5, 3, generator=g)]):
        images.append(colour[:, None, None].expand(3, size, size))
    ramp = torch.linspace(0.0, 1.0, size)
    for i in range(6):
        a, b = torch.rand(3, generator=g), torch.rand(3, generator=g)
        t = ramp[None, :].expand(size, size) if i % 2 == 0 else ramp[:, None].expand(size, size)
        images.append(a[:, None, None] * (1 - t) + b[:, None, None] * t)
    for block in (8, 16, 32, 8, 16, 32):
        cells = torch.rand(3, size // block, size // block, generator=g)
        images.append(F.interpolate(cells[None], scale_factor=block, mode="nearest")[0])
    for cells in (4, 6, 8, 4):
        field = torch.rand(1, 3, cells, cells, generator=g)
        images.append(F.interpolate(field, size=(size, size), mode="bicubic", align_corners=True)[0].clamp(0, 1))
    return torch.stack(images)


@torch.no_grad()
def fit_latent_rgb(encode, downscale: int, vae=None, images: torch.Tensor | None = None) -> LatentRGB:
    """Fit RGB ~ [latents, 1] @ W by least squares.

    Args:
        encode: images [N, 3, H, W] in [-1, 1] -> scaled latents [N, C, H/f, W/f] (e.g.
            ``MuseDanceModel.encode_images``; the posterior mode, no sampling).
        downscale: the VAE's factor f.
        vae: when given, the images go to its device (and to fp32 if it is fp16, as in decoding).
        images: the fitting images [N, 3, H, W] in [0, 1]; default ``fitting_images()``.
    """
    images = fitting_images() if images is None else images
    latents = _encode(encode, images * 2.0 - 1.0, vae)
    target = F.avg_pool2d(images * 2.0 - 1.0, downscale)  # [N, 3, h, w] in [-1, 1]
    if target.shape[-2:] != latents.shape[-2:]:
        raise ValueError(f"latents {tuple(latents.shape[-2:])} do not match the images pooled by {downscale} "
                         f"{tuple(target.shape[-2:])}")
    x = latents.double().movedim(1, -1).reshape(-1, latents.shape[1])
    x = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)
    y = target.double().movedim(1, -1).reshape(-1, 3)
    gram = x.t() @ x / x.shape[0]
    ridge = FIT_RIDGE * torch.eye(gram.shape[0], dtype=gram.dtype)
    ridge[-1, -1] = 0.0  # the bias is not shrunk
    w = torch.linalg.solve(gram + ridge, x.t() @ y / x.shape[0])  # [C + 1, 3]
    return LatentRGB(w[:-1].float().contiguous(), w[-1].float().contiguous(), "fitted")


def _encode(encode, pixels: torch.Tensor, vae) -> torch.Tensor:
    if vae is None:
        return encode(pixels).float().cpu()
    from .pipeline import vae_mode

    device = next(vae.parameters()).device
    with vae_mode(vae, False, torch.float32 if vae.dtype == torch.float16 else None):  # as decoding upcasts
        out = [encode(chunk.to(device=device, dtype=vae.dtype)).float().cpu() for chunk in pixels.split(8)]
    return torch.cat(out)


def denoised_estimate(scheduler, output) -> torch.Tensor | None:
    """The scheduler's estimate of the clean latents after ``scheduler.step`` returned ``output``:
    ``pred_original_sample`` (DDIM, Euler), or for DPM-Solver++ the data prediction it keeps in
    ``model_outputs``; None when the scheduler has neither."""
    x0 = getattr(output, "pred_original_sample", None)
    if x0 is not None:
        return x0
    if getattr(getattr(scheduler, "config", None), "algorithm_type", None) in ("dpmsolver++", "sde-dpmsolver++"):
        outputs = getattr(scheduler, "model_outputs", None)
        if outputs and outputs[-1] is not None:
            return outputs[-1]
    return None
