"""Writing the trained model as a MuseDance bundle: at the end of a run, or later from any of its
checkpoints (training/export_bundle.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch

from .checkpoint import check_checkpoint_parts
from .config import TrainConfig
from .model_setup import build_model, data_beat_features, data_music
from .optimization import ema_weights


def bundle_from_checkpoint(cfg: TrainConfig, records, checkpoint: Path, path: Path,
                           use_ema: bool = True) -> tuple[Path, int, bool]:
    """Write ``path``: the starting model built again with a checkpoint's trained tensors (its EMA
    weights when it keeps them and ``use_ema``). Returns (bundle, step, whether EMA weights went in).
    The end of a sharded run uses it, and training/export_bundle.py."""
    from .checkpoint import load_weights
    from .steps import set_trainable

    model = build_model(cfg, data_music(cfg.data, records), data_beat_features(cfg.data, records))
    trainable = set_trainable(model, cfg.train)
    weights, ema, step = load_weights(checkpoint)
    check_checkpoint_parts(checkpoint, weights, trainable)
    with torch.no_grad():
        for name, tensor in weights.items():
            trainable[name].copy_(tensor)
    ema = ema if use_ema else None
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_bundle(model, cfg, records, path, step, trainable, ema), step, ema is not None


def write_bundle(model, cfg: TrainConfig, records, path: Path, step: int, trainable: dict[str, torch.nn.Parameter],
                 ema: dict[str, torch.Tensor] | None) -> Path:
    """Save the model being trained (its EMA weights when there are any) as a MuseDance bundle.
    After a VAE stage the latents' scaling factor is measured first (SD practice: unit variance)."""
    from ..checkpoints.bundle import save_bundle
    from .data import ClipSampler, first_batch
    from .steps import latent_scale

    model.eval()
    with ema_weights(trainable, ema):
        if "vae" in cfg.train:
            pixels = first_batch(ClipSampler(Path(cfg.data), records, "image", seed=cfg.seed + 1), 32)["pixels"]
            scale = latent_scale(model, pixels[:, 0])
            model.vae.register_to_config(scaling_factor=scale)
            model.config = model.config.with_changes(vae=model.config.vae | {"scaling_factor": scale})
        model.config = model.config.with_changes(**trained_frame_format(records))  # the pipeline's defaults
        return save_bundle(model, path, dtype=torch.float16 if cfg.save_fp16 else None,
                           extra_metadata={"stage": cfg.stage, "steps": str(step), "data": str(cfg.data)})


def trained_frame_format(records) -> dict:
    """The frame size and fps most of the training clips have: what the model makes by default."""
    formats = Counter((int(r["width"]), int(r["height"]), float(r["fps"])) for r in records)
    if not formats:
        return {}
    (width, height, fps), _ = formats.most_common(1)[0]
    return {"width": width, "height": height, "fps": fps}
