"""The full-size sd15 layout runs (random weights; ~10 GB of RAM, minutes on a CPU).

Run on request: ``pytest -m slow tests/test_sd15_slow.py``.
"""

from __future__ import annotations

import pytest
import torch

from musedance_core.models.config import sd15_config
from musedance_core.models.musedance import MuseDanceModel


@pytest.mark.slow
def test_sd15_one_denoising_step_at_256_with_4_frames():
    torch.manual_seed(0)
    model = MuseDanceModel(sd15_config()).eval()
    frames, size = 4, 256 // model.vae_scale_factor  # 32x32 latents
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        text = model.encode_prompt(["", "a dancer spins on the downbeats"]) if model.tokenizer else \
            torch.randn(2, 77, 768, generator=g)
        reference = model.encode_reference(torch.randn(1, 4, size, size, generator=g), text[1:])
        conditions = model.frame_conditions(torch.randn(1, frames, model.config.music_dim, generator=g),
                                            torch.randn(1, frames, model.config.beat_dim, generator=g))
        latents = torch.randn(2, 4, frames, size, size, generator=g)
        out = model.denoise(latents, 500, text, reference=reference, conditions=conditions, cond=slice(1, 2))
    assert out.shape == latents.shape and torch.isfinite(out).all()
    assert len(reference) == 16  # every SD 1.5 transformer block sees the reference


@pytest.mark.slow
def test_sd15_assembled_from_synthetic_real_layout_files_runs_one_step(tmp_path):
    """An SD 1.5 single file (LDM names, fp16) + an AnimateDiff v2 module, both full size with
    random values: `inspect` reports every tensor found, and the assembled model runs one full
    denoising step at 256x256 with 4 frames (~3 GB of files, ~12 GB of RAM, minutes)."""
    import json
    import subprocess
    import sys

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file

    from musedance_core.checkpoints.assemble import ModelSources, assemble
    from musedance_core.models.text import build_text_encoder
    from tests.checkpoint_files import SD15_CHANNELS, SD15_LAYERS, Randoms, animatediff_file, save
    from tests.test_sd15_loading import Modules, ldm_checkpoint, ldm_names

    config = sd15_config()
    with torch.device("meta"):
        modules = Modules(UNet2DConditionModel(**config.unet), AutoencoderKL(**config.vae),
                          build_text_encoder(config.text_encoder, config.tokenizer))
    layout = ldm_checkpoint(modules, ldm_names(modules.vae.state_dict()), dtype=torch.float16)
    g = torch.Generator().manual_seed(0)
    state = {k: (0.02 * torch.randn(v.shape, generator=g)).half() if v.is_meta else v.contiguous()
             for k, v in layout.items()}
    base = tmp_path / "v1-5-pruned-emaonly.safetensors"
    save_file(state, str(base))
    del state, layout
    motion = save(animatediff_file(SD15_CHANNELS, SD15_LAYERS, 32, True, Randoms(1, torch.float16)),
                  tmp_path / "mm_sd_v15_v2.safetensors")

    report_file = tmp_path / "report.json"
    run = subprocess.run([sys.executable, "-m", "musedance_core", "inspect", "--base", str(base), "--motion",
                          str(motion), "--json", str(report_file)], capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(report_file.read_text())
    assert not report["errors"] and report["tokenizer"]
    for c in report["components"]:  # music and beat: no file has them, they start fresh
        assert c["fresh"] == (c["component"] in ("music", "beat")), c["component"]
        assert c["fresh"] or not c["missing"], c["component"]
        assert not c["shape_errors"], c["component"]
    assert report["components"][4]["sources"] == {motion.name: report["components"][4]["expected"]}

    model, _ = assemble(ModelSources(base=base, motion=motion))
    frames, size = 4, 256 // model.vae_scale_factor
    with torch.no_grad():
        text = model.encode_prompt(["", "a dancer spins on the downbeats"])
        reference = model.encode_reference(model.encode_images(torch.rand(1, 3, 256, 256, generator=g) * 2 - 1), text[1:])
        conditions = model.frame_conditions(torch.randn(1, frames, config.music_dim, generator=g),
                                            torch.randn(1, frames, config.beat_dim, generator=g))
        latents = torch.randn(2, 4, frames, size, size, generator=g)
        out = model.denoise(latents, 500, text, reference=reference, conditions=conditions, cond=slice(1, 2))
    assert out.shape == latents.shape and torch.isfinite(out).all()
    assert torch.equal(model.denoising_unet.conv_in.weight.half(), model.reference_unet.conv_in.weight.half())
