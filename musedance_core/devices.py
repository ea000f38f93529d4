"""Device and precision choice, with the guards each backend needs, and stage offloading.

- CUDA: fp16 by default, bf16 on request when the GPU supports it; SDPA picks flash /
  memory-efficient kernels itself.
- Apple MPS: fp16 by default (bf16 needs macOS 14+; asked for explicitly, it is tried).
- CPU: fp32 by default. bf16 and fp16 run on request: torch 2.14 has CPU kernels in both for
  every op the model uses. Measured (tiny model, 8 frames at 128x128, 4 steps, one thread, AMD
  EPYC with AVX512-BF16): fp32 2.4 s, bf16 2.2 s, fp16 30 s: fp16 on the CPU is for checking fp16
  behaviour, not for speed, and says so. fp16 is refused with a clear message when this torch
  lacks one of those kernels (older builds do).

Whatever the weights' dtype, the pipeline keeps latents, scheduler math and guidance in fp32,
and runs an fp16 VAE in fp32 (see ``pipeline.AnimateSettings.upcast_vae``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .errors import InputError
from .notes import note

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
OFFLOAD_MODES = ("none", "stages")


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda, else mps, else cpu; otherwise the named device, checked to exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise InputError(f"unknown device '{name}'; use auto, cpu, cuda, cuda:N or mps.") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device '{name}' asked for, but this torch sees no CUDA GPU; use --device cpu.")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"device '{name}' asked for, but MPS is not available here; use --device cpu.")
    return device


def pick_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The weight dtype for ``precision`` on ``device`` (auto: fp16 on CUDA and MPS, fp32 on the CPU)."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}; got '{precision}'.")
    if precision == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    dtype = _DTYPES[precision]
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InputError("this GPU does not support bf16; use fp16 or fp32.")
    if device.type == "cpu" and dtype != torch.float32:
        missing = missing_kernel(dtype, device)
        if missing:
            raise InputError(f"{precision} does not run on the CPU with this torch {torch.__version__} "
                             f"({missing}); use fp32, or bf16, or a newer torch.")
        if dtype == torch.float16:
            note("fp16 on the CPU runs but is many times slower than fp32 or bf16 (most CPUs have no "
                 "fp16 arithmetic); use it to check fp16 behaviour, bf16 to save memory.")
    return dtype


def missing_kernel(dtype: torch.dtype, device: torch.device) -> str | None:
    """Run each kind of op the model uses once, tiny, in ``dtype`` on ``device``; the first
    failure as text ("conv2d: ... not implemented for 'Half'"), or None when all run."""
    x = torch.ones(1, 8, 4, 4, dtype=dtype, device=device)
    tokens = torch.ones(1, 2, 3, 4, dtype=dtype, device=device)  # (B, heads, N, d)
    probes = {
        "conv2d": lambda: nn.functional.conv2d(x, torch.ones(8, 8, 3, 3, dtype=dtype, device=device), padding=1),
        "group_norm": lambda: nn.functional.group_norm(x, 2),
        "layer_norm": lambda: nn.functional.layer_norm(tokens, (4,)),
        "linear": lambda: nn.functional.linear(tokens, torch.ones(4, 4, dtype=dtype, device=device)),
        "scaled_dot_product_attention": lambda: nn.functional.scaled_dot_product_attention(tokens, tokens, tokens),
        "interpolate": lambda: nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"),
        "silu/gelu": lambda: nn.functional.gelu(nn.functional.silu(x)),
        "softmax": lambda: tokens.softmax(-1),
    }
    for name, probe in probes.items():
        try:
            probe()
        except (RuntimeError, NotImplementedError) as exc:
            return f"{name}: {str(exc).splitlines()[0]}"
    return None


class StageOffload:
    """Keep only the modules of the current stage on the compute device (diffusers'
    ``enable_model_cpu_offload``, by stage): ``stage(names)`` first moves every other top-level
    child of ``root`` to ``offload_device``, then the named modules (dotted paths inside ``root``,
    e.g. ``"vae.decoder"``) to ``device``. Peak accelerator memory is then about the largest stage,
    not the whole model. ``enabled=False`` makes every call a no-op.
    """

    def __init__(self, root: nn.Module, device: torch.device, offload_device: torch.device | str = "cpu",
                 enabled: bool = True):
        self.root = root
        self.device = torch.device(device)
        self.offload_device = torch.device(offload_device)
        self.enabled = enabled

    def stage(self, names: Iterable[str]) -> None:
        if not self.enabled:
            return
        names = list(names)
        modules = [self.root.get_submodule(name) for name in names]  # fails early on a wrong name
        for name, child in self.root.named_children():
            if name not in names:
                child.to(self.offload_device)
        for module in modules:
            module.to(self.device)

    def release(self) -> None:
        """Every module back to the offload device."""
        self.stage([])


def ensure_sdpa(model: nn.Module) -> list[str]:
    """Make every attention in ``model`` go through ``F.scaled_dot_product_attention`` (flash /
    memory-efficient kernels on GPUs, no [N, N] score matrix kept): diffusers ``Attention``
    modules still on the classic ``AttnProcessor`` get ``AttnProcessor2_0``, transformers models in
    "eager" attention get "sdpa". MuseDance's own processors already use SDPA. Returns the names
    of the modules changed (normally none: both libraries default to SDPA on torch 2)."""
    from diffusers.models.attention_processor import Attention, AttnProcessor, AttnProcessor2_0

    changed = []
    for name, module in model.named_modules():
        if isinstance(module, Attention) and type(module.processor) is AttnProcessor:
            module.set_processor(AttnProcessor2_0())
            changed.append(name)
        config = getattr(module, "config", None)
        if getattr(config, "_attn_implementation", None) == "eager" and hasattr(module, "set_attn_implementation"):
            module.set_attn_implementation("sdpa")
            changed.append(name)
    return changed
