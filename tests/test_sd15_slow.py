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
