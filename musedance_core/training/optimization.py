"""The optimizer, its learning-rate schedule and the EMA of the trained weights."""

from __future__ import annotations

import contextlib

import torch

from ..errors import TrainError
from .config import TrainConfig

NO_BITSANDBYTES = ("use_8bit_adam needs bitsandbytes: pip install bitsandbytes (CUDA only), "
                   "or train with --set use_8bit_adam=false.")


def check_8bit_adam(cfg: TrainConfig) -> None:
    """Stop at once, before a model is built or a folder made, when 8-bit Adam is asked for and
    bitsandbytes cannot be imported."""
    if not cfg.use_8bit_adam:
        return
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise TrainError(NO_BITSANDBYTES) from exc


def make_optimizer(cfg: TrainConfig, params: list[torch.nn.Parameter]):
    if cfg.use_8bit_adam:
        check_8bit_adam(cfg)  # main() has asked already, before any heavy work
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then constant (Moore-AnimateAnyone trains at a constant 1e-5)."""
    return cfg.learning_rate * min(1.0, (step + 1) / max(cfg.warmup_steps, 1))


@contextlib.contextmanager
def ema_weights(trainable: dict[str, torch.nn.Parameter], ema: dict[str, torch.Tensor] | None):
    """Temporarily put the EMA weights into the model (for validation and the final bundle)."""
    if ema is None:
        yield
        return
    saved = {k: p.detach().clone() for k, p in trainable.items()}
    with torch.no_grad():
        for k, p in trainable.items():
            p.copy_(ema[k])
    try:
        yield
    finally:
        with torch.no_grad():
            for k, p in trainable.items():
                p.copy_(saved[k])
