"""Training configuration: one frozen dataclass, read from YAML (with command-line overrides).

Every default lives here once: the loss settings (``LossSettings``, what a training step needs)
and the run settings (``TrainConfig``, which takes its loss defaults from ``LossSettings``)."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

STAGES = ("vae", "appearance", "motion")  # vae: only for models without a pretrained VAE (tiny)


@dataclass(frozen=True)
class LossSettings:
    """What a training step's loss depends on besides the model and the batch (steps.py)."""
    noise_offset: float = 0.05
    min_snr_gamma: float = 5.0
    uncond_fraction: float = 0.1  # condition dropout
    caption_dropout: float = 0.0  # stage 2, of the conditioned samples: empty prompt, other conditions kept
    mask_weight: float = 1.0  # loss weight = 1 + mask_weight * subject mask (both diffusion stages)
    timestep_shift: float = 1.0  # > 1: more training at high noise (SD3 shift), where the motion is decided


@dataclass(frozen=True)
class TrainConfig:
    stage: str  # vae | appearance | motion
    data: str  # data-set folder with manifest.jsonl
    output_dir: str
    train: list[str]  # parts to train (steps.PARTS): vae, vae_decoder, text_encoder, reference_unet, spatial,
    # spatial_resnets (spatial without its attention blocks), motion, music, beat
    preset: str = "tiny"  # model to start from when `init` is empty
    init: str = ""  # bundle written by the previous stage
    # or, for the first stage of a real model, the files to assemble it from (checkpoints/assemble.py)
    base: str = ""  # SD 1.5 single file or diffusers folder
    motion: str = ""  # AnimateDiff motion module
    animate_anyone: str = ""  # Moore-AnimateAnyone folder
    tokenizer: str = ""  # CLIP tokenizer folder (default: the base folder's, else the built-in one)
    prediction_type: str = ""  # epsilon | v_prediction; empty = the starting model's
    zero_terminal_snr: bool = False  # last timestep pure noise, trailing sampling steps (needs v_prediction)
    reinit: list[str] = field(default_factory=list)  # parts to start afresh, as in a new model
    caption_film: bool = False  # motion stage: the beat FiLM also sees the caption (added fresh if the model lacks it)
    seed: int = 0
    max_steps: int = 1000
    batch_size: int = 4  # per process: N processes train on batches of N * batch_size
    data_workers: int = 2  # processes that load the next batches while the model trains (0 = in the loop)
    gradient_accumulation: int = 1
    learning_rate: float = 1e-4
    warmup_steps: int = 50
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"  # no | fp16 | bf16
    gradient_checkpointing: bool = False
    use_8bit_adam: bool = False
    ema_decay: float = 0.0  # 0 = no EMA
    # the loss settings, defaults from LossSettings
    noise_offset: float = LossSettings.noise_offset
    min_snr_gamma: float = LossSettings.min_snr_gamma
    uncond_fraction: float = LossSettings.uncond_fraction
    caption_dropout: float = LossSettings.caption_dropout
    mask_weight: float = LossSettings.mask_weight
    timestep_shift: float = LossSettings.timestep_shift
    part_focus: float = 1.0  # data with body-part maps: 1 = each visible part weighs the same in the loss, 0 = mask only
    num_frames: int = 16  # stage 2 clip length
    reference_window: int = 12  # stage 1: reference at most this many frames from the target
    repeat_by_style: dict = field(default_factory=dict)  # {style: n}: clips of that manifest style n times per epoch
    checkpoint_every: int = 200
    validate_every: int = 0  # 0 = never during training
    validation_clips: int = 2
    validation_steps: int = 20
    log_every: int = 10
    save_fp16: bool = False
    notes: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.stage not in STAGES:
            raise InputError(f"stage must be one of {STAGES}; got '{self.stage}'.")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise InputError(f"mixed_precision must be no, fp16 or bf16; got '{self.mixed_precision}'.")
        for name in ("uncond_fraction", "caption_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise InputError(f"{name} must be at least 0 and below 1; got {getattr(self, name)}.")
        if self.prediction_type not in ("", "epsilon", "v_prediction"):
            raise InputError(f"prediction_type must be epsilon or v_prediction; got '{self.prediction_type}'.")
        if not isinstance(self.repeat_by_style, dict):
            raise InputError(f"repeat_by_style must map styles to counts, e.g. {{tilt: 3, spin: 3}}; "
                             f"got {self.repeat_by_style!r}.")
        for style, times in self.repeat_by_style.items():
            if not isinstance(times, int) or isinstance(times, bool) or times < 1:
                raise InputError(f"repeat_by_style: '{style}' must repeat a whole number of times (1 or more); "
                                 f"got {times!r}.")
        if self.data_workers < 0:
            raise InputError(f"data_workers must be 0 or more; got {self.data_workers}.")
        if not 0.0 <= self.part_focus <= 1.0:
            raise InputError(f"part_focus must be between 0 and 1; got {self.part_focus}.")
        if not self.timestep_shift > 0:
            raise InputError(f"timestep_shift must be above 0 (1 = uniform timesteps); got {self.timestep_shift}.")

    def loss_settings(self) -> LossSettings:
        return LossSettings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(LossSettings)})


def coerce(key: str, value, kind):
    """``value`` as the field's type: YAML reads "3e-4" as a string and ``1`` as an int where a float
    is meant; anything that is not that type, or cannot be read as it, is a clear error."""
    origin = typing.get_origin(kind) or kind
    if origin is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif origin in (int, float):
        if isinstance(value, bool):
            pass  # True is an int to Python, never a number to a user
        elif isinstance(value, origin) or (origin is float and isinstance(value, int)):
            return origin(value)
        elif isinstance(value, str):
            try:
                number = float(value) if origin is float else int(value)
            except ValueError:
                pass
            else:
                return number
    elif origin is str:
        if isinstance(value, str):
            return value
    elif origin in (list, dict):
        if isinstance(value, origin):
            return value
        if origin is list and isinstance(value, str):  # train=motion on the command line
            return [value]
    else:
        return value
    name = {bool: "true or false", int: "a whole number", float: "a number", str: "text",
            list: "a list, e.g. [motion, music]", dict: "a mapping, e.g. {tilt: 3}"}[origin]
    raise InputError(f"training config '{key}' must be {name}; got {value!r}.")


def _parse_value(text: str):
    import yaml

    return yaml.safe_load(text)


def _read_config_file(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A config file's keys; ``extends: other.yaml`` (beside it) first reads that file's keys, which
    this file's own replace, so a variant states only what differs from the config it builds on."""
    import yaml

    path = path.resolve()
    if path in seen:
        raise InputError(f"training configs extend each other in a loop: {' -> '.join(p.name for p in (*seen, path))}.")
    if not path.is_file():
        named_by = f" (named by 'extends' in {seen[-1].name})" if seen else ""
        raise InputError(f"training config '{path}' not found{named_by}.")
    data = yaml.safe_load(path.read_text()) or {}
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str) or Path(base).name != base:
        raise InputError(f"'extends' in {path.name} must name a config file beside it, e.g. extends: tiny_stage2.yaml; "
                         f"got {base!r}.")
    return _read_config_file(path.parent / base, (*seen, path)) | data


def load_train_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config (and the one it ``extends``); ``overrides`` are ``key=value`` strings (values
    parsed as YAML). Relative paths in the file are relative to the repository root (the folder
    holding training/)."""
    path = Path(path)
    data = _read_config_file(path)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError(f"override '{item}' must look like key=value.")
        data[key] = _parse_value(value)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"unknown training config keys {unknown} in {path.name}; known: {sorted(known)}.")
    types = typing.get_type_hints(TrainConfig)
    data = {key: coerce(key, value, types[key]) for key, value in data.items()}
    root = path.resolve().parents[2] if path.resolve().parent.name == "configs" else Path.cwd()
    for key in ("data", "output_dir", "init", "base", "motion", "animate_anyone", "tokenizer"):
        if data.get(key) and not Path(data[key]).is_absolute():
            data[key] = str(root / data[key])
    return TrainConfig(**data)
