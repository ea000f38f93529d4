"""Device and precision choice, with the guards each backend needs.

- CUDA: fp16 by default, bf16 on request when the GPU supports it; SDPA picks flash /
  memory-efficient kernels itself.
- Apple MPS: fp16 by default (bf16 needs macOS 14+; asked for explicitly, it is tried).
- CPU: fp32 by default; bf16 on request (slower on most CPUs, but it runs); fp16 is refused on
  the CPU because many CPU kernels lack it.
"""

from __future__ import annotations

import torch

from .errors import InputError

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


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
    """The weight/activation dtype for ``precision`` on ``device``."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}; got '{precision}'.")
    if precision == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    if precision == "fp16" and device.type == "cpu":
        raise InputError("fp16 is not supported on the CPU; use fp32 or bf16.")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InputError("this GPU does not support bf16; use fp16 or fp32.")
    return _DTYPES[precision]
