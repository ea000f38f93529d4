"""The model a training run starts from: the previous stage's bundle, one assembled from SD 1.5 /
AnimateDiff / Animate Anyone files, or a fresh preset, fitted to the data set's music and beat
features and to the config's noise schedule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import TrainError
from .config import TrainConfig


def build_model(cfg: TrainConfig, music: tuple[str, int], beat_features: tuple[str, ...] | None = None):
    """The model to train: the previous stage's bundle (``init``), else one assembled from SD 1.5 /
    AnimateDiff / Animate Anyone files, else a fresh ``preset``. A new model's music branch is
    sized for ``music`` = (encoder id, feature width) of the data set. A stage that trains the beat
    branch on data with other beat columns (``beat_features``) than the branch reads gets a fresh
    branch for them (the stage before stage 2 never trains it). ``caption_film`` adds the caption's
    (zero-initialised) FiLM layer when the starting model lacks it."""
    model = starting_model(cfg, music)
    if cfg.stage == "motion" and beat_features is not None and tuple(beat_features) != model.config.beat_features:
        if "beat" not in cfg.train:
            raise TrainError(f"the data set's beat features ({len(beat_features)} columns) are not the ones the "
                             f"model's beat branch reads ({model.config.beat_dim}); train the beat part too "
                             "(train: [..., beat]) or prepare the data with the MuseDance version of the model.")
        print(f"beat branch: new, for the data set's {len(beat_features)} beat features "
              f"(the starting model's branch read {model.config.beat_dim})")
        model.rebuild_beat_branch(beat_features)
    if cfg.caption_film:
        model.enable_caption_film()
    apply_schedule(model, cfg)
    if cfg.reinit:
        reinitialise(model, cfg.reinit, cfg.seed)
    return model


def apply_schedule(model, cfg: TrainConfig) -> None:
    """Give the model the config's prediction type and, with ``zero_terminal_snr``, noise schedule
    (Lin et al. 2024: the last timestep is pure noise and sampling starts there, with trailing
    steps). Without it, the SD schedule leaves about 10 % of the clip in the first sampling step's
    latents during training, so a video model learns to read the motion from the noise instead of
    making it from the conditions. Both change what the denoising UNet's output means, so they
    need its spatial layers trained (the appearance stage)."""
    schedule = dict(model.config.scheduler)
    changes = {"prediction_type": cfg.prediction_type} if cfg.prediction_type else {}
    if cfg.zero_terminal_snr:
        changes |= {"rescale_betas_zero_snr": True, "timestep_spacing": "trailing"}
    new = schedule | changes
    if new == schedule:
        return
    if (cfg.init or assembles(cfg)) and "spatial" not in cfg.train:  # a fresh preset's UNet has nothing to lose
        raise TrainError(f"the starting model predicts '{schedule['prediction_type']}' with zero terminal SNR "
                         f"{bool(schedule.get('rescale_betas_zero_snr'))}; changing that to {changes} needs the "
                         "spatial layers trained (train: [..., spatial], the appearance stage).")
    if new.get("rescale_betas_zero_snr") and new["prediction_type"] != "v_prediction":
        raise TrainError("zero_terminal_snr needs prediction_type: v_prediction (the noise is the whole input "
                         "at the last timestep, so predicting it says nothing about the image).")
    print(f"noise schedule: {changes}")
    model.config = model.config.with_changes(scheduler=new)


def reinitialise(model, parts: list[str], seed: int) -> None:
    """Start ``parts`` afresh, as a new model of the same config would (zero-initialised outputs:
    a fresh motion module or branch adds nothing until it trains)."""
    from ..models.musedance import MuseDanceModel
    from .steps import named_trainable

    torch.manual_seed(seed)
    fresh = named_trainable(MuseDanceModel(model.config, tokenizer=model.tokenizer), parts)
    with torch.no_grad():
        for name, p in named_trainable(model, parts).items():
            p.copy_(fresh[name])
    print(f"started afresh: {', '.join(parts)}")


def assembles(cfg: TrainConfig) -> bool:
    """Whether the starting model is assembled from SD 1.5 / AnimateDiff / Animate Anyone files."""
    return bool(cfg.base or cfg.motion or cfg.animate_anyone)


def starting_model(cfg: TrainConfig, music: tuple[str, int]):
    from ..checkpoints.assemble import ModelSources, assemble
    from ..checkpoints.bundle import load_bundle
    from ..models.config import preset
    from ..models.musedance import MuseDanceModel

    if cfg.init:
        return load_bundle(cfg.init)
    encoder, dim = music
    if assembles(cfg):
        sources = ModelSources(base=cfg.base or None, motion=cfg.motion or None,
                               animate_anyone=cfg.animate_anyone or None, tokenizer=cfg.tokenizer or None)
        model, report = assemble(sources, music_encoder=(encoder, dim))
        print(report.format())
        return model
    torch.manual_seed(cfg.seed)
    return MuseDanceModel(preset(cfg.preset).with_changes(music_encoder=encoder, music_dim=dim))


def data_beat_features(root: str, records) -> tuple[str, ...] | None:
    """Column names of a data set's beat features, from its first clip's width (None: no beats)."""
    from ..types import beat_feature_names

    with np.load(Path(root) / records[0]["clip"]) as arrays:
        return beat_feature_names(int(arrays["beats"].shape[1])) if "beats" in arrays.files else None


def data_music(root: str, records) -> tuple[str, int]:
    """(music encoder id, feature width) of a data set, from its first clip."""
    with np.load(Path(root) / records[0]["clip"]) as arrays:
        return records[0].get("music_encoder", "spectral-v1"), int(arrays["music"].shape[1])
