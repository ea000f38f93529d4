"""MuseDance Animate Image: model + image + music + beats + prompt -> frames, matching audio, fps."""

from __future__ import annotations

import logging

from comfy_api.latest import io

from . import host
from .types import CATEGORY, MuseDanceBeats, MuseDanceModel, MuseDanceMusic

MAX_CONTEXT = 64  # frames per window the node offers (the model may allow fewer)
# the returned AUDIO goes to SaveVideo (mp4 with AAC): a rate AAC cannot store is resampled to this
OUTPUT_AUDIO_RATE = 48000


def _settings_inputs() -> list:
    from ..musedance_core.images import MAX_SIZE, MIN_SIZE
    from ..musedance_core.pipeline import MAX_CFG, MAX_FRAMES, MAX_STEPS, MAX_STRENGTH, AnimateSettings
    from ..musedance_core.devices import OFFLOAD_MODES
    from ..musedance_core.schedulers import SCHEDULERS

    d = AnimateSettings()
    return [
        io.Int.Input("seed", default=d.seed, min=0, max=2**63 - 1, control_after_generate=True,
                     tooltip="Random seed; the same seed and inputs give the same video."),
        io.Int.Input("steps", default=d.steps, min=1, max=MAX_STEPS, tooltip="Denoising steps (20-30 is typical)."),
        io.Float.Input("cfg", default=d.cfg, min=0.0, max=MAX_CFG, step=0.1,
                       tooltip="Classifier-free guidance: how strongly to follow image, prompt and music. "
                               "1 = off (faster)."),
        io.Float.Input("music_strength", default=d.music_strength, min=0.0, max=MAX_STRENGTH, step=0.05,
                       tooltip="Strength of the music branch; 0 = ignore the music features."),
        io.Float.Input("beat_strength", default=d.beat_strength, min=0.0, max=MAX_STRENGTH, step=0.05,
                       tooltip="Strength of the beat branch; 0 = ignore the beats."),
        io.Int.Input("width", default=d.width, min=0, max=MAX_SIZE, step=8,
                     tooltip=f"Video width (multiple of 8, at least {MIN_SIZE}); 0 = the size the model was trained "
                             "at (64 for the demo). The image is scaled to cover the frame and centre-cropped."),
        io.Int.Input("height", default=d.height, min=0, max=MAX_SIZE, step=8,
                     tooltip="Video height (multiple of 8); 0 = the model's."),
        io.Int.Input("frames", default=0, min=0, max=MAX_FRAMES,
                     tooltip="Frames to make; 0 = as long as the music. More than the music is cut to the music."),
        io.Int.Input("context_length", default=d.context_length, min=1, max=MAX_CONTEXT,
                     tooltip="Frames denoised together; longer videos are made in overlapping windows "
                             "(memory follows this, not the video length)."),
        io.Int.Input("context_overlap", default=d.context_overlap, min=0, max=MAX_CONTEXT - 1,
                     tooltip="Frames shared by neighbouring windows (blended smoothly)."),
        io.Combo.Input("scheduler", options=list(SCHEDULERS), default=d.scheduler, tooltip="Sampler."),
        io.Boolean.Input("keep_model_loaded", default=True,
                         tooltip="Keep the model on the GPU after this run (faster reruns); off frees the memory."),
        # last and optional, so that UI workflows and API prompts saved before it still run
        io.Float.Input("prompt_guidance", default=d.prompt_guidance, min=0.0, max=MAX_CFG, step=0.1, optional=True,
                       tooltip="Extra push towards the dance the prompt names, against the same image and music "
                               "with an empty prompt. 0 = off; each step then costs one branch less."),
        # low-memory switches (the CLI's --vae-tiling, --decode-chunk, --offload)
        io.Boolean.Input("vae_tiling", default=d.vae_tiling, optional=True,
                         tooltip="Decode frames larger than the VAE's tile (512 px for SD 1.5) in overlapping "
                                 "tiles: less memory, faint seams possible."),
        io.Int.Input("decode_chunk", default=d.decode_chunk, min=1, max=MAX_FRAMES, optional=True,
                     tooltip="Frames per VAE decode call; 1 = least memory."),
        io.Combo.Input("offload", options=list(OFFLOAD_MODES), default=d.offload, optional=True,
                       tooltip="stages = keep only the running stage's modules on the GPU (text encoder and "
                               "ReferenceNet, then the UNet, then the VAE decoder): lower peak memory, a little "
                               "slower. none = ComfyUI loads the whole model."),
    ]


class MuseDanceAnimateImage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MuseDanceAnimateImage",
            display_name="MuseDance Animate Image",
            category=CATEGORY,
            description="Animates the image so that it dances to the music, following the prompt. Outputs the "
                        "frames, the audio that matches them and the fps: connect them to CreateVideo.",
            inputs=[
                MuseDanceModel.Input("model", tooltip="From Load MuseDance Model."),
                io.Image.Input("image", tooltip="The picture to animate (the first one if a batch)."),
                MuseDanceMusic.Input("music", tooltip="From MuseDance Music Encoder."),
                MuseDanceBeats.Input("beats", tooltip="From MuseDance Beat Extractor (same audio and fps)."),
                io.Audio.Input("audio", tooltip="The same AUDIO the music and beats came from; returned cut to the frames."),
                io.String.Input("prompt", multiline=True, default="dances to the music, bounces on every beat",
                                tooltip="How the subject should move."),
                io.String.Input("negative_prompt", multiline=True, default="", tooltip="What to avoid."),
                *_settings_inputs(),
            ],
            outputs=[
                io.Image.Output(display_name="frames"),
                io.Audio.Output(display_name="audio", tooltip="The audio segment that matches the frames."),
                io.Float.Output(display_name="fps"),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, context_length: int | None = None, context_overlap: int | None = None) -> bool | str:
        # only the inputs named here skip ComfyUI's own checks (execution.validate_inputs), so their
        # ranges are checked here; a linked (not yet computed) value is None and checked at run time
        for label, value, low, high in (("context_length", context_length, 1, MAX_CONTEXT),
                                        ("context_overlap", context_overlap, 0, MAX_CONTEXT - 1)):
            if value is not None and not low <= value <= high:
                return f"{label} must be {low}..{high}; got {value}."
        if context_length is None or context_overlap is None:
            return True
        if context_overlap >= context_length:
            return f"context_overlap ({context_overlap}) must be smaller than context_length ({context_length})."
        return True

    @classmethod
    def execute(cls, model, image, music, beats, audio, prompt: str, negative_prompt: str, seed: int, steps: int,
                cfg: float, music_strength: float, beat_strength: float, width: int, height: int, frames: int,
                context_length: int, context_overlap: int, scheduler: str, keep_model_loaded: bool,
                prompt_guidance: float | None = None, vae_tiling: bool | None = None, decode_chunk: int | None = None,
                offload: str | None = None) -> io.NodeOutput:
        from ..musedance_core.audio.io import from_comfy_audio, resample, to_comfy_audio, trim
        from ..musedance_core.pipeline import AnimateSettings, MuseDancePipeline, check_inputs, check_text
        from ..musedance_core.video.writer import AAC_SAMPLE_RATES

        d = AnimateSettings()
        settings = AnimateSettings(num_frames=frames, width=width, height=height, steps=steps, cfg=cfg,
                                   prompt_guidance=d.prompt_guidance if prompt_guidance is None else prompt_guidance,
                                   music_strength=music_strength, beat_strength=beat_strength, seed=seed,
                                   scheduler=scheduler, context_length=context_length, context_overlap=context_overlap,
                                   vae_tiling=d.vae_tiling if vae_tiling is None else vae_tiling,
                                   decode_chunk=d.decode_chunk if decode_chunk is None else decode_chunk,
                                   offload=offload or d.offload)
        for label, text in (("prompt", prompt), ("negative_prompt", negative_prompt)):
            check_text(text, label)
        soundtrack = from_comfy_audio(audio, name="audio")  # checked before the long part starts
        with host.collect_notes("MuseDance Animate Image") as notes:
            # fails fast (sizes, frames, memory), before the model moves; the pipeline says its notes
            used, _ = check_inputs(model.model, music, beats, settings, holds_frames=True)
            if used.offload == "stages":  # the pipeline moves one stage at a time; ComfyUI keeps the rest off
                host.offload(model)
            else:
                host.load_to_device(model)
            logging.info("MuseDance: sampling %d frames at %dx%d, %d steps", used.num_frames, used.width,
                         used.height, used.steps)
            try:
                pipe = MuseDancePipeline(model.model, device=host.torch_device())
                result = pipe(image, music, beats, prompt, negative_prompt, settings,
                              callback=host.Progress(model.model, cls.hidden.unique_id), interrupt=host.check_interrupt)
            finally:
                if not keep_model_loaded:
                    host.offload(model)
        seconds = result.num_frames / result.fps
        segment = trim(soundtrack, 0.0, min(seconds, soundtrack.duration))
        if segment.sample_rate > OUTPUT_AUDIO_RATE or segment.sample_rate not in AAC_SAMPLE_RATES:
            segment = resample(segment, OUTPUT_AUDIO_RATE)  # e.g. 192 kHz: SaveVideo's AAC would refuse it
        return io.NodeOutput(result.frames, to_comfy_audio(segment), float(result.fps), ui=host.notes_ui(notes))
