"""Synthetic weight files with the real key names, written from the original code rather than
from the converters under test (shared by the loading tests and the ComfyUI tests)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

SD15_CHANNELS, SD15_LAYERS = [320, 640, 1280, 1280], 2
TINY_CHANNELS, TINY_LAYERS = [32, 64], 1  # tiny_config().motion
VERSIONS = {"v1": (24, False), "v2": (32, True), "v3": (32, False)}  # pe length, mid block


class Scalars:
    """Tensors that are one fp16 integer expanded to a shape; the integer identifies the tensor."""

    def __init__(self, start=0):
        self.count = start

    def __call__(self, shape) -> torch.Tensor:
        self.count += 1
        assert self.count < 2048  # fp16 holds integers exactly up to 2048
        return torch.tensor(float(self.count), dtype=torch.float16).expand(*shape)

    def table(self, length, channels) -> torch.Tensor:
        return self((1, length, channels))


class Randoms:
    """Small seeded random tensors (real data, for the tiny model)."""

    def __init__(self, seed=0, dtype=torch.float32):
        self.generator, self.dtype = torch.Generator().manual_seed(seed), dtype

    def __call__(self, shape) -> torch.Tensor:
        return (0.1 * torch.randn(*shape, generator=self.generator)).to(self.dtype)

    def table(self, length, channels) -> torch.Tensor:
        return sinusoid(length, channels).to(self.dtype)


def animatediff_file(channels, layers, length, mid, make, *, pe=True, lora=False) -> dict[str, torch.Tensor]:
    """An original-layout AnimateDiff motion module (guoyww/AnimateDiff motion_module.py): per UNet
    level ``layers`` modules down, ``layers + 1`` up, one in the middle if ``mid``."""
    slots = [(f"down_blocks.{i}", layers, c) for i, c in enumerate(channels)]
    slots += [("mid_block", 1, channels[-1])] if mid else []
    slots += [(f"up_blocks.{i}", layers + 1, c) for i, c in enumerate(reversed(channels))]
    state = {}
    for block, count, c in slots:
        for j in range(count):
            p = f"{block}.motion_modules.{j}.temporal_transformer."
            t = p + "transformer_blocks.0."
            if lora:  # AnimateDiff motion LoRA (v2_lora_*.ckpt)
                for a in (0, 1):
                    for proj in ("to_q", "to_k", "to_v", "to_out"):
                        state[f"{t}attention_blocks.{a}.processor.{proj}_lora.down.weight"] = make((4, c))
                        state[f"{t}attention_blocks.{a}.processor.{proj}_lora.up.weight"] = make((c, 4))
                continue
            table = make.table(length, c) if pe else None
            state |= {p + "norm.weight": make((c,)), p + "norm.bias": make((c,)),
                      p + "proj_in.weight": make((c, c)), p + "proj_in.bias": make((c,))}
            for a in (0, 1):
                q = f"{t}attention_blocks.{a}."
                state |= {q + "to_q.weight": make((c, c)), q + "to_k.weight": make((c, c)),
                          q + "to_v.weight": make((c, c)), q + "to_out.0.weight": make((c, c)),
                          q + "to_out.0.bias": make((c,))}
                if pe:  # the same sinusoid in both attention blocks
                    state[q + "pos_encoder.pe"] = table
                state |= {f"{t}norms.{a}.weight": make((c,)), f"{t}norms.{a}.bias": make((c,))}
            state |= {t + "ff.net.0.proj.weight": make((8 * c, c)), t + "ff.net.0.proj.bias": make((8 * c,)),
                      t + "ff.net.2.weight": make((c, 4 * c)), t + "ff.net.2.bias": make((c,)),
                      t + "ff_norm.weight": make((c,)), t + "ff_norm.bias": make((c,)),
                      p + "proj_out.weight": make((c, c)), p + "proj_out.bias": make((c,))}
    return state


def sinusoid(length: int, channels: int) -> torch.Tensor:
    """AnimateDiff's PositionalEncoding table [1, length, channels] (Vaswani et al. 2017)."""
    position = torch.arange(length).unsqueeze(1)
    div = torch.exp(torch.arange(0, channels, 2) * (-math.log(10000.0) / channels))
    pe = torch.zeros(1, length, channels)
    pe[0, :, 0::2], pe[0, :, 1::2] = torch.sin(position * div), torch.cos(position * div)
    return pe


def save(state: dict[str, torch.Tensor], path: Path) -> Path:
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.clone(memory_format=torch.contiguous_format) for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path
