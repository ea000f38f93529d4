"""File-to-file animation: image + music file -> mp4 with the music in it (the CLI's ``animate``
and, row by row, ``animate-batch``).

``animate_file`` does one video with a model already loaded (``load_model``), so a batch loads
the model once and reuses it. It loads the music segment twice — mono at the analysis rate for
beats and features, and as is for the soundtrack — finds beats and features at the video fps,
runs the pipeline and streams the decoded frames into the mp4 writer, so a long video never sits
in memory whole. The writer fills a hidden temporary file and renames it at the end: a failed or
killed run never leaves a half video under the output's name.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .errors import InputError
from .images import read_image  # its home is images.py; animate.read_image still works
from .pipeline import AnimateSettings

if TYPE_CHECKING:
    from .audio.encoders import MusicEncoder
    from .checkpoints.assemble import ModelSources
    from .models.musedance import MuseDanceModel
    from .pipeline import AnimationResult

DEMO_BUNDLE = Path(__file__).resolve().parents[1] / "assets" / "demo" / "musedance-demo-tiny.safetensors"
DEFAULT_PROMPT = "dances to the beat"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def load_model(sources: ModelSources, device: torch.device, dtype: torch.dtype,
               log: Callable[[str], None] = _stderr) -> tuple[MuseDanceModel, str]:
    """The model ``sources`` name (a bundle and/or base, motion and Animate Anyone files, see
    checkpoints/assemble.py), else the bundled demo model, on ``device`` in ``dtype``.
    Returns (model, label); the assembly report of real files goes to ``log``."""
    from .checkpoints.assemble import ModelSources, assemble

    sources = ModelSources(bundle=sources.bundle, base=sources.base, motion=sources.motion,
                           animate_anyone=sources.animate_anyone, tokenizer=sources.tokenizer)
    if not any((sources.bundle, sources.base, sources.motion, sources.animate_anyone)):
        if not DEMO_BUNDLE.is_file():
            raise InputError(f"no model given and the demo model is missing ({DEMO_BUNDLE}); pass --model BUNDLE, "
                             "or restore the file with 'git checkout -- assets/demo'.")
        sources.bundle = DEMO_BUNDLE
    model, report = assemble(sources, device=device, dtype=dtype)
    if sources.bundle == DEMO_BUNDLE:
        return model, f"demo model {DEMO_BUNDLE.name}"
    log(report.format())
    return model, " + ".join(str(p.name) for p in (sources.base, sources.animate_anyone, sources.motion,
                                                   sources.bundle) if p is not None)


def weights_device(device: torch.device, offload: str) -> torch.device:
    """Where to load the weights: with offload the weights wait on the CPU and each stage's
    modules visit ``device`` in turn."""
    return torch.device("cpu") if offload == "stages" else device


MIN_FPS, MAX_FPS = 1.0, 120.0  # the beat tracker's range
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit integer


def check_request(*, fps: float | None = None, seed: int | None = None, prompt: str = "",
                  negative_prompt: str = "") -> None:
    """Refuse values that would fail, or silently change, deep inside the run: an fps of 0,
    negative or NaN (0 used to mean "the model's"), a seed torch cannot take, a prompt that is not
    valid text (invalid UTF-8 on the command line arrives as lone surrogates)."""
    import math

    if fps is not None:
        value = float(fps)
        if not (math.isfinite(value) and MIN_FPS <= value <= MAX_FPS):
            raise InputError(f"fps must be between {MIN_FPS:g} and {MAX_FPS:g} frames per second; got {value:g}. "
                             "Leave --fps out to use the model's own rate.")
    if seed is not None and not (0 <= int(seed) <= MAX_SEED):
        raise InputError(f"seed must be a whole number in 0..2**63-1 ({MAX_SEED}); got {seed}.")
    for name, text in (("prompt", prompt), ("negative prompt", negative_prompt)):
        try:
            (text or "").encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = (text or "")[exc.start:exc.end]
            shown = " ".join(f"0x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else f"U+{ord(c):04X}"
                             for c in bad[:4])
            raise InputError(f"the {name} is not valid UTF-8 text (at character {exc.start}: {shown}); "
                             "retype it, or set the terminal to UTF-8.") from None


def music_encoder_for(model: MuseDanceModel, device: torch.device, choice: str | Path | None = None,
                      dirs: Iterable[str | Path] = ()) -> MusicEncoder:
    """The encoder the model was trained with unless ``choice`` names one; a learned one runs on
    ``device`` in fp32."""
    from .audio.backbones.selection import encoder_for_model

    return encoder_for_model(model.config.music_encoder, choice, list(dirs), device=device)


def animate_file(model: MuseDanceModel, device: torch.device, image: Any, music: str | Path, out: str | Path,
                 settings: AnimateSettings, *, start: float = 0.0, seconds: float | None = None,
                 fps: float | None = None, prompt: str = DEFAULT_PROMPT, negative_prompt: str = "",
                 music_encoder: str | Path | None = None, audio_encoders: Iterable[str | Path] = (),
                 encoder: MusicEncoder | None = None, model_label: str | None = None,
                 log: Callable[[str], None] = _stderr, progress: bool | None = None) -> AnimationResult:
    """Animate ``image`` to ``music`` with a loaded ``model`` and write the mp4 ``out``.

    Args:
        model, device: the loaded model and where sampling runs (with ``settings.offload ==
            "stages"`` the weights may wait on the CPU, see ``weights_device``).
        image: an image file, or an image already read (PIL, numpy or tensor).
        music: the music file; ``start`` and ``seconds`` pick the segment (None: to the end).
        out: the mp4 to write (replaced if it exists; written under a temporary name first).
        settings: sampler settings; ``fps`` None = the model's.
        music_encoder, audio_encoders: the encoder choice (None = the one the model was trained
            with) and the folders to find it in; or ``encoder``, one already built (a batch
            builds it once). A built-here learned encoder is dropped before sampling.
        model_label: when given, named with the device and precision in the ``music:`` line.
        log: where the ``music:`` line goes (default stderr). Notes (frames cut to the music, a
            prompt cut, ...) go to the ``musedance`` logger as they happen (see notes.py).
        progress: a sampling progress bar on stderr: None = on a terminal only, False = never.

    Returns:
        The pipeline's result (frames streamed into the file, so ``frames`` is None).

    Raises:
        MuseDanceError (InputError, AudioError, VideoError, ...): an input cannot be used; no
            file is left under ``out``.
    """
    from .audio.analysis import ANALYSIS_SAMPLE_RATE, analyze
    from .audio.beats import track_beats
    from .audio.encoders import SpectralEncoder
    from .audio.io import load_audio, resample, to_mono
    from .pipeline import MuseDancePipeline, check_inputs
    from .video.writer import VideoWriter

    check_request(fps=fps, seed=settings.seed, prompt=prompt, negative_prompt=negative_prompt)
    if isinstance(image, (str, Path)):
        image = read_image(image)
    fps = float(fps) if fps is not None else float(model.config.fps)
    soundtrack = load_audio(music, start=start, duration=seconds)
    mono = resample(to_mono(soundtrack), ANALYSIS_SAMPLE_RATE).samples[0]
    if encoder is None:
        encoder = music_encoder_for(model, device, music_encoder, audio_encoders)
    analysis = analyze(mono, ANALYSIS_SAMPLE_RATE)
    beats = track_beats(mono, ANALYSIS_SAMPLE_RATE, fps, analysis=analysis)
    if isinstance(encoder, SpectralEncoder):
        features = encoder.encode(mono, ANALYSIS_SAMPLE_RATE, fps, start=soundtrack.start, analysis=analysis)
    else:  # learned encoders resample from the file's own rate
        features = encoder.encode(to_mono(soundtrack).samples[0], soundtrack.sample_rate, fps,
                                  start=soundtrack.start)
    del encoder  # one built here is not needed for sampling (a caller's stays with the caller)
    line = f"music: {soundtrack.duration:.2f} s, {beats.tempo:.1f} BPM, {len(beats.beat_times)} beats"
    if model_label is not None:
        line += (f"; model: {model_label} on {device} ({str(model.dtype).removeprefix('torch.')}"
                 f"{', offload: stages' if settings.offload == 'stages' else ''})")
    log(line)

    used, _ = check_inputs(model, features, beats, settings)  # the writer's size; the pipeline says its notes

    from tqdm import tqdm

    bar = None

    def on_progress(p) -> None:
        nonlocal bar
        if bar is None:  # made at the first window, after the notes the pipeline says as it starts
            bar = tqdm(total=p.total, unit="window", desc="sampling", file=sys.stderr, leave=False,
                       disable=None if progress is None else not progress)  # None: a live bar on a terminal only
        bar.update(1)

    pipe = MuseDancePipeline(model, device=device)
    try:
        with VideoWriter(Path(out), fps, used.width, used.height, audio=soundtrack) as writer:
            result = pipe(image, features, beats, prompt, negative_prompt, settings,
                          callback=on_progress, frame_sink=writer.write)
    finally:
        if bar is not None:
            bar.close()
    return result


@dataclass(frozen=True)
class AnimateOptions:
    """Everything ``animate_files`` (the ``animate`` command) and a batch take besides the files, with
    the command line's defaults; ``settings`` holds the sampler's (``AnimateSettings``)."""

    prompt: str = DEFAULT_PROMPT
    negative_prompt: str = ""
    start: float = 0.0  # seconds of the music skipped
    seconds: float | None = None  # seconds of music used; None = to the end
    fps: float | None = None  # None = the model's frame rate
    sources: ModelSources | None = None  # the model files (checkpoints/assemble.py); None = the demo model
    music_encoder: str | Path | None = None  # name or folder; None = the encoder the model was trained with
    audio_encoders: tuple[Path, ...] = ()  # folders of music encoder folders, like models/audio_encoders
    device: str = "auto"  # auto, cpu, cuda, cuda:1, mps
    precision: str = "auto"  # auto, fp32, fp16, bf16 (devices.pick_dtype)
    settings: AnimateSettings = field(default_factory=AnimateSettings)


def animate_files(image: str | Path, music: str | Path, out: str | Path,
                  options: AnimateOptions = AnimateOptions()) -> Path:
    """Animate the picture file ``image`` to the music file ``music`` and write the mp4 ``out`` (the
    ``animate`` command). Everything a user can get wrong fails before the model loads.

    Returns:
        ``out`` as a Path.

    Raises:
        MuseDanceError (InputError, AudioError, ...): an input or an option cannot be used; no file
            is left under ``out``.
    """
    from .checkpoints.assemble import ModelSources
    from .cli import check_output
    from .devices import pick_device, pick_dtype
    from .video.writer import VIDEO_SUFFIXES

    t0 = time.perf_counter()
    sources = options.sources or ModelSources()
    check_request(fps=options.fps, seed=options.settings.seed, prompt=options.prompt,
                  negative_prompt=options.negative_prompt)
    out = check_output(Path(out), "--out", {"image": image, "music": music, "model": sources.bundle,
                                            "base": sources.base, "motion": sources.motion,
                                            "tokenizer": sources.tokenizer}, VIDEO_SUFFIXES, "dance.mp4")
    picture = read_image(image)
    device = pick_device(options.device)
    dtype = pick_dtype(options.precision, device)
    model, model_name = load_model(sources, weights_device(device, options.settings.offload), dtype)
    result = animate_file(model, device, picture, music, out, options.settings, start=options.start,
                          seconds=options.seconds, fps=options.fps, prompt=options.prompt,
                          negative_prompt=options.negative_prompt, music_encoder=options.music_encoder,
                          audio_encoders=options.audio_encoders, model_label=model_name)
    print(f"wrote {out}: {result.num_frames} frames, {result.width}x{result.height} at {result.fps:g} fps with the "
          f"music; took {time.perf_counter() - t0:.1f} s")
    return out
