"""Sampling: reference image + music features + beats + prompt -> video frames.

One call does, in order:
1. check every input (``check_inputs``) and decide the frame count;
2. encode the prompt and the negative prompt, the reference image (VAE), and run ReferenceNet
   **once**; its keys/values serve every step, both guidance branches' conditional half and
   every context window;
3. compute the music and beat tokens of every frame once;
4. denoise with classifier-free guidance, window by window when the video is longer than the
   context window, blending the windows' predictions (``schedulers.context_windows``);
5. decode the latents with the VAE a few frames at a time.

Classifier-free guidance: the unconditional branch uses the negative prompt and drops the
reference image, the music and the beats (Moore-AnimateAnyone drops the reference there too);
``cfg`` pushes the result towards the full condition. ``cfg <= 1`` skips the unconditional
branch.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch

from .errors import InputError
from .images import check_size, fit_image
from .models.musedance import FrameConditions, MuseDanceModel, ReferenceBank
from .schedulers import SCHEDULERS, context_windows, make_scheduler
from .types import BeatTrack, MusicFeatures

MAX_STEPS = 200
MAX_CFG = 30.0
MAX_STRENGTH = 4.0
MAX_FRAMES = 4096
DEFAULT_DECODE_CHUNK = 8


@dataclass(frozen=True)
class Progress:
    """Passed to the callback after every window of every step."""

    step: int  # 0-based denoising step
    steps: int
    window: int  # 0-based window within the step
    windows: int
    latents: torch.Tensor  # [1, C, T, h, w] current latents (before this step's update)

    @property
    def done(self) -> int:
        return self.step * self.windows + self.window + 1

    @property
    def total(self) -> int:
        return self.steps * self.windows


@dataclass
class AnimationResult:
    frames: torch.Tensor | None  # [T, H, W, 3] float32 0..1 on the CPU (None when streamed to a sink)
    fps: float
    num_frames: int
    width: int
    height: int
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AnimateSettings:
    """Sampler settings with their defaults (see README: Animate Image)."""

    num_frames: int = 0  # 0 = as long as the music
    width: int = 256
    height: int = 256
    steps: int = 25
    cfg: float = 3.5
    music_strength: float = 1.0
    beat_strength: float = 1.0
    seed: int = 0
    scheduler: str = "ddim"
    context_length: int = 16
    context_overlap: int = 4
    decode_chunk: int = DEFAULT_DECODE_CHUNK
    reference_every_step: bool = False  # MagicAnimate's way; slower, for comparison only


def check_inputs(model: MuseDanceModel, music: MusicFeatures, beats: BeatTrack, s: AnimateSettings) -> tuple[AnimateSettings, list[str]]:
    """Validate and normalise settings; returns the settings actually used and notes."""
    notes: list[str] = []
    cfg = model.config
    if music.dim != cfg.music_dim:
        raise InputError(f"music features have {music.dim} values per frame but this model expects {cfg.music_dim} "
                         f"('{cfg.music_encoder}'); use the music encoder the model was trained with.")
    if music.encoder != cfg.music_encoder:
        raise InputError(f"music features come from encoder '{music.encoder}' but this model was trained on "
                         f"'{cfg.music_encoder}'; choose that encoder in the Music Encoder.")
    if beats.frame_features.shape[1] != cfg.beat_dim:
        raise InputError(f"beat features have {beats.frame_features.shape[1]} columns; this model expects {cfg.beat_dim}.")
    if not math.isclose(music.fps, beats.fps, rel_tol=1e-6) or music.num_frames != beats.num_frames:
        raise InputError(f"music ({music.num_frames} frames at {music.fps:g} fps) and beats ({beats.num_frames} "
                         f"frames at {beats.fps:g} fps) do not match: compute both from the same audio and fps.")
    available = music.num_frames
    if available < 1:
        raise InputError(f"the music segment ({music.duration:.3f} s) is shorter than one frame at {music.fps:g} fps.")
    frames = int(s.num_frames)
    if frames < 0 or frames > MAX_FRAMES:
        raise InputError(f"frames must be 0 (as long as the music) or 1..{MAX_FRAMES}; got {frames}.")
    if frames == 0:
        frames = available
    elif frames > available:
        notes.append(f"frames={frames} is longer than the music ({available} frames at {music.fps:g} fps); "
                     f"making {available} frames.")
        frames = available
    if not 1 <= int(s.steps) <= MAX_STEPS:
        raise InputError(f"steps must be 1..{MAX_STEPS}; got {s.steps}.")
    if not (0.0 <= float(s.cfg) <= MAX_CFG):
        raise InputError(f"cfg must be between 0 and {MAX_CFG}; got {s.cfg}.")
    for name in ("music_strength", "beat_strength"):
        value = float(getattr(s, name))
        if not (0.0 <= value <= MAX_STRENGTH):
            raise InputError(f"{name} must be between 0 and {MAX_STRENGTH}; got {value}.")
    if s.scheduler not in SCHEDULERS:
        raise InputError(f"scheduler must be one of {', '.join(SCHEDULERS)}; got '{s.scheduler}'.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        width, height = check_size(s.width, s.height, max(8, model.vae_scale_factor))
    notes.extend(str(w.message) for w in caught)
    length = int(s.context_length)
    if length > model.config.max_context_frames:
        notes.append(f"context_length {length} exceeds the motion modules' {model.config.max_context_frames} "
                     f"positions; using {model.config.max_context_frames}.")
        length = model.config.max_context_frames
    if length < 1:
        raise InputError(f"context_length must be >= 1; got {length}.")
    overlap = int(s.context_overlap)
    if not 0 <= overlap < length:
        raise InputError(f"context_overlap must be between 0 and context_length-1 ({length - 1}); got {overlap}.")
    if s.decode_chunk < 1:
        raise InputError(f"decode_chunk must be >= 1; got {s.decode_chunk}.")
    used = AnimateSettings(frames, width, height, int(s.steps), float(s.cfg), float(s.music_strength),
                           float(s.beat_strength), int(s.seed), s.scheduler, length, overlap, int(s.decode_chunk),
                           bool(s.reference_every_step))
    return used, notes


class MuseDancePipeline:
    """Animate one image with a MuseDance model (see the module docstring for the steps)."""

    def __init__(self, model: MuseDanceModel):
        self.model = model

    @torch.no_grad()
    def __call__(self, image, music: MusicFeatures, beats: BeatTrack, prompt: str, negative_prompt: str = "",
                 settings: AnimateSettings | None = None, *, callback: Callable[[Progress], None] | None = None,
                 frame_sink: Callable[[torch.Tensor], None] | None = None) -> AnimationResult:
        """Generate frames.

        Args:
            image: reference image (PIL, numpy or tensor; see ``images.to_rgb_array``).
            music, beats: features of the same audio segment at the same fps.
            prompt, negative_prompt: motion description and what to avoid.
            settings: sampler settings (defaults: ``AnimateSettings()``).
            callback: called after every window of every step; raise from it to cancel.
            frame_sink: when given, decoded frames [n, H, W, 3] (float32 0..1, CPU) are passed to it
                chunk by chunk instead of being collected (memory stays bounded for long videos).
        """
        model = self.model
        s, notes = check_inputs(model, music, beats, settings or AnimateSettings())
        for note in notes:
            warnings.warn(note, stacklevel=2)
        device, dtype = model.device, model.dtype
        generator = torch.Generator("cpu").manual_seed(s.seed)
        guided = s.cfg > 1.0
        cond = slice(1, 2) if guided else slice(0, 1)

        text = model.encode_prompt([negative_prompt, prompt] if guided else [prompt])  # (B, 77, C)
        ref_image = fit_image(image, s.width, s.height).to(device)
        ref_latents = model.encode_images(ref_image)  # (1, 4, h, w)
        bank = model.encode_reference(ref_latents, text[cond])
        conditions = model.frame_conditions(_batch(music.features[: s.num_frames], device, dtype),
                                            _batch(beats.frame_features[: s.num_frames], device, dtype))

        scheduler = make_scheduler(s.scheduler, model.config.scheduler)
        scheduler.set_timesteps(s.steps, device=device)
        h, w = s.height // model.vae_scale_factor, s.width // model.vae_scale_factor
        shape = (1, model.config.unet["in_channels"], s.num_frames, h, w)
        latents = torch.randn(shape, generator=generator, dtype=torch.float32).to(device) * scheduler.init_noise_sigma
        windows = context_windows(s.num_frames, s.context_length, s.context_overlap)

        for step, t in enumerate(scheduler.timesteps):
            if s.reference_every_step:
                bank = model.encode_reference(ref_latents, text[cond])
            prediction = torch.zeros_like(latents)
            weight = torch.zeros(s.num_frames, device=device)
            for index, window in enumerate(windows):
                x = scheduler.scale_model_input(latents[:, :, window.frames], t)
                out = self._guided(x, t, text, bank, conditions.frames(window.frames), cond, s)
                wts = window.weights.to(device)
                prediction[:, :, window.frames] += out * wts[None, None, :, None, None]
                weight[window.frames] += wts
                if callback is not None:
                    callback(Progress(step, s.steps, index, len(windows), latents))
            prediction = prediction / weight[None, None, :, None, None]
            latents = scheduler.step(prediction, t, latents).prev_sample

        frames = self.decode(latents, s.decode_chunk, frame_sink)
        return AnimationResult(frames, music.fps, s.num_frames, s.width, s.height, notes)

    def _guided(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, bank: ReferenceBank,
                conditions: FrameConditions, cond: slice, s: AnimateSettings) -> torch.Tensor:
        """Model output for one window, with classifier-free guidance when ``s.cfg > 1``."""
        batch = x.expand(text.shape[0], -1, -1, -1, -1)
        out = self.model.denoise(batch, t, text, reference=bank, conditions=conditions, cond=cond,
                                 music_scale=s.music_strength, beat_scale=s.beat_strength).float()
        if text.shape[0] == 1:
            return out
        uncond, full = out.chunk(2)
        return uncond + s.cfg * (full - uncond)

    def decode(self, latents: torch.Tensor, chunk: int = DEFAULT_DECODE_CHUNK,
               frame_sink: Callable[[torch.Tensor], None] | None = None) -> torch.Tensor | None:
        """Latents [1, C, T, h, w] -> frames [T, H, W, 3] float32 0..1 (CPU), ``chunk`` frames at a time."""
        flat = latents[0].permute(1, 0, 2, 3)  # (T, C, h, w)
        pieces = []
        for start in range(0, flat.shape[0], chunk):
            images = self.model.decode_latents(flat[start : start + chunk])
            images = ((images.float() + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 2, 3, 1).cpu()
            if frame_sink is not None:
                frame_sink(images)
            else:
                pieces.append(images)
        return None if frame_sink is not None else torch.cat(pieces)


def _batch(array, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[T, D] numpy -> [1, T, D] tensor."""
    return torch.as_tensor(array, dtype=torch.float32)[None].to(device=device, dtype=dtype)
