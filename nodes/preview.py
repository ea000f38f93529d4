"""Sampling previews the way ComfyUI's ``--preview-method`` asks (read when a node runs):

- ``none`` (ComfyUI's default): no preview image; the progress bar still moves;
- ``auto`` and ``latent2rgb``: a linear latent -> RGB map of the frame (no VAE decode): SD 1.5's
  factors for an SD 1.5 VAE, else a map fitted once to the model's own VAE (musedance_core.preview);
- ``taesd``: ComfyUI's own TAESD previewer when the model's VAE is SD 1.5's and
  models/vae_approx has ``taesd_decoder``, else latent2rgb with a warning, as ComfyUI does.

The preview image's size is limited by ``--preview-size`` (the server shrinks it).
"""

from __future__ import annotations

import logging
from typing import Callable

PREVIEW_FORMAT = "JPEG"


def preview_method() -> str:
    """ComfyUI's --preview-method now ("none", "auto", "latent2rgb" or "taesd")."""
    from comfy.cli_args import args

    method = args.preview_method
    return str(getattr(method, "value", method))


def preview_size() -> int:
    from comfy.cli_args import args

    return int(args.preview_size)


def make_previewer(model, device) -> Callable | None:
    """A function: one frame's latents [1, C, h, w] -> ComfyUI's preview tuple
    ("JPEG", PIL image, max size), or None when the user asked for no previews."""
    from ..musedance_core.preview import choose_preview, is_sd15_vae

    method = preview_method()
    if method == "none":
        return None
    sd15 = is_sd15_vae(model.vae)
    vae_approx = _vae_approx_files() if method == "taesd" and sd15 else []
    choice = choose_preview(method, sd15, vae_approx)
    if choice.note:
        logging.warning("MuseDance: %s", choice.note)
    if choice.kind == "taesd":
        previewer = _taesd_previewer(device)
        if previewer is not None:
            return previewer
    return _latent2rgb_previewer(model)


def _vae_approx_files() -> list[str]:
    import folder_paths

    try:
        return folder_paths.get_filename_list("vae_approx")
    except KeyError:  # a ComfyUI without the folder
        return []


def _taesd_previewer(device) -> Callable | None:
    import comfy.latent_formats
    import latent_preview

    previewer = latent_preview.get_previewer(device, comfy.latent_formats.SD15())
    if previewer is None:
        return None
    return lambda frame: previewer.decode_latent_to_preview_image(PREVIEW_FORMAT, frame)


def _latent2rgb_previewer(model) -> Callable:
    from PIL import Image

    from ..musedance_core.preview import latent_rgb_map

    rgb = latent_rgb_map(model)  # fitted once per loaded model, then cached
    size = preview_size()
    logging.info("MuseDance: latent2rgb previews (%s map)", rgb.source)
    return lambda frame: (PREVIEW_FORMAT, Image.fromarray(rgb.image(frame).numpy()), size)
