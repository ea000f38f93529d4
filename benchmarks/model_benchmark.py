"""Model speed/memory benchmark: the cost of MuseDance's conditioning, and memory bounded by the window.

(a) Conditioning overhead. One sampling loop (``sample`` below, a line-for-line copy of the
    sampling part of ``MuseDancePipeline.__call__``: DDIM, classifier-free guidance, context
    windows) runs in three variants on one model instance, same size, frames, steps and cfg:

    - ``off``: the same denoising UNet (SD attention + motion modules) with reference, music and
      beat off: ``denoise(..., reference=None, conditions=None)``;
    - ``full``: MuseDance: reference attention + music + beat branches + FiLM; ReferenceNet once
      per video (Moore-AnimateAnyone's way, what the pipeline does);
    - ``magicanimate``: as ``full`` but ReferenceNet reruns at every step
      (``AnimateSettings(reference_every_step=True)``, MagicAnimate's way).

    Variants are interleaved (the order rotates every repeat) after an untimed warm-up call of
    each; every step is timed on its own; ratios are taken within a repeat, then the median over
    repeats. One-time work (reference VAE encode, ReferenceNet, music/beat tokens) is timed
    apart as "setup"; VAE decode of the frames is timed apart and excluded. Before timing, the
    loop is checked against the pipeline itself (tiny model, same seed): same frames.

(b) Memory bounded by the window. The CLI (``python -m musedance_core animate``, random tiny
    model, frames streamed to the mp4) under ``/usr/bin/time -v`` for a 1-frame (fixed cost), a short and a long video
    with 16-frame windows (overlap 4), interleaved: peak RSS ("Maximum resident set size") and
    wall time per frame.

    .venv/bin/python -m benchmarks.model_benchmark [--quick] [--threads 1] [--profile CASE] [--markdown out.md] [--json out.json]

On a machine shared with other jobs, `--threads 1` gives steadier ratios: with two threads, OpenMP
waits make steps with many small ops swing widely when another process takes a core.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Generator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.report_utils import command_line, machine_info, publish
from musedance_core.images import fit_image
from musedance_core.models.config import preset
from musedance_core.models.musedance import MuseDanceModel
from musedance_core.pipeline import AnimateSettings, MuseDancePipeline
from musedance_core.schedulers import context_windows, make_scheduler
from musedance_core.types import BeatTrack, MusicFeatures

REPO_ROOT = Path(__file__).resolve().parents[1]

THREADS_AT_IMPORT = torch.get_num_threads()
OFF, FULL, MAGICANIMATE = "off", "full", "magicanimate"
VARIANTS = (OFF, FULL, MAGICANIMATE)
SEED = 0
CFG = 3.5
CONTEXT_LENGTH = 16
CONTEXT_OVERLAP = 4
DECODE_CHUNK = 8  # the pipeline's default
FULL_TARGET = 1.25  # full / off, per denoising step
RSS_TARGET = 1.3  # RSS(long) / RSS(short)
TIME_PER_FRAME_TOLERANCE = 0.10
SD15_BUILD_MARGIN_GB = 2.0  # free memory wanted beyond the measured need before building sd15
SD15_BUILD_NEED_GB = 15.5  # peak RSS of building the sd15 model in fp32 (measured here)
CLI_FPS = 12.0
PROFILE_FRAMES = 4
PROFILE_ROUNDS = 3
PROFILE_STACK_DEPTH = 16
BASELINE_FRAMES = 1  # a 1-frame CLI run measures the fixed cost


@dataclass(frozen=True)
class Case:
    """One model-level measurement: ``preset`` at ``size``x``size``, ``frames`` frames, ``steps`` steps."""

    name: str
    preset: str
    size: int
    frames: int
    steps: int
    repeats: int


DEFAULT_CASES = (
    Case("tiny-128", "tiny", 128, 16, 10, 1),
    Case("tiny-256", "tiny", 256, 8, 3, 1),
    Case("sd15-128", "sd15", 128, 8, 3, 2),
)
QUICK_CASES = (Case("tiny-128", "tiny", 128, 16, 2, 1),)


@dataclass(frozen=True)
class MemoryRun:
    """CLI runs compared in (b)."""

    short_frames: int
    long_frames: int
    size: int
    steps: int
    repeats: int


DEFAULT_MEMORY = MemoryRun(32, 256, 128, 2, 2)
QUICK_MEMORY = MemoryRun(32, 96, 64, 2, 1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny model only, 2 steps, one repeat; CLI 32 vs 96 frames at 64x64")
    parser.add_argument("--cases", default=None,
                        help=f"comma-separated subset of {', '.join(c.name for c in DEFAULT_CASES)}, or "
                             "NAME=PRESET:SIZE:FRAMES:STEPS:REPEATS for your own (default: all)")
    parser.add_argument("--repeats", type=int, default=None, help="override every case's repeats")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads, also for the CLI runs (default: torch's); 1 is steadier on a shared machine")
    parser.add_argument("--no-memory", action="store_true", help="skip (b), the CLI memory runs")
    parser.add_argument("--no-conditioning", action="store_true", help="skip (a), the conditioning overhead")
    parser.add_argument("--profile", default=None, metavar="CASE",
                        help="also profile one off and one full UNet call of CASE (torch.profiler)")
    parser.add_argument("--markdown", type=Path, default=None, help="write the Markdown section here")
    parser.add_argument("--json", type=Path, default=None, help="write all numbers here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = select_cases(args)
    load_start = os.getloadavg()
    started = time.perf_counter()
    report: dict = {"command": command_line(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                    "machine": machine_info(mkldnn=torch.backends.mkldnn.is_available()), "load_average_start": [round(x, 2) for x in load_start],
                    "equivalence": None, "cases": [], "profile": None, "memory": None}
    if not args.no_conditioning:
        report["equivalence"] = check_against_pipeline()
        print(f"loop vs pipeline: {report['equivalence']}", file=sys.stderr)
        for case in cases:
            report["cases"].append(run_case(case, profile=args.profile == case.name))
            gc.collect()
    if not args.no_memory:
        report["memory"] = run_memory(QUICK_MEMORY if args.quick else DEFAULT_MEMORY)
    report["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    publish(render_markdown(report), report, args.markdown, args.json)
    return 0


def select_cases(args: argparse.Namespace) -> list[Case]:
    base = QUICK_CASES if args.quick else DEFAULT_CASES
    if args.cases:
        known = {c.name: c for c in DEFAULT_CASES + QUICK_CASES}
        chosen = []
        for item in (x.strip() for x in args.cases.split(",") if x.strip()):
            if "=" in item:
                name, spec = item.split("=", 1)
                p, size, frames, steps, repeats = spec.split(":")
                chosen.append(Case(name, p, int(size), int(frames), int(steps), int(repeats)))
            elif item in known:
                chosen.append(known[item])
            else:
                raise SystemExit(f"error: --cases names unknown case '{item}'; known: {sorted(known)}")
        base = tuple(chosen)
    if args.repeats:
        base = tuple(Case(c.name, c.preset, c.size, c.frames, c.steps, args.repeats) for c in base)
    return list(base)


# ---------------------------------------------------------------- inputs and the sampling loop


@dataclass
class Inputs:
    text: torch.Tensor  # (2, 77, C): negative prompt, prompt
    image: torch.Tensor  # (1, 3, H, W) in [-1, 1]
    music: torch.Tensor  # (1, F, music_dim)
    beats: torch.Tensor  # (1, F, beat_dim)


def test_image(size: int) -> np.ndarray:
    """A deterministic RGB test picture [size, size, 3] in 0..1: a gradient with a disc."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    disc = ((xx - 0.5) ** 2 + (yy - 0.45) ** 2 < 0.08).astype(np.float32)
    return np.stack([xx, yy, 0.5 * (1 - disc) + disc * 0.9], axis=-1)


def feature_arrays(cfg, frames: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    return (rng.standard_normal((frames, cfg.music_dim)).astype(np.float32),
            rng.uniform(0, 1, (frames, cfg.beat_dim)).astype(np.float32))


def make_inputs(model: MuseDanceModel, size: int, frames: int) -> Inputs:
    cfg = model.config
    vocab = int(cfg.text_encoder["vocab_size"])
    ids = torch.randint(0, vocab, (2, 77), generator=torch.Generator().manual_seed(SEED))
    with torch.no_grad():
        text = model.text_encoder(input_ids=ids).last_hidden_state.to(model.dtype)
    music, beats = feature_arrays(cfg, frames)
    return Inputs(text, fit_image(test_image(size), size, size),
                  torch.from_numpy(music)[None], torch.from_numpy(beats)[None])


@torch.no_grad()
def sampler(model: MuseDanceModel, variant: str, inputs: Inputs, size: int,
            steps: int) -> Generator[tuple[float, float], None, torch.Tensor]:
    """The pipeline's sampling loop (``MuseDancePipeline.__call__`` after the input checks), as a
    generator so that variants can run step by step side by side.

    Yields (wall, CPU) seconds of the one-time setup, then of each step; returns the final latents
    [1, 4, F, h, w]. ``variant`` picks what conditions the UNet (module docstring).
    """
    device = model.device
    generator = torch.Generator("cpu").manual_seed(SEED)
    cond = slice(1, 2)  # cfg > 1: row 0 = negative prompt (unconditional), row 1 = prompt
    text = inputs.text
    frames = inputs.music.shape[1]
    bank = conditions = ref_latents = None
    t0, c0 = time.perf_counter(), time.process_time()
    if variant != OFF:
        ref_latents = model.encode_images(inputs.image.to(device))  # (1, 4, h, w)
        if variant == FULL:
            bank = model.encode_reference(ref_latents, text[cond])
        conditions = model.frame_conditions(inputs.music.to(device), inputs.beats.to(device))
    yield time.perf_counter() - t0, time.process_time() - c0

    scheduler = make_scheduler("ddim", model.config.scheduler)
    scheduler.set_timesteps(steps, device=device)
    h = w = size // model.vae_scale_factor
    shape = (1, model.config.unet["in_channels"], frames, h, w)
    latents = torch.randn(shape, generator=generator, dtype=torch.float32).to(device) * scheduler.init_noise_sigma
    windows = context_windows(frames, CONTEXT_LENGTH, CONTEXT_OVERLAP)
    for t in scheduler.timesteps:
        t0, c0 = time.perf_counter(), time.process_time()
        if variant == MAGICANIMATE:
            bank = model.encode_reference(ref_latents, text[cond])
        prediction = torch.zeros_like(latents)
        weight = torch.zeros(frames, device=device)
        for window in windows:
            x = scheduler.scale_model_input(latents[:, :, window.frames], t)
            batch = x.expand(text.shape[0], -1, -1, -1, -1)
            if variant == OFF:
                out = model.denoise(batch, t, text).float()
            else:
                out = model.denoise(batch, t, text, reference=bank, conditions=conditions.frames(window.frames),
                                    cond=cond, music_scale=1.0, beat_scale=1.0).float()
            uncond, full = out.chunk(2)
            out = uncond + CFG * (full - uncond)
            wts = window.weights.to(device)
            prediction[:, :, window.frames] += out * wts[None, None, :, None, None]
            weight[window.frames] += wts
        prediction = prediction / weight[None, None, :, None, None]
        latents = scheduler.step(prediction, t, latents).prev_sample
        yield time.perf_counter() - t0, time.process_time() - c0
    return latents


def finish(gen: Generator[tuple[float, float], None, torch.Tensor]) -> torch.Tensor:
    """Run a ``sampler`` generator to its end; its final latents."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def check_against_pipeline(size: int = 64, frames: int = 8, steps: int = 2) -> dict:
    """Run ``sample`` and ``MuseDancePipeline`` (tiny model, same seed): max |difference| of the frames."""
    torch.manual_seed(SEED)
    model = MuseDanceModel(preset("tiny")).eval()
    pipe = MuseDancePipeline(model)
    music, beats = feature_arrays(model.config, frames)
    fps = model.config.fps
    mf = MusicFeatures(music, fps, model.config.music_encoder, 0.0, frames / fps, 22050)
    bt = BeatTrack(np.zeros(0), np.zeros(0), 120.0, 4, beats, fps, frames / fps, np.zeros(frames, np.float32))
    image = test_image(size)
    with torch.no_grad():
        text = model.encode_prompt(["", "dances to the beat"])
    inputs = Inputs(text, fit_image(image, size, size), torch.from_numpy(music)[None], torch.from_numpy(beats)[None])
    result = {}
    for variant, every_step in ((FULL, False), (MAGICANIMATE, True)):
        settings = AnimateSettings(num_frames=frames, width=size, height=size, steps=steps, cfg=CFG, seed=SEED,
                                   context_length=CONTEXT_LENGTH, context_overlap=CONTEXT_OVERLAP,
                                   reference_every_step=every_step)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = pipe(image, mf, bt, "dances to the beat", "", settings).frames
        with torch.no_grad():
            ours = pipe.decode(finish(sampler(model, variant, inputs, size, steps)))
        result[variant] = float((expected - ours).abs().max())
    result["setting"] = f"tiny, {size}x{size}, {frames} frames, {steps} steps"
    return result


# ---------------------------------------------------------------- (a) conditioning overhead


def run_case(case: Case, profile: bool = False) -> dict:
    print(f"[{case.name}] building {case.preset} ...", file=sys.stderr, flush=True)
    cfg = preset(case.preset)
    row: dict = {"case": asdict(case), "skipped": None}
    if case.preset == "sd15":
        available = memory_available_gb()
        if available < SD15_BUILD_NEED_GB + SD15_BUILD_MARGIN_GB:
            row["skipped"] = (f"only {available:.1f} GB of memory available; building sd15 in fp32 needs "
                              f"~{SD15_BUILD_NEED_GB:.0f} GB")
            return row
    reset_peak_rss()
    t0 = time.perf_counter()
    torch.manual_seed(SEED)
    model = MuseDanceModel(cfg).eval().requires_grad_(False)
    row["build_s"] = round(time.perf_counter() - t0, 1)
    row["build_peak_rss_gb"] = round(peak_rss_gb(), 2)
    row["rss_after_build_gb"] = round(current_rss_gb(), 2)
    row["params"] = {k: int(v) for k, v in model.parameter_counts().items()}
    inputs = make_inputs(model, case.size, case.frames)
    reset_peak_rss()

    with torch.no_grad():  # warm-up: one UNet call of each kind at the timed shapes (allocator, oneDNN)
        ref_latents = model.encode_images(inputs.image)
        bank = model.encode_reference(ref_latents, inputs.text[1:2])
        conditions = model.frame_conditions(inputs.music, inputs.beats)
        h = case.size // model.vae_scale_factor
        n = min(case.frames, CONTEXT_LENGTH)
        x = torch.randn(2, 4, n, h, h)
        t = torch.tensor(500.0)
        model.denoise(x, t, inputs.text)
        model.denoise(x, t, inputs.text, reference=bank, conditions=conditions.frames(slice(0, n)), cond=slice(1, 2))
    if profile:  # a few frames are enough: every op's cost is per frame row except the temporal attention
        row["profile_frames"] = k = min(n, PROFILE_FRAMES)
        row["profile"] = profile_calls(model, x[:, :, :k].contiguous(), t, inputs.text, bank,
                                       conditions.frames(slice(0, k)))
    del bank, conditions

    runs: list[dict[str, list[tuple[float, float]]]] = []  # per repeat: {variant: [setup, steps...]}, (wall, cpu)
    decode_s = []
    pipe = MuseDancePipeline(model)
    for r in range(case.repeats):
        gens = {v: sampler(model, v, inputs, case.size, case.steps) for v in VARIANTS}
        times: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
        for i in range(case.steps + 1):  # setup, then step by step, the order rotating
            k = (r + i) % len(VARIANTS)
            for variant in VARIANTS[k:] + VARIANTS[:k]:
                times[variant].append(next(gens[variant]))
        latents = {v: finish(g) for v, g in gens.items()}
        runs.append(times)
        print(f"[{case.name}] repeat {r + 1}/{case.repeats}: " + "; ".join(
            f"{v} setup {ts[0][0]:.2f} s, steps (wall/cpu) {' '.join(f'{w:.2f}/{c:.2f}' for w, c in ts[1:])}"
            for v, ts in times.items()),
            file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        with torch.no_grad():
            pipe.decode(latents[FULL], DECODE_CHUNK)
        decode_s.append(time.perf_counter() - t0)
    row["sampling_peak_rss_gb"] = round(peak_rss_gb(), 2)
    row["runs"] = runs
    row["decode_s"] = decode_s
    row["summary"] = summarize_case(case, runs, decode_s)
    del model, pipe, inputs
    return row


def summarize_case(case: Case, runs: list[dict[str, list[tuple[float, float]]]], decode_s: list[float]) -> dict:
    """Medians over every (repeat, step); ratios of steps that ran side by side (same repeat and step).

    Wall time and CPU time (``time.process_time``: the process's CPU seconds, which other jobs on
    the machine do not inflate as much as wall time when torch runs one thread).
    """
    out: dict = {}
    for kind, i in (("", 0), ("_cpu", 1)):
        steps = {v: [x[i] for run in runs for x in run[v][1:]] for v in VARIANTS}
        setup = {v: statistics.median(run[v][0][i] for run in runs) for v in VARIANTS}
        step = {v: statistics.median(steps[v]) for v in VARIANTS}
        paired = (lambda a, b, steps=steps: [x / y for x, y in zip(steps[a], steps[b])])
        total = {v: setup[v] + case.steps * step[v] for v in VARIANTS}
        out |= {
            f"step{kind}_s": step,
            f"setup{kind}_s": setup,
            f"full_over_off{kind}": statistics.median(paired(FULL, OFF)),
            f"full_over_off{kind}_spread": [min(paired(FULL, OFF)), max(paired(FULL, OFF))],
            f"magicanimate_over_off{kind}": statistics.median(paired(MAGICANIMATE, OFF)),
            f"magicanimate_over_full{kind}": statistics.median(paired(MAGICANIMATE, FULL)),
            f"full_over_off{kind}_total": total[FULL] / total[OFF],
        }
    out["decode_s"] = statistics.median(decode_s)
    out["decode_s_per_frame"] = out["decode_s"] / case.frames
    return out


def profile_calls(model, x, t, text, bank, conditions, rounds: int = PROFILE_ROUNDS, top: int = 12) -> list[dict]:
    """Self CPU time per (op, input shapes, calling line) of one off and one full UNet call.

    One thread (stable on a shared machine), ``rounds`` alternating off/full calls, median per
    key; returns the totals and the keys with the largest full - off increases. The calling line
    is the innermost musedance_core frame (else diffusers frame) of the op's Python stack.
    """
    from torch._C._profiler import _ExperimentalConfig
    from torch.profiler import ProfilerActivity, profile

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    samples: dict[str, list[dict]] = {OFF: [], FULL: []}
    try:
        for _ in range(rounds):
            for variant in (OFF, FULL):
                kwargs = {} if variant == OFF else {"reference": bank, "conditions": conditions, "cond": slice(1, 2)}
                with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_stack=True,
                                              experimental_config=_ExperimentalConfig(verbose=True)) as prof:
                    model.denoise(x, t, text, **kwargs)
                totals: dict[tuple, float] = {}
                for e in prof.key_averages(group_by_input_shape=True, group_by_stack_n=PROFILE_STACK_DEPTH):
                    if "::" not in e.key:  # Python-function events: their time is in the ops below them
                        continue
                    key = (e.key, str(e.input_shapes), _calling_line(e.stack))
                    totals[key] = totals.get(key, 0.0) + e.self_cpu_time_total / 1e3
                samples[variant].append(totals)
    finally:
        torch.set_num_threads(threads)
    median = {v: {k: statistics.median(run.get(k, 0.0) for run in samples[v])
                  for k in set().union(*samples[v])} for v in (OFF, FULL)}
    keys = set(median[OFF]) | set(median[FULL])
    rows = [{"op": k[0], "shapes": k[1], "line": k[2], "off_ms": round(median[OFF].get(k, 0.0), 1),
             "full_ms": round(median[FULL].get(k, 0.0), 1)} for k in keys]
    rows.sort(key=lambda r: -abs(r["full_ms"] - r["off_ms"]))
    summary = [{"op": "TOTAL (median of calls)", "shapes": "", "line": "",
                "off_ms": round(statistics.median(sum(run.values()) for run in samples[OFF]), 1),
                "full_ms": round(statistics.median(sum(run.values()) for run in samples[FULL]), 1)}]
    return summary + rows[:top]


def _calling_line(stack: list[str] | None) -> str:
    """Innermost two project frames: 'models/attention.py:63 attend ← models/attention.py:102 __call__'."""
    for marker in ("musedance_core/", "diffusers/"):
        found = []
        for frame in stack or []:
            if marker in frame:
                where, _, func = frame.split(marker, 1)[1].partition(": ")
                path, _, line = where.rstrip(")").partition("(")
                prefix = "" if marker == "musedance_core/" else "diffusers/"
                found.append(f"{prefix}{path}:{line} {func}")
                if len(found) == 2:  # the innermost two, e.g. attend() and the processor line calling it
                    break
        if found:
            return " ← ".join(found)
    return ""


# ---------------------------------------------------------------- (b) memory bounded by the window


def run_memory(spec: MemoryRun) -> dict:
    from PIL import Image

    from musedance_core.audio.io import Audio, save_audio
    from musedance_core.audio.synth import Groove, render_groove

    seconds = float(np.ceil(spec.long_frames / CLI_FPS + 4.0))
    lengths = (BASELINE_FRAMES, spec.short_frames, spec.long_frames)
    runs: dict[int, list[dict]] = {n: [] for n in lengths}
    with tempfile.TemporaryDirectory(prefix="musedance-bench-") as tmp:
        tmp_path = Path(tmp)
        track = render_groove(Groove(bpm=120, seconds=seconds))
        music = save_audio(tmp_path / "groove.wav", Audio(track.samples[None], track.sample_rate, track.sample_rate))
        image = tmp_path / "image.png"
        Image.fromarray((test_image(256) * 255).astype(np.uint8)).save(image)
        for r in range(spec.repeats):
            for frames in lengths[r % 3:] + lengths[: r % 3]:
                cmd = cli_command(image, music, frames, spec, tmp_path / f"out{frames}.mp4")
                result = timed_run(cmd)
                result["command"] = shlex.join(cmd)
                runs[frames].append(result)
                print(f"[cli] {frames} frames: {result['max_rss_mb']:.0f} MB, {result['wall_s']:.1f} s "
                      f"(CLI says {result['cli_took_s']} s)", file=sys.stderr, flush=True)
    out = {"spec": asdict(spec), "music_seconds": seconds, "runs": {str(k): v for k, v in runs.items()}}
    summary = {}
    for frames, rs in runs.items():
        windows = context_windows(frames, CONTEXT_LENGTH, CONTEXT_OVERLAP)
        summary[str(frames)] = {
            "max_rss_mb": statistics.median(r["max_rss_mb"] for r in rs),
            "wall_s": statistics.median(r["wall_s"] for r in rs),
            "cli_took_s": statistics.median(r["cli_took_s"] for r in rs),
            "windows": len(windows),
            "window_frames_per_frame": len(windows) * min(CONTEXT_LENGTH, frames) / frames,
        }
    base = summary[str(BASELINE_FRAMES)]
    for frames in (spec.short_frames, spec.long_frames):
        s = summary[str(frames)]
        s["wall_s_per_frame"] = s["wall_s"] / frames
        s["cli_s_per_frame"] = s["cli_took_s"] / frames
        # what a frame costs beyond the fixed part (imports, model, audio analysis), from the 1-frame run
        s["variable_s_per_frame"] = (s["wall_s"] - base["wall_s"]) / (frames - BASELINE_FRAMES)
        s["variable_s_per_window_frame"] = (s["wall_s"] - base["wall_s"]) / (s["windows"] * CONTEXT_LENGTH)
    short, long = summary[str(spec.short_frames)], summary[str(spec.long_frames)]
    out["summary"] = summary
    out["rss_ratio"] = long["max_rss_mb"] / short["max_rss_mb"]
    out["wall_per_frame_ratio"] = long["wall_s_per_frame"] / short["wall_s_per_frame"]
    out["variable_per_frame_ratio"] = long["variable_s_per_frame"] / short["variable_s_per_frame"]
    out["variable_per_window_frame_ratio"] = long["variable_s_per_window_frame"] / short["variable_s_per_window_frame"]
    out["model"] = runs[spec.short_frames][0]["model"]
    out["command_short"] = runs[spec.short_frames][0]["command"]
    return out


def cli_command(image: Path, music: Path, frames: int, spec: MemoryRun, out: Path) -> list[str]:
    return ["/usr/bin/time", "-v", sys.executable, "-m", "musedance_core", "animate", "--image", str(image),
            "--music", str(music), "--frames", str(frames), "--fps", f"{CLI_FPS:g}", "--width", str(spec.size),
            "--height", str(spec.size), "--steps", str(spec.steps), "--context-length", str(CONTEXT_LENGTH),
            "--context-overlap", str(CONTEXT_OVERLAP), "--out", str(out)]


def timed_run(cmd: list[str]) -> dict:
    """Run ``cmd`` (starting with /usr/bin/time -v); peak RSS, wall time and the CLI's own timing."""
    env = dict(os.environ)
    if torch.get_num_threads() != THREADS_AT_IMPORT:  # --threads: the same for the CLI runs
        env |= {"OMP_NUM_THREADS": str(torch.get_num_threads()), "MKL_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    err, out = proc.stderr, proc.stdout
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", err).group(1)
    seconds = 0.0
    for part in wall.split(":"):
        seconds = seconds * 60 + float(part)
    took = re.search(r"took ([\d.]+) s", out + err)
    model = "random tiny model" if "RANDOMLY INITIALISED" in err else "demo bundle"
    return {"max_rss_mb": rss / 1024, "wall_s": seconds, "cli_took_s": float(took.group(1)) if took else None,
            "model": model}


# ---------------------------------------------------------------- machine and memory helpers


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def current_rss_gb() -> float:
    return _status_kb("VmRSS") / 2**20


def peak_rss_gb() -> float:
    return _status_kb("VmHWM") / 2**20


def reset_peak_rss() -> None:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def memory_available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return float("inf")


# ---------------------------------------------------------------- report


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def render_markdown(report: dict) -> str:
    m = report["machine"]
    v = m["versions"]
    lines = [
        "### Model speed and memory",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}; git: {m['git'] or 'no commit'}; total {report['total_seconds'] / 60:.1f} min  ",
        (f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['memory_gb']} GiB RAM, no GPU; "
        f"torch {v['torch']} ({m['torch_threads']} thread{'s' if m['torch_threads'] != 1 else ''}, also for the CLI runs; "
        f"oneDNN {'on' if m['mkldnn'] else 'off'}), "
        f"diffusers {v['diffusers']}, Python {v['python']}; fp32; random weights. The machine is shared with "
        f"other CPU-heavy jobs (load average {report['load_average_start'][0]:.1f} at the start, "
        f"{report['load_average_end'][0]:.1f} at the end), so read ratios, not absolute seconds."),
        "",
    ]
    eq = report.get("equivalence")
    if report["cases"]:
        lines += [
            "**(a) Cost of the MuseDance conditioning.** One sampling loop, a copy of the pipeline's (DDIM, "
            f"cfg {CFG} with both halves in one batch, windows of {CONTEXT_LENGTH}/{CONTEXT_OVERLAP}), three "
            "variants on one model: *off* = the same denoising UNet with reference, music and beat off "
            "(`denoise(reference=None, conditions=None)`); *full* = MuseDance (reference attention, music and "
            "beat cross-attention, beat FiLM; ReferenceNet once per video); *MagicAnimate* = full with "
            "ReferenceNet rerun every step. The three run side by side step by step (order rotated every step), "
            "after a warm-up call of each; s/step = median wall seconds over all steps of all repeats; a ratio = "
            "median over (repeat, step) of the ratio of steps that ran back to back (min–max in brackets), from "
            "wall time and from CPU time (`time.process_time`, which other jobs inflate less). *Setup* = "
            "reference VAE encode + ReferenceNet (full only) + music/beat tokens, once per video (wall s). VAE "
            "decode is excluded and shown apart."
            + (f" The loop reproduces `MuseDancePipeline` ({eq['setting']}): max |Δ frame| "
               f"{eq[FULL]:.1e} (full), {eq[MAGICANIMATE]:.1e} (MagicAnimate)." if eq else ""),
            "",
            ("| case | frames × steps | off s/step | full s/step | MagicAnimate s/step | **full / off** wall | "
             "**full / off** CPU | MagicAnimate / off wall, CPU | MagicAnimate / full wall, CPU | full setup s | "
             "full / off wall incl. setup | VAE decode s (per frame) |"),
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in report["cases"]:
            c = row["case"]
            label = f"{c['name']} ({c['size']}², {c['repeats']} repeat{'s' if c['repeats'] != 1 else ''})"
            if row["skipped"]:
                lines.append(f"| {label} | skipped: {row['skipped']} |||||||||||")
                continue
            s = row["summary"]
            spread = (lambda k, s=s: f"({s[k][0]:.2f}–{s[k][1]:.2f})")
            lines.append(
                f"| {label} | {c['frames']} × {c['steps']} | {s['step_s'][OFF]:.2f} | {s['step_s'][FULL]:.2f} | "
                f"{s['step_s'][MAGICANIMATE]:.2f} | **{s['full_over_off']:.2f}×** {spread('full_over_off_spread')} | "
                f"**{s['full_over_off_cpu']:.2f}×** {spread('full_over_off_cpu_spread')} | "
                f"{s['magicanimate_over_off']:.2f}×, {s['magicanimate_over_off_cpu']:.2f}× | "
                f"{s['magicanimate_over_full']:.2f}×, {s['magicanimate_over_full_cpu']:.2f}× | "
                f"{s['setup_s'][FULL]:.2f} | {s['full_over_off_total']:.2f}× | "
                f"{s['decode_s']:.2f} ({s['decode_s_per_frame']:.3f}) |")
        done = [r for r in report["cases"] if not r["skipped"]]
        lines += ["", f"Target full / off ≤ {FULL_TARGET}× per step (wall, CPU): " + "; ".join(
            f"{r['case']['name']} {_verdict(r['summary']['full_over_off'] <= FULL_TARGET)}, "
            f"{_verdict(r['summary']['full_over_off_cpu'] <= FULL_TARGET)} "
            f"({r['summary']['full_over_off']:.2f}×, {r['summary']['full_over_off_cpu']:.2f}×)" for r in done) + "."]
        mem = [r for r in report["cases"] if not r["skipped"]]
        if mem:
            lines += ["", "Model memory (this process, VmHWM reset before each phase):", "",
                      "| case | parameters | build peak RSS GB | RSS after build GB | sampling peak RSS GB |",
                      "|---|---:|---:|---:|---:|"]
            for r in mem:
                p = r["params"]
                lines.append(f"| {r['case']['name']} | {sum(p.values()) / 1e6:.1f} M (ReferenceNet "
                             f"{p['reference_unet'] / 1e6:.1f} M, denoising UNet {p['denoising_unet'] / 1e6:.1f} M) "
                             f"| {r['build_peak_rss_gb']:.2f} | {r['rss_after_build_gb']:.2f} | "
                             f"{r['sampling_peak_rss_gb']:.2f} |")
        for r in report["cases"]:
            if r.get("profile"):
                lines += ["", (f"Profile of one UNet call, {r['case']['name']} with {r['profile_frames']} frames "
                          "(torch.profiler, 1 thread, self CPU time by op, input shapes and calling line, median of "
                          f"{PROFILE_ROUNDS} alternating calls; largest differences full − off):"), "",
                          "| op | input shapes | called from | off ms | full ms |", "|---|---|---|---:|---:|"]
                for p in r["profile"]:
                    lines.append(f"| {p['op']} | `{p['shapes']}` | {p['line']} | {p['off_ms']:.1f} | "
                                 f"{p['full_ms']:.1f} |")
    mem = report.get("memory")
    if mem:
        sp = mem["spec"]
        short, long = mem["summary"][str(sp["short_frames"])], mem["summary"][str(sp["long_frames"])]
        lines += [
            "",
            (f"**(b) Memory bounded by the window.** The CLI with the {mem['model']}, {sp['size']}×{sp['size']}, "
            f"{sp['steps']} steps, fps {CLI_FPS:g}, windows {CONTEXT_LENGTH}/{CONTEXT_OVERLAP}, frames streamed "
            f"to the mp4, a {mem['music_seconds']:.0f} s synthetic groove (120 BPM), under `/usr/bin/time -v`; "
            f"runs interleaved, median of {sp['repeats']}. Short run:  "),
            f"`{mem['command_short']}`",
            "",
            ("| frames | windows | window-frames per frame | peak RSS MB | wall s | wall s / frame | "
            "variable s / frame | variable s / window-frame |"),
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        base = mem["summary"][str(BASELINE_FRAMES)]
        lines.append(f"| {BASELINE_FRAMES} (fixed cost) | {base['windows']} | – | {base['max_rss_mb']:.0f} | "
                     f"{base['wall_s']:.1f} | – | – | – |")
        for frames, s in ((sp["short_frames"], short), (sp["long_frames"], long)):
            lines.append(f"| {frames} | {s['windows']} | {s['window_frames_per_frame']:.2f} | {s['max_rss_mb']:.0f} "
                         f"| {s['wall_s']:.1f} | {s['wall_s_per_frame']:.3f} | {s['variable_s_per_frame']:.3f} "
                         f"| {s['variable_s_per_window_frame']:.4f} |")
        lines += [
            "",
            (f"RSS({sp['long_frames']}) / RSS({sp['short_frames']}) = **{mem['rss_ratio']:.3f}** (target ≤ {RSS_TARGET}: "
            f"{_verdict(mem['rss_ratio'] <= RSS_TARGET)}).  "),
            (f"Time per frame {sp['long_frames']} / {sp['short_frames']}: wall **{mem['wall_per_frame_ratio']:.3f}** "
            f"(target within ±{TIME_PER_FRAME_TOLERANCE:.0%}: "
            f"{_verdict(abs(mem['wall_per_frame_ratio'] - 1) <= TIME_PER_FRAME_TOLERANCE)}); without the fixed cost "
            f"(wall − the {BASELINE_FRAMES}-frame run's wall) **{mem['variable_per_frame_ratio']:.3f}** per frame "
            f"({_verdict(abs(mem['variable_per_frame_ratio'] - 1) <= TIME_PER_FRAME_TOLERANCE)}) and "
            f"{mem['variable_per_window_frame_ratio']:.3f} per denoised window-frame. The short video pays the fixed "
            "cost (imports, model build, audio analysis of the whole file) over fewer frames and denoises more "
            "overlap per frame (column 3); both favour the long video."),
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
