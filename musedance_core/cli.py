"""Command line: ``musedance <command> ...`` (the command ``pip install -e .`` installs), or
``python -m musedance_core <command> ...``.

Commands:
  beats          find beats and downbeats in a music file; optional plot (PNG) and JSON.
  animate        make an image dance to music: writes an mp4 with the music in it.
  animate-batch  one mp4 per row of a CSV; resumes, reports bad rows, shards over `accelerate launch`.
  inspect        report what a set of model files (bundle, SD 1.5 base, motion module, ...) assembles into.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InputError, MuseDanceError

if TYPE_CHECKING:
    from .animate import AnimateOptions

PROG = "musedance"  # the console script (pyproject [project.scripts])
MODULE_PROG = "python -m musedance_core"  # __main__.py passes it
PLOT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


# -- output paths, checked before any work ---------------------------------------------------------

def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def check_output(path: Path, option: str, inputs: dict[str, Path | None], suffixes: tuple[str, ...] = (),
                 example: str = "out") -> Path:
    """Refuse an output path that cannot be written, before the work: a folder, a wrong suffix, a
    file that is one of the ``inputs`` (writing it would destroy the input), or a parent that is a
    file or not writable. A missing parent folder is fine (it is created when the file is written)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} '{path}' is a folder; give a file name, e.g. '{path / example}'.")
    if suffixes and path.suffix.lower() not in suffixes:
        raise InputError(f"{option} '{path}' must end in {', '.join(suffixes)}; "
                         f"e.g. '{path.with_suffix(suffixes[0])}'.")
    for name, source in inputs.items():
        if source is not None and _same_file(path, Path(source)):
            raise InputError(f"{option} '{path}' is the {name} file; writing there would destroy it. "
                             "Give the output another name.")
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{option} '{path}': '{parent}' is a file, not a folder; choose another output folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{option} '{path}': the folder '{parent}' is not writable; choose another output folder.")
    return path


def check_distinct(outputs: dict[str, Path | None]) -> None:
    """Refuse two options that would write the same file."""
    given = [(option, Path(p)) for option, p in outputs.items() if p is not None]
    for i, (a, pa) in enumerate(given):
        for b, pb in given[i + 1:]:
            if _same_file(pa, pb):
                raise InputError(f"{a} and {b} both name '{pb}'; give each output its own file.")


def write_atomically(path: Path, write) -> None:
    """Call ``write(file)`` on a hidden temporary file next to ``path`` and rename it over ``path``
    when done: a failure or a signal (Ctrl-C, SIGTERM) leaves no half file and keeps an earlier one."""
    import secrets

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as exc:
        raise InputError(f"cannot write '{path}': {exc}. Check the free disk space and the folder's permissions.") \
            from exc
    finally:
        tmp.unlink(missing_ok=True)


def features_path(path: Path) -> Path:
    """The file ``--features`` writes: numpy's savez appends .npz to a name without it."""
    path = Path(path)
    return path if path.name.endswith(".npz") else path.with_name(path.name + ".npz")


def _add_beats_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("beats", help="find beats and downbeats in a music file",
                       description="Track beats and downbeats and print tempo and counts.")
    p.add_argument("music", help="audio file (wav, flac, mp3, ogg, opus, m4a, or a video with sound)")
    p.add_argument("--fps", type=float, default=24.0, help="video frame rate of the per-frame features (default 24)")
    p.add_argument("--start", type=float, default=0.0, help="seconds to skip at the start (default 0)")
    p.add_argument("--duration", type=float, default=None, help="seconds to analyse (default: to the end)")
    p.add_argument("--min-bpm", type=float, default=None, help="lowest tempo to consider (default 50)")
    p.add_argument("--max-bpm", type=float, default=None, help="highest tempo to consider (default 220)")
    p.add_argument("--beats-per-bar", type=int, default=None, help="meter; default: estimate 2, 3 or 4")
    p.add_argument("--beat-offset-ms", type=float, default=0.0,
                   help="shift every beat by this many ms, -1000..1000 (+ = later; default 0)")
    p.add_argument("--plot", type=Path, default=None,
                   help="write the beat plot to this image (.png, .jpg or .webp)")
    p.add_argument("--json", type=Path, default=None, help="write beats, downbeats and tempo to this JSON")
    p.add_argument("--features", type=Path, default=None,
                   help="also write the per-frame music features [T, D] and beat features [T, K] to this .npz "
                        "(.npz is added to a name without it)")
    p.set_defaults(run=run_beats)


def run_beats(args: argparse.Namespace) -> int:
    import numpy as np

    from .audio.analysis import ANALYSIS_SAMPLE_RATE, analyze
    from .audio.beats import track_beats
    from .audio.io import load_audio

    music = Path(args.music)
    if args.features is not None:
        args.features = features_path(args.features)
    for option, path, suffixes, example in (("--plot", args.plot, tuple(PLOT_FORMATS), "beats.png"),
                                            ("--json", args.json, (), "beats.json"),
                                            ("--features", args.features, (), "features.npz")):
        if path is not None:
            check_output(path, option, {"music": music}, suffixes, example)
    check_distinct({"--plot": args.plot, "--json": args.json, "--features": args.features})
    t0 = time.perf_counter()
    audio = load_audio(args.music, sample_rate=ANALYSIS_SAMPLE_RATE, mono=True, start=args.start,
                       duration=args.duration)
    mono = audio.samples[0]
    analysis = analyze(mono, audio.sample_rate)
    beats = track_beats(mono, audio.sample_rate, args.fps, min_bpm=args.min_bpm, max_bpm=args.max_bpm,
                        beats_per_bar=args.beats_per_bar, beat_offset_ms=args.beat_offset_ms, analysis=analysis)
    elapsed = time.perf_counter() - t0
    print(f"{Path(args.music).name}: {audio.duration:.2f} s analysed from {audio.start:.2f} s "
          f"(source {audio.source_sample_rate} Hz)")
    if len(beats.beat_times):
        print(f"tempo {beats.tempo:.1f} BPM, {len(beats.beat_times)} beats, {len(beats.downbeat_times)} downbeats "
              f"({beats.beats_per_bar} beats per bar), confidence {beats.pulse_clarity:.2f}")
    print(f"{beats.num_frames} frames at {beats.fps:g} fps; took {elapsed:.2f} s "
          f"({audio.duration / max(elapsed, 1e-9):.0f}x real time)")
    if args.json:
        payload = beats.to_dict() | {"source": str(args.music), "start": audio.start}
        write_atomically(args.json, lambda f: f.write(json.dumps(payload, indent=1).encode("utf-8")))
        print(f"wrote {args.json}")
    if args.plot:
        from PIL import Image

        from .audio.plot import beat_plot

        plot = Image.fromarray(beat_plot(mono, audio.sample_rate, beats))
        write_atomically(args.plot, lambda f: plot.save(f, format=PLOT_FORMATS[args.plot.suffix.lower()]))
        print(f"wrote {args.plot}")
    if args.features:
        from .audio.encoders import SpectralEncoder

        music = SpectralEncoder().encode(mono, audio.sample_rate, args.fps, start=audio.start, analysis=analysis)
        write_atomically(args.features, lambda f: np.savez(f, music=music.features, beats=beats.frame_features,
                                                           fps=args.fps, encoder=music.encoder))
        print(f"wrote {args.features} (music {music.features.shape}, beats {beats.frame_features.shape})")
    return 0


def _add_animate_parser(sub: argparse._SubParsersAction) -> None:
    from .animate import AnimateOptions

    p = sub.add_parser("animate", help="make an image dance to music (mp4 with the music)",
                       description="Animate IMAGE to MUSIC following PROMPT; writes an H.264 + AAC mp4.")
    p.add_argument("--image", required=True, help="reference image (png, jpg, webp, ...; alpha is put on white)")
    p.add_argument("--music", required=True, help="music file (any format FFmpeg reads)")
    _add_prompt_arguments(p)
    p.add_argument("--out", type=Path, default=Path("musedance.mp4"), help="output mp4 (default: %(default)s)")
    add_source_arguments(p, bundle_help="MuseDance bundle (.safetensors); default: the bundled demo model")
    _add_setting_arguments(p)
    p.add_argument("--device", default=AnimateOptions().device, help="auto, cpu, cuda, cuda:1, mps (default auto)")
    _add_memory_arguments(p)
    p.set_defaults(run=run_animate)


def _add_prompt_arguments(p: argparse.ArgumentParser) -> None:
    from .animate import AnimateOptions

    d = AnimateOptions()
    p.add_argument("--prompt", default=d.prompt, help="motion description (default: %(default)r)")
    p.add_argument("--negative-prompt", default=d.negative_prompt, help="what to avoid (default: empty)")


def _add_setting_arguments(p: argparse.ArgumentParser) -> None:
    """The music encoder and the sampler settings (``animate`` and ``animate-batch``; the batch's
    CSV columns carry the same names with underscores)."""
    from .animate import AnimateOptions
    from .pipeline import AnimateSettings
    from .schedulers import SCHEDULERS

    d, o = AnimateSettings(), AnimateOptions()
    p.add_argument("--music-encoder", default=o.music_encoder, metavar="NAME_OR_PATH",
                   help="music encoder: 'spectral', a Hugging Face MERT/HuBERT/wav2vec2/CLAP model folder, or the name "
                        "of a folder in --audio-encoders (default: the encoder the model was trained with)")
    p.add_argument("--audio-encoders", type=Path, action="append", default=[], metavar="DIR",
                   help="a folder of music encoder folders, like ComfyUI's models/audio_encoders (repeatable)")
    p.add_argument("--start", type=float, default=o.start, help="music start in seconds (default 0)")
    p.add_argument("--seconds", type=float, default=o.seconds, help="music length to use (default: to the end)")
    p.add_argument("--frames", type=int, default=d.num_frames, help="frames to make; 0 = as long as the music (default)")
    p.add_argument("--fps", type=float, default=o.fps, help="frames per second (default: the model's, 12 for the demo)")
    p.add_argument("--width", type=int, default=d.width,
                   help="video width, multiple of 8; 0 = the size the model was trained at (default; 64 for the demo)")
    p.add_argument("--height", type=int, default=d.height,
                   help="video height, multiple of 8; 0 = the model's (default)")
    p.add_argument("--steps", type=int, default=d.steps, help="denoising steps (default %(default)s)")
    p.add_argument("--cfg", type=float, default=d.cfg, help="classifier-free guidance scale (default %(default)s)")
    p.add_argument("--prompt-guidance", type=float, default=d.prompt_guidance,
                   help="extra push towards the dance the prompt names, against the same image and music with an "
                        "empty prompt; 0 = off (default %(default)s)")
    p.add_argument("--music-strength", type=float, default=d.music_strength, help="music branch strength (default 1)")
    p.add_argument("--beat-strength", type=float, default=d.beat_strength, help="beat branch strength (default 1)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default %(default)s)")
    p.add_argument("--scheduler", choices=SCHEDULERS, default=d.scheduler, help="sampler (default %(default)s)")
    p.add_argument("--context-length", type=int, default=d.context_length, help="frames per window (default %(default)s)")
    p.add_argument("--context-overlap", type=int, default=d.context_overlap, help="window overlap (default %(default)s)")


def _add_memory_arguments(p: argparse.ArgumentParser) -> None:
    """Precision and memory options (after --device)."""
    from .animate import AnimateOptions
    from .devices import OFFLOAD_MODES
    from .pipeline import AnimateSettings

    d = AnimateSettings()
    p.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default=AnimateOptions().precision,
                   help="weight precision; auto = fp16 on CUDA/MPS, fp32 on CPU (bf16 also runs on the CPU, halving "
                        "memory; fp16 runs there too but far slower); latents and the sampler stay fp32")
    p.add_argument("--vae-tiling", action="store_true",
                   help="decode frames larger than the VAE's tile (512 px for SD 1.5) in overlapping tiles: "
                        "less memory, faint seams possible")
    p.add_argument("--decode-chunk", type=int, default=d.decode_chunk,
                   help="frames per VAE decode call; 1 = least memory (default %(default)s)")
    p.add_argument("--offload", choices=OFFLOAD_MODES, default=d.offload,
                   help="stages = keep only the running stage's modules on the GPU (text encoder + ReferenceNet, "
                        "then the UNet, then the VAE decoder): lower peak memory, a little slower (default none)")
    p.add_argument("--no-upcast-vae", dest="upcast_vae", action="store_false",
                   help="run an fp16 VAE in fp16 (less memory; a frame that overflows is decoded again in fp32)")


def options_from_args(args: argparse.Namespace) -> AnimateOptions:
    """The ``AnimateOptions`` the flags of ``animate`` and ``animate-batch`` give."""
    from .animate import AnimateOptions
    from .checkpoints.assemble import ModelSources
    from .pipeline import AnimateSettings

    settings = AnimateSettings(
        num_frames=args.frames, width=args.width, height=args.height, steps=args.steps, cfg=args.cfg,
        prompt_guidance=args.prompt_guidance, music_strength=args.music_strength, beat_strength=args.beat_strength,
        seed=args.seed, scheduler=args.scheduler, context_length=args.context_length,
        context_overlap=args.context_overlap, decode_chunk=args.decode_chunk, vae_tiling=args.vae_tiling,
        upcast_vae=args.upcast_vae, offload=args.offload)
    sources = ModelSources(bundle=args.bundle, base=args.base, motion=args.motion,
                           animate_anyone=args.animate_anyone, tokenizer=args.tokenizer)
    return AnimateOptions(prompt=args.prompt, negative_prompt=args.negative_prompt, start=args.start,
                          seconds=args.seconds, fps=args.fps, sources=sources, music_encoder=args.music_encoder,
                          audio_encoders=tuple(args.audio_encoders), device=args.device, precision=args.precision,
                          settings=settings)


def run_animate(args: argparse.Namespace) -> int:
    from .animate import animate_files

    animate_files(args.image, args.music, args.out, options_from_args(args))
    return 0


def _add_animate_batch_parser(sub: argparse._SubParsersAction) -> None:
    from .animate import AnimateOptions

    p = sub.add_parser(
        "animate-batch", help="animate every row of a CSV (image, music, prompt, output, settings); "
                              "resumable, shards over 'accelerate launch' processes",
        description="Make one mp4 per row of JOBS.csv. Columns: image, music, prompt, output (required) and any "
                    "of the animate settings by name with underscores (negative_prompt, start, seconds, frames, fps, "
                    "width, height, steps, cfg, prompt_guidance, music_strength, beat_strength, seed, scheduler, "
                    "context_length, context_overlap); a blank cell takes the command-line value. Relative paths "
                    "are relative to the CSV's folder. A row whose output exists is skipped; a row that fails is "
                    "reported and the others go on. Under 'accelerate launch' (or torchrun) process r of N takes "
                    "the rows r, r+N, ... Exit code 0 = every row made or skipped, 1 = a row failed in some "
                    "process, 2 = the CSV or the options are wrong (nothing run).")
    p.add_argument("jobs", type=Path, metavar="JOBS.csv", help="the jobs, one row per video, with a header row")
    _add_prompt_arguments(p)
    add_source_arguments(p, bundle_help="MuseDance bundle (.safetensors); default: the bundled demo model")
    _add_setting_arguments(p)
    p.add_argument("--device", default=AnimateOptions().device,
                   help="auto, cpu, cuda, cuda:1, mps; auto = the process's device from accelerate: cuda:LOCAL_RANK "
                        "under 'accelerate launch', else cuda, mps or cpu (default auto)")
    _add_memory_arguments(p)
    p.add_argument("--report-dir", type=Path, default=None,
                   help="where each process writes its report JOBS.report-RANK.csv (default: the CSV's folder)")
    p.set_defaults(run=run_animate_batch)


def run_animate_batch(args: argparse.Namespace) -> int:
    from .batch import run_batch

    return run_batch(args.jobs, options_from_args(args), report_dir=args.report_dir)


def add_source_arguments(p: argparse.ArgumentParser, bundle_help: str = "MuseDance bundle (.safetensors)") -> None:
    """The model files a command assembles from (see checkpoints/assemble.py)."""
    p.add_argument("--model", "--bundle", dest="bundle", type=Path, default=None, help=bundle_help)
    p.add_argument("--base", type=Path, default=None,
                   help="SD 1.5 base: a single-file checkpoint (.safetensors/.ckpt) or a diffusers folder")
    p.add_argument("--motion", type=Path, default=None, help="AnimateDiff motion module v1/v2/v3 (.safetensors/.ckpt)")
    p.add_argument("--animate-anyone", type=Path, default=None,
                   help="folder with Moore-AnimateAnyone reference_unet.pth, denoising_unet.pth, motion_module.pth")
    p.add_argument("--tokenizer", type=Path, default=None,
                   help="CLIP tokenizer folder (vocab.json + merges.txt); default: the base folder's, else the built-in CLIP tokenizer")


def _add_inspect_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="report what a set of model files assembles into, without running it",
                       description="Read the given files and print which tensors come from which file, what is "
                                   "missing or ignored, and whether the model can run. Exit code 1 if it cannot.")
    add_source_arguments(p)
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    p.set_defaults(run=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    from .checkpoints.assemble import ModelSources, inspect_sources, write_report

    if args.json:
        check_output(args.json, "--json", {"model": args.bundle, "base": args.base, "motion": args.motion,
                                           "tokenizer": args.tokenizer}, example="report.json")
    report = inspect_sources(ModelSources(bundle=args.bundle, base=args.base, motion=args.motion,
                                          animate_anyone=args.animate_anyone, tokenizer=args.tokenizer))
    print(report.format())
    if args.json:
        write_report(report, args.json)
        print(f"wrote {args.json}")
    return 0 if report.ok else 1


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The parser; ``prog`` is how the usage lines name the command (``musedance`` or ``MODULE_PROG``)."""
    parser = argparse.ArgumentParser(prog=prog, description="MuseDance: music-driven image animation.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_beats_parser(sub)
    _add_animate_parser(sub)
    _add_animate_batch_parser(sub)
    _add_inspect_parser(sub)
    return parser


class Stopped(BaseException):
    """SIGTERM or SIGHUP arrived: raised in the main thread so every ``finally`` block (and the
    video writer's clean-up of its hidden temporary file) runs. Not an Exception, so no
    ``except Exception`` swallows it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum, frame) -> None:
    # later signals are ignored while the clean-up runs (a second Ctrl-C must not leave a file)
    for sig in _SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Stopped(signum)


_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def install_signal_handlers() -> None:
    """INT, TERM and HUP stop the command by raising in the main thread (see ``Stopped``)."""
    for sig in _SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:  # nohup's SIG_IGN for HUP is kept
            signal.signal(sig, _on_signal)


class NoteFormatter(logging.Formatter):
    """A note as ``warning: message``, after its collector's label when it has one
    (``[rank 0/2] row 3: warning: ...``); other records as their message."""

    def format(self, record: logging.LogRecord) -> str:
        from .notes import LABEL_ATTR, NOTE_ATTR

        message = getattr(record, NOTE_ATTR, None)
        if message is None:
            return record.getMessage()
        label = getattr(record, LABEL_ATTR, None)
        return f"{label}: warning: {message}" if label else f"warning: {message}"


@contextlib.contextmanager
def console_logging():
    """For the command's run: notes (the ``musedance`` logger) print once each on stderr, as
    ``warning: ...``, and diffusers speaks only of errors. Only the CLI does this, in its own
    process; the library never touches another library's logger. Both are put back afterwards."""
    from .notes import LOGGER_NAME

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(NoteFormatter())
    ours, diffusers = logging.getLogger(LOGGER_NAME), logging.getLogger("diffusers")
    saved = ours.level, ours.propagate, diffusers.level
    ours.addHandler(handler)
    ours.setLevel(logging.WARNING)
    ours.propagate = False  # printed here only, not again by a root handler or logging's last resort
    diffusers.setLevel(logging.ERROR)  # its errors only: the command's output stays its own
    try:
        yield
    finally:
        ours.removeHandler(handler)
        ours.setLevel(saved[0])
        ours.propagate = saved[1]
        diffusers.setLevel(saved[2])


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    for stream in (sys.stdout, sys.stderr):  # a file name with undecodable bytes must not crash a print
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):  # not a TextIOWrapper (a test's capture, say)
            pass
    args = build_parser(prog).parse_args(argv)
    if argv is None:  # run as a program (not called from Python code): signals stop it cleanly
        install_signal_handlers()
    stopped = ("; the unfinished output was deleted and an earlier file of the same name is unchanged. "
               "Run the command again to make it.")
    try:
        with console_logging():
            return args.run(args)
    except MuseDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"error: interrupted (Ctrl-C){stopped}", file=sys.stderr)
        return 128 + signal.SIGINT
    except Stopped as exc:
        print(f"error: stopped by {signal.Signals(exc.signum).name}{stopped}", file=sys.stderr)
        return 128 + exc.signum
