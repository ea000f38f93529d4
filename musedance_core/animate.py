"""File-to-file animation: image + music file -> mp4 with the music in it (the CLI's ``animate``).

Loads the music segment twice — mono at the analysis rate for beats and features, and as is
for the soundtrack — finds beats and features at the video fps, runs the pipeline and streams
the decoded frames into the mp4 writer, so a long video never sits in memory whole.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import torch

from .errors import InputError

DEMO_BUNDLE = Path(__file__).resolve().parents[1] / "assets" / "demo" / "musedance-demo-tiny.safetensors"


def load_model(args, device: torch.device, dtype: torch.dtype):
    """The model the arguments name (a bundle and/or base, motion and Animate Anyone files, see
    checkpoints/assemble.py), else the bundled demo model. Returns (model, label)."""
    from .checkpoints.assemble import ModelSources, assemble

    sources = ModelSources(bundle=args.bundle, base=args.base, motion=args.motion,
                           animate_anyone=args.animate_anyone, tokenizer=args.tokenizer)
    if not any((sources.bundle, sources.base, sources.motion, sources.animate_anyone)):
        if not DEMO_BUNDLE.is_file():
            raise InputError(f"no model given and the demo model is missing ({DEMO_BUNDLE}); pass --model BUNDLE, "
                             "or restore the file with 'git checkout -- assets/demo'.")
        sources.bundle = DEMO_BUNDLE
    model, report = assemble(sources, device=device, dtype=dtype)
    if sources.bundle == DEMO_BUNDLE:
        return model, f"demo model {DEMO_BUNDLE.name}"
    print(report.format(), file=sys.stderr)
    return model, " + ".join(str(p.name) for p in (sources.base, sources.animate_anyone, sources.motion,
                                                   sources.bundle) if p is not None)


def animate_files(args) -> Path:
    """Run the ``animate`` command (see cli.py for the arguments)."""
    from PIL import Image, UnidentifiedImageError

    from .audio.analysis import ANALYSIS_SAMPLE_RATE, analyze
    from .audio.beats import track_beats
    from .audio.backbones import encoder_for_model
    from .audio.encoders import SpectralEncoder
    from .audio.io import load_audio, to_mono, resample
    from .devices import pick_device, pick_dtype
    from .pipeline import AnimateSettings, MuseDancePipeline
    from .video import VideoWriter

    t0 = time.perf_counter()
    image_path = Path(args.image)
    if not image_path.is_file():
        raise InputError(f"image file not found: '{image_path}'.")
    try:
        image = Image.open(image_path)
        image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read '{image_path.name}' as an image ({exc}); use png, jpg or webp.") from exc

    device = pick_device(args.device)
    dtype = pick_dtype(args.precision, device)
    offload = args.offload
    # with offload the weights wait on the CPU and each stage's modules visit the device in turn
    model, model_name = load_model(args, torch.device("cpu") if offload == "stages" else device, dtype)
    fps = float(args.fps) if args.fps else float(model.config.fps)

    soundtrack = load_audio(args.music, start=args.start, duration=args.seconds)
    mono = resample(to_mono(soundtrack), ANALYSIS_SAMPLE_RATE).samples[0]
    # the encoder the model was trained with unless one is chosen; a learned one runs on the device in fp32
    encoder = encoder_for_model(model.config.music_encoder, args.music_encoder, args.audio_encoders, device=device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        analysis = analyze(mono, ANALYSIS_SAMPLE_RATE)
        beats = track_beats(mono, ANALYSIS_SAMPLE_RATE, fps, analysis=analysis)
        if isinstance(encoder, SpectralEncoder):
            music = encoder.encode(mono, ANALYSIS_SAMPLE_RATE, fps, start=soundtrack.start, analysis=analysis)
        else:  # learned encoders resample from the file's own rate
            music = encoder.encode(to_mono(soundtrack).samples[0], soundtrack.sample_rate, fps,
                                   start=soundtrack.start)
    del encoder  # a learned encoder's weights are not needed for sampling
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print(f"music: {soundtrack.duration:.2f} s, {beats.tempo:.1f} BPM, {len(beats.beat_times)} beats; "
          f"model: {model_name} on {device} ({str(dtype).removeprefix('torch.')}"
          f"{', offload: stages' if offload == 'stages' else ''})", file=sys.stderr)

    settings = AnimateSettings(num_frames=args.frames, width=args.width, height=args.height, steps=args.steps,
                               cfg=args.cfg, prompt_guidance=args.prompt_guidance,
                               music_strength=args.music_strength, beat_strength=args.beat_strength,
                               seed=args.seed, scheduler=args.scheduler, context_length=args.context_length,
                               context_overlap=args.context_overlap, decode_chunk=args.decode_chunk,
                               vae_tiling=args.vae_tiling, upcast_vae=args.upcast_vae, offload=offload)
    from tqdm import tqdm

    bar = tqdm(total=None, unit="window", desc="sampling", file=sys.stderr, leave=False,
               disable=None)  # None: a live bar on a terminal, none in logs and CI

    def on_progress(p) -> None:
        bar.total = p.total
        bar.update(1)

    pipe = MuseDancePipeline(model, device=device)
    out = Path(args.out)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from .pipeline import check_inputs

        used, _ = check_inputs(model, music, beats, settings)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    with VideoWriter(out, fps, used.width, used.height, audio=soundtrack) as writer:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # already reported above
            result = pipe(image, music, beats, args.prompt, args.negative_prompt, settings,
                          callback=on_progress, frame_sink=writer.write)
    bar.close()
    print(f"wrote {out}: {result.num_frames} frames, {result.width}x{result.height} at {fps:g} fps with the music; "
          f"took {time.perf_counter() - t0:.1f} s")
    return out
