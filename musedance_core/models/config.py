"""One frozen config for the whole MuseDance model, saved with the weights.

The component configs are plain dicts in diffusers / transformers form, so that
``UNet2DConditionModel(**unet)``, ``MotionAdapter(**motion)``, ``AutoencoderKL(**vae)`` and
``CLIPTextConfig(**text_encoder)`` build the parts, and real SD 1.5 / AnimateDiff weights load
into them by name. The MuseDance-specific parts (music and beat branches) have their own fields.

Two presets: ``tiny`` (CPU tests and the demo model, each UNet well under 5 M parameters) and
``sd15`` (exactly the shapes of Stable Diffusion 1.5 + the AnimateDiff v2 motion adapter).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..audio.encoders import SPECTRAL_DIM, SPECTRAL_ENCODER_ID
from ..errors import InputError
from ..types import BEAT_FEATURE_NAMES, LEGACY_BEAT_FEATURE_NAMES

class ConfigError(InputError):
    """A model config (a bundle's metadata) is malformed: too deep, a wrong type or out of range.
    ``field`` names the offending entry (dotted path)."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


CONFIG_VERSION = 3  # 2: caption_film (an older pack must say 'update', not 'unexpected tensors'); 3: beat_features

SD15_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "attention_head_dim": 8,
    "cross_attention_dim": 768,
    "norm_num_groups": 32,
}
SD15_MOTION: dict[str, Any] = {  # AnimateDiff v2 (mm_sd_v15_v2)
    "block_out_channels": [320, 640, 1280, 1280],
    "motion_layers_per_block": 2,
    "motion_mid_block_layers_per_block": 1,
    "motion_num_attention_heads": 8,
    "motion_norm_num_groups": 32,
    "motion_max_seq_length": 32,
    "use_motion_mid_block": True,
}
SD15_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}
SD15_TEXT: dict[str, Any] = {  # CLIP ViT-L/14 text tower
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}
SD15_SCHEDULER: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "timestep_spacing": "leading",
    "steps_offset": 1,
    "rescale_betas_zero_snr": False,
}


@dataclass(frozen=True)
class MuseDanceConfig:
    """Everything needed to rebuild the model's modules (not the weights).

    Attributes:
        name: preset name ("tiny", "sd15") or a user label.
        unet: UNet2DConditionModel kwargs, shared by ReferenceNet and the denoising UNet.
        motion: MotionAdapter kwargs (AnimateDiff motion modules).
        vae: AutoencoderKL kwargs.
        text_encoder: CLIPTextConfig kwargs.
        tokenizer: "byte-bpe" (the project's own byte-level CLIP vocabulary, for tiny models)
            or "clip" (the real CLIP BPE tokenizer, from a folder the user provides).
        scheduler: DDIM/Euler/DPM++ kwargs (betas, prediction type, spacing).
        music_encoder: id of the music encoder whose features the model was trained on.
        music_dim: width of those features (D of MusicFeatures).
        beat_features: the BeatTrack.frame_features columns the beat branch reads, by name (a
            config from before the pair phases reads the legacy seven).
        token_window: music/beat tokens per frame: the frame itself and (token_window-1)/2 on each side.
        branch_hidden: width of the music/beat token encoders.
        fps: frame rate the model was trained at (the pipeline's default).
        width, height: frame size the model was trained at (the pipeline's default); 0 = not
            recorded (bundles from before it): the UNet's sample size in pixels.
        reference_max_tokens: 0 = every ReferenceNet token is a key/value (Animate Anyone);
            N > 0 = blocks with more tokens than N see the reference average-pooled 2x2 (repeatedly)
            down to at most N tokens, which bounds reference attention at high resolution.
        caption_film: the beat branch's FiLM of the motion modules also sees the caption (its
            mean prompt embedding), so that the dance a caption names can shape the motion;
            without it the caption reaches the motion only through the frozen spatial layers.
    """

    name: str
    unet: dict
    motion: dict
    vae: dict
    text_encoder: dict
    tokenizer: str = "clip"
    scheduler: dict = field(default_factory=lambda: dict(SD15_SCHEDULER))
    music_encoder: str = SPECTRAL_ENCODER_ID
    music_dim: int = SPECTRAL_DIM
    beat_features: tuple[str, ...] = BEAT_FEATURE_NAMES
    token_window: int = 5
    branch_hidden: int = 256
    fps: float = 24.0
    width: int = 0
    height: int = 0
    reference_max_tokens: int = 0
    caption_film: bool = False
    version: int = CONFIG_VERSION

    def __post_init__(self):
        unknown = [n for n in self.beat_features if n not in BEAT_FEATURE_NAMES]
        if unknown:
            raise InputError(f"the model reads beat features {unknown} that this MuseDance does not compute; "
                             "update the MuseDance node pack.")
        object.__setattr__(self, "beat_features", tuple(self.beat_features))  # JSON gives a list

    @property
    def beat_dim(self) -> int:
        """Beat features per frame (the beat branch's input width)."""
        return len(self.beat_features)

    @property
    def cross_attention_dim(self) -> int:
        return int(self.unet["cross_attention_dim"])

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae["block_out_channels"]) - 1)

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) the model was trained at: the pipeline's default size."""
        if self.width > 0 and self.height > 0:
            return int(self.width), int(self.height)
        side = int(self.unet.get("sample_size", 64)) * self.vae_scale_factor
        return side, side

    @property
    def max_context_frames(self) -> int:
        """Longest window the motion modules' positional encoding covers."""
        return int(self.motion.get("motion_max_seq_length", 32))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "MuseDanceConfig":
        """Read a config saved by ``to_json``; ConfigError (naming the field) before anything is
        built when it is too long or deep, has a wrong type, or a size out of range."""
        data = parse_config_json(text)
        version = int(data.get("version", 0))
        if version > CONFIG_VERSION:
            raise InputError(f"model config version {version} is newer than this MuseDance understands "
                             f"({CONFIG_VERSION}); update the MuseDance node pack.")
        known = {f for f in cls.__dataclass_fields__}
        if "beat_features" not in data:  # before the pair phases: the first beat_dim (7) columns
            data["beat_features"] = list(BEAT_FEATURE_NAMES[: int(data.get("beat_dim", len(LEGACY_BEAT_FEATURE_NAMES)))])
        # read into this version's form: an older config lacks only fields whose defaults keep its
        # meaning, and a bundle re-saved from it (a later training stage) must carry this version
        return cls(**{k: v for k, v in data.items() if k in known} | {"version": CONFIG_VERSION})

    def with_changes(self, **changes: Any) -> "MuseDanceConfig":
        return replace(self, **changes)


def tiny_config() -> MuseDanceConfig:
    """A small model for CPU tests and the demo: 2 UNet levels, 32/64 channels, VAE factor 4."""
    channels = [32, 64]
    return MuseDanceConfig(
        name="tiny",
        unet={
            "sample_size": 32,
            "in_channels": 4,
            "out_channels": 4,
            "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
            "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
            "block_out_channels": channels,
            "layers_per_block": 1,
            "attention_head_dim": 2,  # diffusers' name for the number of heads: 2 heads of 16/32 channels
            "cross_attention_dim": 64,
            "norm_num_groups": 8,
        },
        motion={
            "block_out_channels": channels,
            "motion_layers_per_block": 1,
            "motion_mid_block_layers_per_block": 1,
            "motion_num_attention_heads": 2,
            "motion_norm_num_groups": 8,
            "motion_max_seq_length": 32,
            "use_motion_mid_block": True,
        },
        vae={
            "in_channels": 3,
            "out_channels": 3,
            "down_block_types": ["DownEncoderBlock2D"] * 3,
            "up_block_types": ["UpDecoderBlock2D"] * 3,
            "block_out_channels": [16, 32, 32],
            "layers_per_block": 1,
            "latent_channels": 4,
            "norm_num_groups": 8,
            "sample_size": 128,
            "scaling_factor": 1.0,
        },
        text_encoder={
            "vocab_size": 600,  # byte-level vocabulary: 256 bytes, 256 word-final bytes, specials
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "hidden_act": "quick_gelu",
            "projection_dim": 64,
        },
        tokenizer="byte-bpe",
        branch_hidden=64,
        fps=12.0,
        reference_max_tokens=256,  # bounds reference attention at high resolution (benchmarks: <= 1.25x)
    )


def sd15_config() -> MuseDanceConfig:
    """Stable Diffusion 1.5 UNet/VAE/CLIP-L shapes + AnimateDiff v2 motion modules."""
    return MuseDanceConfig(
        name="sd15",
        unet=dict(SD15_UNET),
        motion=dict(SD15_MOTION),
        vae=dict(SD15_VAE),
        text_encoder=dict(SD15_TEXT),
        tokenizer="clip",
        branch_hidden=512,
        fps=8.0,
    )


PRESETS = {"tiny": tiny_config, "sd15": sd15_config}


def preset(name: str) -> MuseDanceConfig:
    if name not in PRESETS:
        raise InputError(f"unknown model preset '{name}'; choose one of {sorted(PRESETS)}.")
    return PRESETS[name]()


# -- validation of configs read from files (bundle metadata), before any module is built -----
MAX_CONFIG_CHARS = 1_000_000
MAX_CONFIG_DEPTH = 16  # a real config nests 3 deep
MAX_LIST_ITEMS = 256
MAX_TEXT_CHARS = 4096
MAX_ANY_INT = 10**9  # any other integer field
# integer fields that size tensors: (lowest, highest), for the field itself or every item of a
# list; SD 1.5's largest is 1280 channels, CLIP-L's MLP 3072
SIZE_LIMITS: dict[str, tuple[int, int]] = {
    "block_out_channels": (1, 4096), "hidden_size": (1, 4096), "intermediate_size": (1, 16384),
    "cross_attention_dim": (1, 4096), "projection_dim": (1, 4096), "branch_hidden": (1, 4096),
    "music_dim": (1, 8192), "in_channels": (1, 64), "out_channels": (1, 64), "latent_channels": (1, 64),
    "layers_per_block": (1, 16), "num_hidden_layers": (1, 64), "vocab_size": (1, 1_000_000),
    "max_position_embeddings": (1, 4096), "norm_num_groups": (1, 1024), "motion_norm_num_groups": (1, 1024),
    "attention_head_dim": (1, 4096), "num_attention_heads": (1, 256), "motion_num_attention_heads": (1, 256),
    "sample_size": (1, 4096), "motion_max_seq_length": (1, 4096), "motion_layers_per_block": (1, 16),
    "motion_mid_block_layers_per_block": (0, 16), "token_window": (1, 255), "width": (0, 16384),
    "height": (0, 16384), "reference_max_tokens": (0, 1 << 24), "num_train_timesteps": (1, 100_000),
    "version": (0, 1000), "beat_dim": (0, 1024), "steps_offset": (0, 1000),
}
COMPONENT_FIELDS = ("unet", "motion", "vae", "text_encoder", "scheduler")


def parse_config_json(text: str) -> dict:
    """``text`` -> the config dict, checked for size, nesting depth (without recursing, so a file
    nested 100,000 deep is one ConfigError, not a RecursionError), types and ranges."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise ConfigError(f"the config must be JSON text; got {type(text).__name__}.", "config")
    if len(text) > MAX_CONFIG_CHARS:
        raise ConfigError(f"the config is {len(text):,} characters long, more than {MAX_CONFIG_CHARS:,}.", "config")
    depth, deepest, in_string, escaped = 0, 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if depth > MAX_CONFIG_DEPTH:
                raise ConfigError(f"the config nests deeper than {MAX_CONFIG_DEPTH} levels.", "config")
        elif char in "]}":
            depth -= 1
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"the config is not valid JSON ({exc}).", "config") from None
    if not isinstance(data, dict):
        raise ConfigError(f"the config must be a JSON object; got {type(data).__name__}.", "config")
    for name in COMPONENT_FIELDS:
        if name in data and not isinstance(data[name], dict):
            raise ConfigError(f"config field '{name}' must be an object; got {type(data[name]).__name__}.", name)
    for name in ("name", "tokenizer", "music_encoder"):
        if name in data and not isinstance(data[name], str):
            raise ConfigError(f"config field '{name}' must be text; got {type(data[name]).__name__}.", name)
    _check_values(data, "")
    if "fps" in data and not (isinstance(data["fps"], (int, float)) and 0 < data["fps"] <= 1000):
        raise ConfigError(f"config field 'fps' must be a number in (0, 1000]; got {data['fps']!r}.", "fps")
    return data


def _check_values(value: Any, path: str, limit: tuple[int, int] | None = None) -> None:
    """Every number finite and in range (SIZE_LIMITS by field name), every text and list bounded."""
    import math

    if isinstance(value, dict):
        for key, item in value.items():
            if len(key) > MAX_TEXT_CHARS:
                raise ConfigError(f"config has a field name of {len(key):,} characters.", path or "config")
            _check_values(item, f"{path}.{key}" if path else key, SIZE_LIMITS.get(key))
    elif isinstance(value, list):
        if len(value) > MAX_LIST_ITEMS:
            raise ConfigError(f"config field '{path}' has {len(value):,} items, more than {MAX_LIST_ITEMS}.", path)
        for i, item in enumerate(value):
            _check_values(item, f"{path}[{i}]", limit)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        low, high = limit or (-MAX_ANY_INT, MAX_ANY_INT)
        if not low <= value <= high:
            raise ConfigError(f"config field '{path}' is {value}, outside {low}..{high}.", path)
    elif isinstance(value, float):
        if limit is not None:  # a size must be an integer
            raise ConfigError(f"config field '{path}' must be a whole number in {limit[0]}..{limit[1]}; "
                              f"got {value!r}.", path)
        if not math.isfinite(value):
            raise ConfigError(f"config field '{path}' must be a finite number; got {value!r}.", path)
    elif isinstance(value, str):
        if len(value) > MAX_TEXT_CHARS:
            raise ConfigError(f"config field '{path}' is {len(value):,} characters long.", path)
