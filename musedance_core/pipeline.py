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

Precision: the weights may be fp32, bf16 or fp16; latents, scheduler math and guidance stay in
fp32, and an fp16 VAE runs in fp32 (``upcast_vae``; diffusers' ``force_upcast`` practice: SD's
VAE can overflow fp16 and give black/NaN frames). Attention is ``F.scaled_dot_product_attention``
everywhere (``devices.ensure_sdpa``).

Memory: ``decode_chunk`` frames are decoded at a time (1 = diffusers' VAE slicing);
``vae_tiling`` decodes (and encodes) frames larger than the VAE's tile in overlapping tiles
(diffusers' ``enable_tiling``); ``offload="stages"`` keeps only the running stage's modules on the
device: text encoder + VAE encoder + ReferenceNet at the start, the denoising UNet and the
music/beat branches in the loop, the VAE decoder at the end (diffusers' model CPU offload).
Inside ComfyUI the host's ModelPatcher moves the whole model and the node leaves offload off.

Classifier-free guidance: the unconditional branch uses the negative prompt and drops the
reference image, the music and the beats (Moore-AnimateAnyone drops the reference there too);
``cfg`` pushes the result towards the full condition. ``cfg <= 1`` skips the unconditional
branch. ``prompt_guidance`` adds a third branch with reference, music and beats but the empty
prompt, and pushes away from it: the difference is what the prompt's words change in the dance
(InstructPix2Pix's two-scale guidance). It suits models trained with caption dropout.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field, replace
from typing import Callable

import torch

from .devices import OFFLOAD_MODES, StageOffload, ensure_sdpa
from .errors import InputError
from .images import check_size, fit_image
from .models.musedance import FrameConditions, MuseDanceModel, ReferenceBank, transformer_blocks
from .notes import collect_notes, note
from .preview import denoised_estimate
from .schedulers import SCHEDULERS, context_windows, make_scheduler
from .types import BeatTrack, MusicFeatures, select_beat_features

MAX_STEPS = 200
MAX_CFG = 30.0
MAX_STRENGTH = 4.0
MAX_FRAMES = 4096
MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed's range (the node offers 0..2**63-1)
DEFAULT_DECODE_CHUNK = 8
# The frames (and latents) one run holds must fit in this share of the memory available when it
# starts; larger requests are refused before anything is allocated (the CLI streams its frames)
MEMORY_FRACTION = 0.5
LATENT_COPIES = 4  # latents, the step's prediction, the scheduler's update and its clean estimate


@dataclass(frozen=True)
class Progress:
    """Passed to the callback after every window of every step (after the step's update for its
    last window, which carries the step's ``denoised`` estimate for previews)."""

    step: int  # 0-based denoising step
    steps: int
    window: int  # 0-based window within the step
    windows: int
    latents: torch.Tensor  # [1, C, T, h, w] current latents (before this step's update)
    # [1, C, T, h, w] the scheduler's estimate of the clean latents from this step (DDIM/Euler's
    # pred_original_sample, DPM-Solver++'s data prediction); only on a step's last window, else None
    denoised: torch.Tensor | None = None

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
    notes: list[str] = field(default_factory=list)  # what the run told the user (see notes.py)


@dataclass(frozen=True)
class AnimateSettings:
    """Sampler settings with their defaults (see README: Animate Image)."""

    num_frames: int = 0  # 0 = as long as the music
    width: int = 0  # 0 = the size the model was trained at (MuseDanceConfig.frame_size)
    height: int = 0
    steps: int = 25
    cfg: float = 3.5
    prompt_guidance: float = 0.0  # extra push towards the prompt's dance; 0 = off (one branch fewer)
    music_strength: float = 1.0
    beat_strength: float = 1.0
    seed: int = 0
    scheduler: str = "ddim"
    context_length: int = 16
    context_overlap: int = 4
    decode_chunk: int = DEFAULT_DECODE_CHUNK  # frames per VAE decode call; 1 = VAE slicing
    reference_every_step: bool = False  # MagicAnimate's way; slower, for comparison only
    vae_tiling: bool = False  # frames larger than the VAE's tile (512 px for SD 1.5) in overlapping tiles
    upcast_vae: bool = True  # an fp16 model's VAE runs in fp32 (no NaN/black frames from fp16 overflow)
    offload: str = "none"  # "stages": only the running stage's modules on the device (see module docstring)


def available_memory() -> int:
    """Bytes of RAM available now (psutil; what the OS can give without swapping)."""
    import psutil

    return int(psutil.virtual_memory().available)


def check_text(text: str, name: str = "prompt") -> str:
    """``text`` if it is valid Unicode (a JSON prompt may carry a lone surrogate such as "\\ud800")."""
    if not isinstance(text, str):
        raise InputError(f"{name} must be text; got {type(text).__name__}.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{name} holds invalid text at character {exc.start + 1} (a lone UTF-16 surrogate, "
                         f"U+{ord(text[exc.start]):04X}); retype the {name} or remove that character.") from None
    return text


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def check_memory(frames: int, width: int, height: int, latent_channels: int, scale: int, fps: float,
                 *, streamed: bool = False, requested: int = 0, available: int | None = None) -> None:
    """Refuse a run whose frames (float32 [T, H, W, 3], unless streamed to a sink) and latents
    would not fit in MEMORY_FRACTION of the available RAM, before anything is allocated."""
    frame_bytes = 0 if streamed else frames * width * height * 3 * 4
    latent_bytes = LATENT_COPIES * frames * latent_channels * (height // scale) * (width // scale) * 4
    need = frame_bytes + latent_bytes
    available = available_memory() if available is None else available
    budget = MEMORY_FRACTION * available
    if need <= budget:
        return
    per_frame = need / max(frames, 1)
    fits = max(int(budget // per_frame), 0)
    source = (f"frames=0 takes the whole music: {frames} frames ({frames / fps:.0f} s at {fps:g} fps)" if requested == 0
              else f"frames={frames}")
    raise InputError(f"{source} at {width}x{height} would need {_gb(need)} of memory, more than "
                     f"{MEMORY_FRACTION:.0%} of the {_gb(available)} available; at most {fits} frames fit at this "
                     "size. Trim the audio (TrimAudioDuration in ComfyUI, --seconds in the CLI), set frames, or "
                     "lower width/height.")


def check_inputs(model: MuseDanceModel, music: MusicFeatures, beats: BeatTrack, s: AnimateSettings, *,
                 holds_frames: bool = False) -> tuple[AnimateSettings, list[str]]:
    """Validate and normalise settings; returns the settings actually used and the notes that
    say what changed (returned, not said: the pipeline says them when it runs, see notes.py).

    ``holds_frames``: the run returns all frames at once (ComfyUI's IMAGE batch; the pipeline
    without a frame_sink), so they must fit in memory with the latents, and frames=0 is held to
    MAX_FRAMES like a number would be. False: the frames are streamed to a sink chunk by chunk
    (the CLI), so only the latents must fit and the whole music may be made."""
    notes: list[str] = []
    cfg = model.config
    if music.dim != cfg.music_dim:
        raise InputError(f"music features have {music.dim} values per frame but this model expects {cfg.music_dim} "
                         f"('{cfg.music_encoder}'); use the music encoder the model was trained with.")
    if music.encoder != cfg.music_encoder:
        raise InputError(f"music features come from encoder '{music.encoder}' but this model was trained on "
                         f"'{cfg.music_encoder}'; choose that encoder in the Music Encoder.")
    select_beat_features(beats.frame_features[:1], cfg.beat_features)  # the columns the model reads are there
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
        if holds_frames and frames > MAX_FRAMES:
            raise InputError(f"frames=0 takes the whole music, {frames} frames ({music.duration:.0f} s at "
                             f"{music.fps:g} fps): more than the {MAX_FRAMES} one run makes. Trim the audio "
                             "(TrimAudioDuration in ComfyUI, --seconds in the CLI) or set frames.")
    elif frames > available:
        notes.append(f"frames={frames} is longer than the music ({available} frames at {music.fps:g} fps); "
                     f"making {available} frames.")
        frames = available
    if not 1 <= int(s.steps) <= MAX_STEPS:
        raise InputError(f"steps must be 1..{MAX_STEPS}; got {s.steps}.")
    if not (0.0 <= float(s.cfg) <= MAX_CFG):
        raise InputError(f"cfg must be between 0 and {MAX_CFG}; got {s.cfg}.")
    if not (0.0 <= float(s.prompt_guidance) <= MAX_CFG):
        raise InputError(f"prompt_guidance must be between 0 and {MAX_CFG}; got {s.prompt_guidance}.")
    for name in ("music_strength", "beat_strength"):
        value = float(getattr(s, name))
        if not (0.0 <= value <= MAX_STRENGTH):
            raise InputError(f"{name} must be between 0 and {MAX_STRENGTH}; got {value}.")
    try:
        seed_ok = 0 <= int(s.seed) <= MAX_SEED
    except (TypeError, ValueError, OverflowError):
        seed_ok = False
    if not seed_ok:
        raise InputError(f"seed must be a whole number 0..{MAX_SEED}; got {s.seed!r}.")
    if s.scheduler not in SCHEDULERS:
        raise InputError(f"scheduler must be one of {', '.join(SCHEDULERS)}; got '{s.scheduler}'.")
    trained_width, trained_height = model.config.frame_size
    width, height, size_notes = check_size(int(s.width) or trained_width, int(s.height) or trained_height,
                                           max(8, model.vae_scale_factor))
    notes.extend(size_notes)
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
    if s.offload not in OFFLOAD_MODES:
        raise InputError(f"offload must be one of {', '.join(OFFLOAD_MODES)}; got '{s.offload}'.")
    check_memory(frames, width, height, int(model.config.unet["in_channels"]), max(1, model.vae_scale_factor),
                 music.fps, streamed=not holds_frames, requested=int(s.num_frames))
    used = replace(s, num_frames=frames, width=width, height=height, steps=int(s.steps), cfg=float(s.cfg),
                   prompt_guidance=float(s.prompt_guidance),
                   music_strength=float(s.music_strength), beat_strength=float(s.beat_strength), seed=int(s.seed),
                   context_length=length, context_overlap=overlap, decode_chunk=int(s.decode_chunk),
                   reference_every_step=bool(s.reference_every_step), vae_tiling=bool(s.vae_tiling),
                   upcast_vae=bool(s.upcast_vae))
    return used, notes


class MuseDancePipeline:
    """Animate one image with a MuseDance model (see the module docstring for the steps).

    Args:
        model: the model; its parameters may sit on the CPU when ``offload="stages"`` is used.
        device: where the computation runs; default: the model's device now. With offload off,
            a model elsewhere is moved there whole at the start of a call.
        offload_device: where offloaded modules wait (``offload="stages"`` only).
    """

    def __init__(self, model: MuseDanceModel, device: torch.device | str | None = None,
                 offload_device: torch.device | str = "cpu"):
        self.model = model
        self.device = torch.device(device) if device is not None else model.device
        self.offload_device = torch.device(offload_device)
        ensure_sdpa(model)

    @torch.no_grad()
    def __call__(self, image, music: MusicFeatures, beats: BeatTrack, prompt: str, negative_prompt: str = "",
                 settings: AnimateSettings | None = None, *, callback: Callable[[Progress], None] | None = None,
                 frame_sink: Callable[[torch.Tensor], None] | None = None,
                 interrupt: Callable[[], None] | None = None) -> AnimationResult:
        """Generate frames.

        Args:
            image: reference image (PIL, numpy or tensor; see ``images.to_rgb_array``).
            music, beats: features of the same audio segment at the same fps.
            prompt, negative_prompt: motion description and what to avoid.
            settings: sampler settings (defaults: ``AnimateSettings()``).
            interrupt: called before every UNet/VAE block runs (and between stages); raise from it
                to cancel within a fraction of a step (ComfyUI's /interrupt). Costs nothing measurable.
            callback: called after every window of every step; raise from it to cancel. With
                ``offload="stages"`` only the denoising UNet and the branches are on the device then.
            frame_sink: when given, decoded frames [n, H, W, 3] (float32 0..1, CPU) are passed to it
                chunk by chunk instead of being collected (memory stays bounded for long videos).

        Returns:
            The frames (None with a frame_sink) and the notes the run made (see notes.py): the
            settings it changed, a prompt it cut, a decode it redid.
        """
        model = self.model
        with collect_notes() as notes:
            s, checked = check_inputs(model, music, beats, settings or AnimateSettings(),
                                      holds_frames=frame_sink is None)
            for message in checked:
                note(message)
            device = self.device
            offload = StageOffload(model, device, self.offload_device, enabled=s.offload == "stages")
            if s.offload == "none" and model.device != device:
                model.to(device)
            try:
                with interrupt_hooks(model, interrupt):
                    frames = self._sample(image, music, beats, prompt, negative_prompt, s, offload, callback,
                                          frame_sink)
            finally:
                offload.release()
        return AnimationResult(frames, music.fps, s.num_frames, s.width, s.height, notes)

    def _sample(self, image, music: MusicFeatures, beats: BeatTrack, prompt: str, negative_prompt: str,
                s: AnimateSettings, offload: StageOffload, callback, frame_sink) -> torch.Tensor | None:
        model, device, dtype = self.model, self.device, self.model.dtype
        generator = torch.Generator("cpu").manual_seed(s.seed)
        guided = s.cfg > 1.0
        # branches: [negative prompt, no conditions] if guided, [empty prompt, conditions] with
        # prompt guidance, then [prompt, conditions]; ``cond`` is the conditioned ones
        prompts = ([negative_prompt] if guided else []) + ([""] if s.prompt_guidance > 0 else []) + [prompt]
        cond = slice(1 if guided else 0, len(prompts))
        n_cond = cond.stop - cond.start

        offload.stage(self.encode_parts())
        text = model.encode_prompt(prompts)  # (B, 77, C)
        ref_image = fit_image(image, s.width, s.height).to(device)
        with vae_mode(model.vae, s.vae_tiling, _vae_dtype(model.vae, s.upcast_vae)):
            ref_latents = model.encode_images(ref_image).expand(n_cond, -1, -1, -1)  # (V, 4, h, w)
        bank = model.encode_reference(ref_latents, text[cond])

        offload.stage(self.denoise_parts(s.reference_every_step))
        conditions = model.frame_conditions(_batch(music.features[: s.num_frames], device, dtype).expand(n_cond, -1, -1),
                                            _batch(select_beat_features(beats.frame_features[: s.num_frames],
                                                                        model.config.beat_features),
                                                   device, dtype).expand(n_cond, -1, -1))
        scheduler = make_scheduler(s.scheduler, model.config.scheduler)
        scheduler.set_timesteps(s.steps, device=device)
        h, w = s.height // model.vae_scale_factor, s.width // model.vae_scale_factor
        shape = (1, model.config.unet["in_channels"], s.num_frames, h, w)
        latents = torch.randn(shape, generator=generator, dtype=torch.float32).to(device) * scheduler.init_noise_sigma
        windows = context_windows(s.num_frames, s.context_length, s.context_overlap)

        for step, t in enumerate(scheduler.timesteps):
            if s.reference_every_step:
                bank = model.encode_reference(ref_latents, text[cond])
            prediction = torch.zeros_like(latents)  # fp32: scheduler math and blending stay in fp32
            weight = torch.zeros(s.num_frames, device=device)
            for index, window in enumerate(windows):
                x = scheduler.scale_model_input(latents[:, :, window.frames], t)
                out = self._guided(x, t, text, bank, conditions.frames(window.frames), cond, s)
                wts = window.weights.to(device)
                prediction[:, :, window.frames] += out * wts[None, None, :, None, None]
                weight[window.frames] += wts
                if callback is not None and index < len(windows) - 1:
                    callback(Progress(step, s.steps, index, len(windows), latents))
            prediction = prediction / weight[None, None, :, None, None]
            update = scheduler.step(prediction, t, latents)
            if callback is not None:  # the step's last window: after the update, with its clean estimate
                callback(Progress(step, s.steps, len(windows) - 1, len(windows), latents,
                                  denoised_estimate(scheduler, update)))
            latents = update.prev_sample

        offload.stage(self.decode_parts())
        return self.decode(latents, s.decode_chunk, frame_sink, tiling=s.vae_tiling, upcast=s.upcast_vae)

    # -- stages (dotted module paths inside the model, for offload="stages") -------------------
    def encode_parts(self) -> list[str]:
        """Used once at the start: text encoder, VAE encoder, ReferenceNet, and the denoising
        UNet's self-attention key/value projections that turn ReferenceNet tokens into the bank."""
        vae = self.model.vae
        parts = ["text_encoder", "vae.encoder", "reference_unet"]
        parts += ["vae.quant_conv"] if getattr(vae, "quant_conv", None) is not None else []
        for name in transformer_blocks(self.model.denoising_unet):
            parts += [f"denoising_unet.{name}.attn1.to_k", f"denoising_unet.{name}.attn1.to_v"]
        return parts

    def denoise_parts(self, reference_every_step: bool = False) -> list[str]:
        """Used at every step: the denoising UNet (with its motion modules) and the branches."""
        return ["denoising_unet", "music", "beat"] + (["reference_unet"] if reference_every_step else [])

    def decode_parts(self) -> list[str]:
        vae = self.model.vae
        return ["vae.decoder"] + (["vae.post_quant_conv"] if getattr(vae, "post_quant_conv", None) is not None else [])

    def _guided(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, bank: ReferenceBank,
                conditions: FrameConditions, cond: slice, s: AnimateSettings) -> torch.Tensor:
        """Model output for one window, with classifier-free guidance when ``s.cfg > 1`` and
        prompt guidance when ``s.prompt_guidance > 0`` (branches as ``_sample`` lays them out)."""
        batch = x.expand(text.shape[0], -1, -1, -1, -1)
        out = self.model.denoise(batch, t, text, reference=bank, conditions=conditions, cond=cond,
                                 music_scale=s.music_strength, beat_scale=s.beat_strength).float()
        full = out[-1:]
        result = out[:1] + s.cfg * (full - out[:1]) if cond.start == 1 else full
        if s.prompt_guidance > 0:
            result = result + s.prompt_guidance * (full - out[cond.start : cond.start + 1])
        return result

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, chunk: int = DEFAULT_DECODE_CHUNK,
               frame_sink: Callable[[torch.Tensor], None] | None = None, *, tiling: bool = False,
               upcast: bool = True) -> torch.Tensor | None:
        """Latents [1, C, T, h, w] -> frames [T, H, W, 3] float32 0..1 (CPU), ``chunk`` frames at a time.

        ``tiling``: frames larger than the VAE's tile are decoded in overlapping tiles.
        ``upcast``: an fp16 VAE decodes in fp32. Without it, a chunk whose fp16 decode overflows
        (NaN/inf) is decoded again in fp32, with a note. A chunk that runs out of accelerator
        memory is decoded again one frame at a time in tiles, with a note (each said once per call).
        """
        vae = self.model.vae
        flat = latents[0].permute(1, 0, 2, 3)  # (T, C, h, w)
        pieces = []
        with vae_mode(vae, tiling, _vae_dtype(vae, upcast)):
            said: set[str] = set()
            for start in range(0, flat.shape[0], chunk):
                images = self._decode_chunk(flat[start : start + chunk], said)
                images = ((images.float() + 1.0) / 2.0).clamp(0.0, 1.0).permute(0, 2, 3, 1).cpu()
                if frame_sink is not None:
                    frame_sink(images)
                else:
                    pieces.append(images)
        return None if frame_sink is not None else torch.cat(pieces)

    def _decode_chunk(self, z: torch.Tensor, said: set[str]) -> torch.Tensor:
        """Latents [n, C, h, w] -> images [n, 3, H, W] in [-1, 1], with the two fallbacks of ``decode``."""
        model, vae = self.model, self.model.vae
        try:
            images = model.decode_latents(z)
        except torch.OutOfMemoryError:
            if vae.use_tiling and z.shape[0] == 1:
                raise
            _say(said, f"out of memory while decoding {z.shape[0]} frame(s) at once; decoding them one at a time "
                       "in tiles. Set vae_tiling on or a smaller decode_chunk to avoid the retry.")
            _empty_cache(self.device)
            with vae_mode(vae, True, None):
                images = torch.cat([model.decode_latents(z[i : i + 1]) for i in range(z.shape[0])])
        if vae.dtype == torch.float16 and not torch.isfinite(images).all():
            _say(said, "the fp16 VAE overflowed (NaN/inf in the frames); decoded those frames again in fp32. "
                       "Keep upcast_vae on to skip the retry.")
            with vae_mode(vae, vae.use_tiling, torch.float32):
                images = model.decode_latents(z)
        return images


@contextlib.contextmanager
def interrupt_hooks(model: torch.nn.Module, check: Callable[[], None] | None):
    """Within the block, ``check()`` runs before each down/mid/up block of every UNet and of the
    VAE (forward pre-hooks): raising from it stops sampling or decoding mid-step."""
    if check is None:
        yield
        return
    handles = []
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("down_blocks", "up_blocks") and isinstance(module, torch.nn.ModuleList):
            targets = list(module)
        elif leaf == "mid_block" and module is not None:
            targets = [module]
        else:
            continue
        for target in targets:
            handles.append(target.register_forward_pre_hook(lambda *_: check()))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def vae_mode(vae, tiling: bool, dtype: torch.dtype | None):
    """Within the block the VAE tiles (diffusers' ``use_tiling``) as asked and, when ``dtype`` is
    given, has its weights in that dtype; both are put back afterwards (fp16 -> fp32 -> fp16 is exact)."""
    previous_tiling, previous_dtype = vae.use_tiling, vae.dtype
    vae.use_tiling = bool(tiling)
    if dtype is not None and dtype != previous_dtype:
        vae.to(dtype=dtype)
    try:
        yield vae
    finally:
        vae.use_tiling = previous_tiling
        if vae.dtype != previous_dtype:
            vae.to(dtype=previous_dtype)


def _vae_dtype(vae, upcast: bool) -> torch.dtype | None:
    """fp32 for an fp16 VAE when ``upcast`` (fp16 overflows in SD's VAE; bf16 has fp32's range)."""
    return torch.float32 if upcast and vae.dtype == torch.float16 else None


def _say(said: set[str], message: str) -> None:
    """``note(message)`` unless ``said`` holds it already (one decode says each fallback once)."""
    if message not in said:
        said.add(message)
        note(message)


def _empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def _batch(array, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """[T, D] numpy -> [1, T, D] tensor."""
    return torch.as_tensor(array, dtype=torch.float32)[None].to(device=device, dtype=dtype)
