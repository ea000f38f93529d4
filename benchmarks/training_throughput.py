"""Training throughput: does data loading limit the step rate, and what does an SD 1.5 stage-2 step cost.

(a) Data loading alone. ``make_loader`` (the trainer's DataLoader: ``SampleSet`` + ``GlobalBatches``)
    over SynthDance sets made for the run (``training/synth_dance.py``, 32-frame clips) at 256x256
    and 512x512, in stage-1 ("frame": a target frame + a reference) and stage-2 ("clip": 16 frames +
    reference, music, beats) modes, batch 2 and 4, with 0, 1 and 2 worker processes; plus the
    sd15_stage2.yaml shape (512x512, ``num_frames`` of the config, batch 1), also on a copy of the
    512 set with camera-like noise on every frame (SynthDance's flat colours deflate ~150:1, real
    footage does not; full run only). Steady state: the first
    batch (worker start-up, timed apart) and the batches the workers had prefetched by then are
    skipped, the next ones timed; the worker count is rotated between repeats; median over repeats.
(b) The step rate with loading. The trainer's step (``TrainingStep`` forward, backward, AdamW) on a
    random tiny model at the demo's training size (64x64; stage 2 batch 4 x 16 frames, stage 1
    batch 16) in three variants, interleaved round by round: the batch already in memory (compute
    only), loading in the loop (0 workers) and loading ahead of it (2 workers). The time spent
    waiting in ``next(loader)`` is timed apart: that is what data loading adds to a step.
(c) FLOPs of one SD 1.5 stage-2 step. ``MuseDanceModel(sd15_config())`` built on the meta device
    (no memory, no weights), ``torch.utils.flop_counter.FlopCounterMode`` around one
    ``TrainingStep`` forward + ``loss.backward()`` with the parts sd15_stage2.yaml trains, at its
    ``num_frames`` and ``batch_size``, 512x512, one conditioned sample (VAE encode of the clip and
    the reference, CLIP text encoder, ReferenceNet once, music/beat branches, denoising UNet
    forward, backward to the trained parts; with gradient checkpointing, the recomputation).
    FlopCounterMode counts matmuls, convolutions and attention (2 FLOPs per multiply-add), not
    element-wise ops. On the meta device attention runs as the math path (counted as bmm).
(d) CPU sanity check of the FLOP count: an SD 1.5-shaped denoising UNet (real random weights, the
    MuseDance processors) timed on this CPU at 64, 128 and 256 px x 8 frames, against the FLOPs the
    meta count gives for the same calls and against a plain fp32 matmul on the same threads. (On the
    CPU, FlopCounterMode does not count ``_scaled_dot_product_flash_attention_for_cpu``: hence the
    meta count.)
(e) The 8-GPU estimate: per-step time = FLOPs / (peak x MFU), wall time = steps x per-step time /
    DDP efficiency, for the config as written under ``accelerate launch`` on 8 GPUs. An estimate
    from stated assumptions, not a measurement.

    .venv/bin/python -m benchmarks.training_throughput [--quick] [--threads N] [--data-dir DIR] [--markdown out.md] [--json out.json]
    .venv/bin/python -m benchmarks.training_throughput --from-json out.json [--markdown out.md]   # re-render only

``--quick`` (~1.5 min on 2 cores): smaller sets, workers 0 and 2, one repeat, stage 2 only, no CPU
check. The full run takes ~11 min. The machine this was written on is shared with other jobs: read ratios, not absolute seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.report_utils import command_line, machine_info, publish
from musedance_core.training.config import load_train_config
from musedance_core.training.data import ClipSampler, make_loader, read_manifest

REPO_ROOT = Path(__file__).resolve().parents[1]

STAGE2_CONFIG = REPO_ROOT / "training" / "configs" / "sd15_stage2.yaml"
PAPER_VIDEOS = 2904  # MuseDance paper: 2,904 dance videos with their music and captions
A100_BF16_TFLOPS = 312.0  # A100 SXM/PCIe dense bf16 tensor-core peak
MFU_RANGE = (0.35, 0.45)
DDP_EFFICIENCY = 0.90
GPUS = 8
CLIP_FRAMES = 16  # clip mode of the loader table (sd15_stage2.yaml's num_frames is added as its own row)
SET_FRAMES = 32
SEED = 0
SD15_SIZE = 512


@dataclass(frozen=True)
class Plan:
    """What a run measures."""

    clips: dict  # size -> clips in the SynthDance set
    workers: tuple[int, ...]
    batches: tuple[int, ...]
    samples: int  # samples timed per loader measurement
    repeats: int
    step_stages: tuple[str, ...]
    step_rounds: int
    steps_per_round: int
    cpu_check: bool
    noisy: bool  # also a copy of the 512 set with camera-like noise (compresses like real footage)


FULL = Plan({64: 24, 256: 24, 512: 24}, (0, 1, 2), (2, 4), 40, 2, ("motion", "appearance"), 2, 3, True, True)
QUICK = Plan({64: 12, 256: 12, 512: 8}, (0, 2), (2, 4), 16, 1, ("motion",), 1, 3, False, False)
NOISE_SIGMA = 4.0  # grey levels: SynthDance's flat colours compress ~150:1, real frames nothing like it

# (b): the tiny model at the demo's training size and batch sizes (tiny_stage2.yaml, tiny_stage1.yaml)
STEP_SETTINGS = {
    "motion": {"mode": "clip", "parts": ["motion", "music", "beat", "text_encoder"], "batch": 4, "frames": 16},
    "appearance": {"mode": "frame", "parts": ["text_encoder", "reference_unet", "spatial"], "batch": 16, "frames": 1},
}
STEP_SIZE = 64


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="~1.5 min: smaller sets, workers 0/2, stage 2 only, no CPU check")
    p.add_argument("--threads", type=int, default=None, help="torch threads of this process (default: torch's)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="keep the SynthDance sets here and reuse them next time (default: a temporary folder)")
    p.add_argument("--config", type=Path, default=STAGE2_CONFIG, help="the SD 1.5 stage-2 config (default: %(default)s)")
    p.add_argument("--size", type=int, default=SD15_SIZE, help="SD 1.5 training resolution for (c) and (e)")
    p.add_argument("--mfu", default=f"{MFU_RANGE[0]},{MFU_RANGE[1]}", help="model-FLOPs utilisation range, low,high")
    p.add_argument("--peak-tflops", type=float, default=A100_BF16_TFLOPS, help="GPU dense bf16 peak, TFLOP/s")
    p.add_argument("--gpus", type=int, default=GPUS)
    p.add_argument("--ddp-efficiency", type=float, default=DDP_EFFICIENCY)
    p.add_argument("--no-loading", action="store_true", help="skip (a) and (b)")
    p.add_argument("--no-cpu-check", action="store_true", help="skip (d)")
    p.add_argument("--markdown", type=Path, default=None, help="write the Markdown section here")
    p.add_argument("--json", type=Path, default=None, help="write all numbers here")
    p.add_argument("--from-json", type=Path, default=None, metavar="FILE",
                   help="measure nothing: print (and --markdown) the report of an earlier run's --json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        report = read_report(args.from_json)
        publish(render_markdown(report), report, args.markdown, None)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    plan = QUICK if args.quick else FULL
    mfu = tuple(float(x) for x in args.mfu.split(","))
    args.config = args.config.resolve()
    stage2 = load_train_config(args.config)
    started = time.perf_counter()
    report: dict = {"command": command_line(), "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                    "machine": machine_info(gpu=torch.cuda.is_available()), "load_average_start": [round(x, 2) for x in os.getloadavg()],
                    "plan": asdict(plan) | {"clips": {str(k): v for k, v in plan.clips.items()}},
                    "stage2_config": {"path": str(args.config.relative_to(REPO_ROOT) if args.config.is_relative_to(REPO_ROOT)
                                                  else args.config),
                                      **{k: getattr(stage2, k) for k in ("num_frames", "batch_size", "gradient_accumulation",
                                                                         "max_steps", "train", "mixed_precision",
                                                                         "gradient_checkpointing", "uncond_fraction")}},
                    "loading": None, "steps": None, "flops": None, "cpu_check": None, "estimate": None}
    with data_root(args.data_dir) as root:
        if not args.no_loading:
            sets = {size: make_set(root, size, clips) for size, clips in plan.clips.items()}
            if plan.noisy:
                sets["512 noisy"] = noisy_copy(sets[512], root / "synth512-noisy")
            report["loading"] = loader_table(sets, plan, stage2.num_frames)
            report["steps"] = step_rates(sets[STEP_SIZE], plan)
    report["flops"] = sd15_flops(stage2, args.size)
    if plan.cpu_check and not args.no_cpu_check:
        report["cpu_check"] = cpu_check()
    else:
        report["cpu_check"] = {"skipped": "--quick" if args.quick else "--no-cpu-check"}
    report["estimate"] = estimate(report, stage2, mfu, args.peak_tflops, args.gpus, args.ddp_efficiency)
    report["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    publish(render_markdown(report), report, args.markdown, args.json)
    return 0


def read_report(path: Path) -> dict:
    """A ``--json`` report as the run held it (JSON turned the worker counts into strings)."""
    import json

    report = json.loads(Path(path).read_text())
    for row in (report.get("loading") or {}).get("rows", []):
        row["workers"] = {int(k): v for k, v in row["workers"].items()}
        if str(row["size"]).isdigit():
            row["size"] = int(row["size"])
    return report


def log(message: str) -> None:
    print(f"[training_throughput] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- data sets


@contextlib.contextmanager
def data_root(data_dir: Path | None):
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        yield data_dir
        return
    with tempfile.TemporaryDirectory(prefix="musedance-throughput-") as tmp:
        yield Path(tmp)


def make_set(root: Path, size: int, clips: int) -> Path:
    """A SynthDance set of ``clips`` 32-frame clips at ``size`` x ``size`` (a rerun adds missing clips only)."""
    out = root / f"synth{size}"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(REPO_ROOT / "training" / "synth_dance.py"), "--out", str(out), "--clips", str(clips),
                    "--size", str(size), "--frames", str(SET_FRAMES), "--workers", "2", "--val-fraction", "0",
                    "--seed", str(SEED)], check=True, stdout=subprocess.DEVNULL)
    log(f"set {out.name}: {clips} clips ready in {time.perf_counter() - t0:.0f} s")
    return out


def noisy_copy(src: Path, dst: Path) -> Path:
    """``src`` with Gaussian noise (sigma NOISE_SIGMA grey levels) on every frame, saved the way the data
    sets are (``np.savez_compressed``): it deflates about as badly as real video frames do."""
    import shutil

    t0 = time.perf_counter()
    records = read_manifest(src, "train")
    if (dst / "manifest.jsonl").is_file() and len(read_manifest(dst, "train")) == len(records):
        return dst
    (dst / "clips").mkdir(parents=True, exist_ok=True)
    for name in ("dataset.json",):
        if (src / name).is_file():
            shutil.copy(src / name, dst / name)
    rng = np.random.default_rng(SEED)
    for r in records:
        with np.load(src / r["clip"]) as arrays:
            data = {k: arrays[k] for k in arrays.files}
        noise = rng.normal(0.0, NOISE_SIGMA, data["frames"].shape)
        data["frames"] = np.clip(data["frames"] + noise, 0, 255).astype(np.uint8)
        np.savez_compressed(dst / r["clip"], **data)
    shutil.copy(src / "manifest.jsonl", dst / "manifest.jsonl")  # last: a torn copy is redone
    log(f"set {dst.name}: {len(records)} clips with noise in {time.perf_counter() - t0:.0f} s")
    return dst


def set_info(root: Path, size) -> dict:
    records = read_manifest(root, "train")
    files = [root / r["clip"] for r in records]
    return {"clips": len(records), "mb_on_disk": round(sum(f.stat().st_size for f in files) / 2**20, 1),
            "raw_frames_mb": round(len(records) * SET_FRAMES * records[0]["width"] * records[0]["height"] * 3 / 2**20, 1)}


# ---------------------------------------------------------------- (a) loading alone


def loader_rate(sampler: ClipSampler, batch: int, workers: int, samples: int) -> dict:
    """Steady-state samples/s of ``make_loader``; the first batch (worker start-up) is timed apart."""
    loader = make_loader(sampler, batch, 0, workers)
    batches = iter(loader)
    t0 = time.perf_counter()
    next(batches)
    first = time.perf_counter() - t0
    for _ in range(2 * workers):  # what the workers prefetched while the first batch was made
        next(batches)
    n = max(2, math.ceil(samples / batch))
    t0 = time.perf_counter()
    for _ in range(n):
        next(batches)
    seconds = time.perf_counter() - t0
    del batches, loader
    gc.collect()
    return {"samples_per_s": n * batch / seconds, "first_batch_s": first}


def loader_table(sets: dict[int, Path], plan: Plan, stage2_frames: int) -> dict:
    rows = []
    cases = [(size, "frame", 1, b) for size in (256, 512) for b in plan.batches]
    cases += [(size, "clip", CLIP_FRAMES, b) for size in (256, 512) for b in plan.batches]
    cases += [(512, "clip", stage2_frames, 1)]  # the sd15_stage2.yaml sample: one clip per process
    if "512 noisy" in sets:
        cases += [("512 noisy", "clip", stage2_frames, 1)]
    for size, mode, frames, batch in cases:
        records = tuple(read_manifest(sets[size], "train"))
        sampler = ClipSampler(sets[size], records, mode, num_frames=max(frames, 1), seed=SEED)
        runs: dict[int, list[dict]] = {w: [] for w in plan.workers}
        for r in range(plan.repeats):
            order = list(plan.workers[r % len(plan.workers):]) + list(plan.workers[: r % len(plan.workers)])
            for workers in order:
                runs[workers].append(loader_rate(sampler, batch, workers, plan.samples))
        row = {"size": size, "mode": mode, "frames": frames, "batch": batch, "workers": {}}
        for workers, measured in runs.items():
            row["workers"][workers] = {
                "samples_per_s": round(statistics.median(m["samples_per_s"] for m in measured), 2),
                "first_batch_s": round(statistics.median(m["first_batch_s"] for m in measured), 2),
                "all_samples_per_s": [round(m["samples_per_s"], 2) for m in measured]}
        rows.append(row)
        rates = ", ".join(f"{w}w {v['samples_per_s']:.1f}" for w, v in row["workers"].items())
        log(f"loading {size} {mode}{frames if mode == 'clip' else ''} b{batch}: {rates} samples/s")
    return {"rows": rows, "sets": {str(size): set_info(path, size) for size, path in sets.items() if size != STEP_SIZE}}


# ---------------------------------------------------------------- (b) the step with loading


def step_rates(root: Path, plan: Plan) -> list[dict]:
    from diffusers import DDPMScheduler

    from musedance_core.models.config import preset
    from musedance_core.models.musedance import MuseDanceModel
    from musedance_core.training.config import LossSettings
    from musedance_core.training.steps import TrainingStep, set_trainable

    records = tuple(read_manifest(root, "train"))
    out = []
    for stage in plan.step_stages:
        s = STEP_SETTINGS[stage]
        torch.manual_seed(SEED)
        model = MuseDanceModel(preset("tiny"))
        if stage == "motion":
            model.enable_caption_film()
        trainable = set_trainable(model, s["parts"])
        optimizer = torch.optim.AdamW(list(trainable.values()), lr=1e-5)
        scheduler = DDPMScheduler(**model.config.scheduler)
        step = TrainingStep(model, stage, LossSettings(), SEED, scheduler).train()
        sampler = ClipSampler(root, records, s["mode"], num_frames=s["frames"], seed=SEED)
        fixed = next(iter(make_loader(sampler, s["batch"], 0, 0)))

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            train_on(step, optimizer, fixed)  # warm-up
            variants = {"compute only (batch in memory)": None, "loading in the loop (0 workers)": 0,
                        "loading ahead (2 workers)": 2}
            streams = {}
            for name, workers in variants.items():
                if workers is not None:
                    streams[name] = iter(make_loader(sampler, s["batch"], 0, workers))
                    next(streams[name])  # worker start-up, not a step
            for name, workers in variants.items():  # one untimed step each, so no worker start-up lingers
                train_on(step, optimizer, fixed if workers is None else next(streams[name]))
            timed = {name: {"step": [], "wait": []} for name in variants}
            names = list(variants)
            for r in range(plan.step_rounds):
                for name in names[r % len(names):] + names[: r % len(names)]:
                    for _ in range(plan.steps_per_round):
                        t0 = time.perf_counter()
                        batch = fixed if variants[name] is None else next(streams[name])
                        t1 = time.perf_counter()
                        train_on(step, optimizer, batch)
                        timed[name]["step"].append(time.perf_counter() - t0)
                        timed[name]["wait"].append(t1 - t0)
            streams.clear()
            gc.collect()
        rows = []
        for name, t in timed.items():
            per_step = statistics.mean(t["step"])
            wait = statistics.mean(t["wait"])
            rows.append({"variant": name, "s_per_step": round(per_step, 3), "median_s_per_step": round(statistics.median(t["step"]), 3),
                         "samples_per_s": round(s["batch"] / per_step, 2), "data_wait_s": round(wait, 4),
                         "wait_share": round(wait / per_step, 4), "steps": len(t["step"])})
            log(f"step {stage} {name}: {per_step:.2f} s/step, waited {wait * 1000:.0f} ms")
        out.append({"stage": stage, "size": STEP_SIZE, "batch": s["batch"], "frames": s["frames"], "parts": s["parts"],
                    "rows": rows})
        del model, step, optimizer
        gc.collect()
    return out


def train_on(step, optimizer, batch: dict) -> None:
    """One training step as train.py takes it (without accelerate): loss, backward, optimizer."""
    loss = step(batch)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


# ---------------------------------------------------------------- (c) SD 1.5 FLOPs on the meta device


def meta_sd15():
    from musedance_core.models.config import sd15_config
    from musedance_core.models.musedance import MuseDanceModel
    from musedance_core.models.text import BUILTIN_TOKENIZER, ClipTokenizer

    with torch.device("meta"):
        model = MuseDanceModel(sd15_config(), tokenizer=ClipTokenizer(BUILTIN_TOKENIZER))
    model.enable_caption_film()  # sd15_stage2.yaml: caption_film: true
    return model


def _part_flops(counts: dict, total: float, prefix: str = "TrainingStep.model.") -> dict:
    """FLOPs by model part (vae, text_encoder, ...), from the outermost modules seen under each part
    (``vae.encode`` is a method, so the VAE shows up as ``vae.encoder`` and ``vae.quant_conv``)."""
    names = [n for n in counts if n.startswith(prefix)]
    def has_counted_ancestor(name: str) -> bool:
        pieces = name[len(prefix):].split(".")
        return any(prefix + ".".join(pieces[:i]) in counts for i in range(1, len(pieces)))

    outermost = [n for n in names if not has_counted_ancestor(n)]
    parts: dict[str, float] = {}
    for name in outermost:
        part = name[len(prefix):].split(".", 1)[0]
        parts[part] = parts.get(part, 0) + sum(counts[name].values())
    parts["other (loss, reference K/V projections)"] = total - sum(parts.values())
    return parts


def count_step(model, stage2, frames: int, size: int, batch: int, checkpointing: bool) -> dict:
    from diffusers import DDPMScheduler
    from torch.utils.flop_counter import FlopCounterMode

    from musedance_core.training.config import LossSettings
    from musedance_core.training.steps import TrainingStep, set_trainable

    if checkpointing:  # as train.py does: each checkpoint carries its forward pass's context
        model.enable_gradient_checkpointing()
    else:
        for unet in (model.denoising_unet, model.reference_unet):
            unet.disable_gradient_checkpointing()
    trainable = set_trainable(model, list(stage2.train))
    for p in model.parameters():
        p.grad = None
    cfg = model.config
    # one conditioned sample (no condition or caption dropout): the common case, 90 % of samples
    step = TrainingStep(model, "motion", LossSettings(uncond_fraction=0.0, caption_dropout=0.0,
                                                      mask_weight=stage2.mask_weight), SEED,
                        DDPMScheduler(**cfg.scheduler)).train()
    data = {"pixels": torch.zeros(batch, frames, 3, size, size), "reference": torch.zeros(batch, 3, size, size),
            "caption": ["a dancer in a red dress spins on the downbeat"] * batch,
            "mask": torch.ones(batch, frames, 1, size, size), "music": torch.zeros(batch, frames, cfg.music_dim),
            "beats": torch.zeros(batch, frames, cfg.beat_dim), "sample": torch.arange(batch)}
    counter = FlopCounterMode(display=False)
    with counter:
        loss = step(data)
        forward_total = counter.get_total_flops()
        forward_parts = _part_flops(counter.get_flop_counts(), forward_total)
        forward_ops = {str(k): v for k, v in counter.get_flop_counts().get("Global", {}).items()}
        loss.backward()
    total = counter.get_total_flops()
    unet_ops = counter.get_flop_counts().get("TrainingStep.model.denoising_unet", {})
    attention_counted = any("bmm" in str(op) or "scaled_dot_product" in str(op) for op in unet_ops)
    return {"frames": frames, "size": size, "batch": batch, "gradient_checkpointing": checkpointing,
            "forward": forward_total, "backward": total - forward_total, "total": total,
            "forward_parts": forward_parts, "forward_ops": forward_ops, "attention_counted": attention_counted,
            "trainable_params": int(sum(p.numel() for p in trainable.values()))}


def sd15_flops(stage2, size: int) -> dict:
    t0 = time.perf_counter()
    model = meta_sd15()
    params = {k: int(v) for k, v in model.parameter_counts().items()}
    frames, batch = stage2.num_frames, stage2.batch_size
    cases = [(frames, size, batch, stage2.gradient_checkpointing), (frames, size, batch, not stage2.gradient_checkpointing)]
    if frames != 16:
        cases.append((16, size, batch, stage2.gradient_checkpointing))
    cases.append((frames, size // 2, batch, stage2.gradient_checkpointing))
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f, s, b, ckpt in cases:
            rows.append(count_step(model, stage2, f, s, b, ckpt))
            log(f"FLOPs sd15 stage 2, {f} frames {s}x{s} batch {b}, checkpointing {ckpt}: "
                f"{rows[-1]['total'] / 1e12:.1f} TFLOP")
    del model
    gc.collect()
    return {"cases": rows, "params": params, "seconds": round(time.perf_counter() - t0, 1)}


# ---------------------------------------------------------------- (d) CPU sanity check


def memory_available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return float("inf")


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def cpu_check(shapes=((64, 8), (128, 8), (256, 8)), repeats: int = 2) -> dict:
    """Time the SD 1.5-shaped denoising UNet (MuseDance processors, no reference/music: the UNet and
    motion modules) on this CPU; FLOPs of the same call from the meta model."""
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel
    from torch.utils.flop_counter import FlopCounterMode

    need = 8.0
    if memory_available_gb() < need:
        return {"skipped": f"only {memory_available_gb():.1f} GB of memory available; the SD 1.5 denoising UNet "
                           f"in fp32 needs ~{need:.0f} GB here"}
    t0 = time.perf_counter()
    model = meta_sd15()
    generator = torch.Generator().manual_seed(SEED)
    text = torch.randn(1, 77, model.config.cross_attention_dim, generator=generator)
    inputs, flops = [], []
    for size, frames in shapes:  # FLOPs first, on the meta model
        h = size // model.vae_scale_factor
        inputs.append(torch.randn(1, 4, frames, h, h, generator=generator))
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model.denoise(inputs[-1].to("meta"), torch.tensor([500.0], device="meta"), text.to("meta"))
        flops.append(counter.get_total_flops())
    with torch.device("meta"):
        spatial = UNet2DConditionModel(**model.config.unet)
        adapter = MotionAdapter(**model.config.motion)
    torch.manual_seed(SEED)  # then the same UNet with real (random) weights, as MuseDanceModel builds it
    model.denoising_unet = UNetMotionModel.from_unet2d(spatial, adapter, load_weights=False).requires_grad_(False).eval()
    model._install_processors()  # the MuseDance attention processors and motion hooks on the real UNet
    build_s = time.perf_counter() - t0
    log(f"cpu check: SD 1.5 denoising UNet built in {build_s:.0f} s")
    mm = matmul_gflops()
    rows = []
    for (size, frames), latents, count in zip(shapes, inputs, flops):
        times = []
        with torch.no_grad():
            model.denoise(latents, torch.tensor([500.0]), text)  # warm-up
            for _ in range(repeats):
                c0 = time.perf_counter()
                model.denoise(latents, torch.tensor([500.0]), text)
                times.append(time.perf_counter() - c0)
        seconds = statistics.median(times)
        rows.append({"size": size, "frames": frames, "latent": latents.shape[-1], "flops": count, "seconds": round(seconds, 3),
                     "all_seconds": [round(t, 3) for t in times], "gflops_per_s": round(count / seconds / 1e9, 1)})
        log(f"cpu check {size}x{size} x {frames}: {count / 1e9:.0f} GFLOP in {seconds:.2f} s "
            f"({count / seconds / 1e9:.0f} GFLOP/s; matmul {mm:.0f})")
    del model
    gc.collect()
    return {"rows": rows, "matmul_gflops_per_s": round(mm, 1), "build_s": round(build_s, 1),
            "threads": torch.get_num_threads(), "repeats": repeats}


# ---------------------------------------------------------------- (e) the estimate


def estimate(report: dict, stage2, mfu: tuple[float, float], peak_tflops: float, gpus: int, efficiency: float) -> dict:
    main_case = report["flops"]["cases"][0]
    flops = main_case["total"]
    steps = stage2.max_steps  # train.py counts one step per batch of batch_size on each process (micro-steps)
    samples = steps * stage2.batch_size * gpus
    rows = []
    for m in sorted(set(mfu) | {statistics.mean(mfu)}):
        per_step = flops / (peak_tflops * 1e12 * m)
        wall = steps * per_step / efficiency
        per_pass = PAPER_VIDEOS / (stage2.batch_size * gpus) * per_step / efficiency
        rows.append({"mfu": m, "per_step_s": per_step, "wall_hours": wall / 3600, "per_pass_minutes": per_pass / 60,
                     "samples_per_s_per_gpu": stage2.batch_size / per_step})
    need = max(r["samples_per_s_per_gpu"] for r in rows)
    loading = None
    if report.get("loading"):
        candidates = [r for r in report["loading"]["rows"]
                      if str(r["size"]).startswith("512") and r["mode"] == "clip" and r["frames"] == stage2.num_frames
                      and r["batch"] == 1]
        candidates.sort(key=lambda r: isinstance(r["size"], int))  # the noisy set first: closer to real footage
        if candidates:
            row = candidates[0]
            one = row["workers"].get(1) or row["workers"][0]
            per_worker = one["samples_per_s"]
            loading = {"set": _size(row["size"]), "per_worker_samples_per_s": per_worker,
                       "in_loop_ms_per_sample": 1000 / row["workers"][0]["samples_per_s"],
                       "workers_measured": 1 if 1 in row["workers"] else 0,
                       "needed_samples_per_s_per_gpu": need, "workers_needed": math.ceil(need / per_worker),
                       "configured_workers": stage2.data_workers}
    return {"flops_per_step": flops, "steps": steps, "samples": samples, "epochs_of_paper_data": samples / PAPER_VIDEOS,
            "gpus": gpus, "peak_tflops": peak_tflops, "ddp_efficiency": efficiency, "rows": rows, "loading": loading,
            "frames": main_case["frames"], "size": main_case["size"], "batch": main_case["batch"],
            "gradient_accumulation": stage2.gradient_accumulation}


# ---------------------------------------------------------------- report


def _size(size) -> str:
    return f"{size}²" if isinstance(size, int) or str(size).isdigit() else f"{str(size).split()[0]}² + noise σ {NOISE_SIGMA:g}"


def _t(flops: float) -> str:
    return f"{flops / 1e12:.1f}"


def render_markdown(report: dict) -> str:
    m, v = report["machine"], report["machine"]["versions"]
    c = report["stage2_config"]
    lines = [f"Command: `{report['command']}`  ",
             f"Date: {report['date']}; git: {m['git']}; total {report['total_seconds'] / 60:.1f} min  ",
             (f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, {m['memory_gb']} GiB RAM, "
             f"{'a GPU (unused)' if m['gpu'] else 'no GPU'}; torch {v['torch']} ({m['torch_threads']} threads), "
             f"diffusers {v['diffusers']}, numpy {v['numpy']}, Python {v['python']}. Load average "
             f"{report['load_average_start'][0]} at the start, {report['load_average_end'][0]} at the end "
             "(a shared machine: read ratios, not absolute seconds)."), ""]
    loading = report.get("loading")
    if loading:
        workers = sorted({w for r in loading["rows"] for w in r["workers"]})
        sets = "; ".join(f"{_size(s)}: {i['clips']} clips, {i['mb_on_disk']} MB on disk ({i['raw_frames_mb']} MB of raw frames)"
                         for s, i in loading["sets"].items())
        plan = report["plan"]
        lines += [("**(a) Data loading alone** (`make_loader`, SynthDance sets of 32-frame clips made for the run: "
                  f"{sets}; {plan['samples']} samples timed per cell after the start-up and the prefetched batches, "
                  f"median of {plan['repeats']} repeat(s) with the worker order rotated). *frame* = stage 1 (a target "
                  "frame and a reference), *clip N* = stage 2 (N frames, a reference, music and beats). "
                  "Samples/s; first batch = seconds to the first batch with 2 workers (process start-up)."), "",
                  "| size | mode | batch | " + " | ".join(f"{w} workers" for w in workers) +
                  f" | {workers[-1]} / 0 workers | ms per sample, 0 workers | first batch s |",
                  "|---|---|---:|" + "---:|" * len(workers) + "---:|---:|---:|"]
        for r in loading["rows"]:
            rates = [r["workers"][w]["samples_per_s"] for w in workers]
            mode = "frame" if r["mode"] == "frame" else f"clip {r['frames']}"
            lines.append(f"| {_size(r['size'])} | {mode} | {r['batch']} | " + " | ".join(f"{x:.1f}" for x in rates) +
                         f" | {rates[-1] / rates[0]:.2f}× | {1000 / rates[0]:.0f} | "
                         f"{r['workers'][workers[-1]]['first_batch_s']:.2f} |")
        lines.append("")
    steps = report.get("steps")
    if steps:
        lines += [("**(b) The step rate with data loading** (random tiny model, `TrainingStep` forward + backward + "
                   f"AdamW, {STEP_SIZE}x{STEP_SIZE} SynthDance as the demo trains; the three variants run round by "
                   "round in rotated order after an untimed step each; *waiting* = time in `next(loader)`, mean per "
                   "step; samples/s from the median step)."), "",
                  "| stage | batch | variant | s/step (median) | mean | samples/s | waiting for data, ms/step | of the median step |",
                  "|---|---:|---|---:|---:|---:|---:|---:|"]
        for s in steps:
            setting = f"{s['stage']} ({s['frames']} frames)" if s["stage"] == "motion" else s["stage"]
            for r in s["rows"]:
                median = r["median_s_per_step"]
                lines.append(f"| {setting} | {s['batch']} | {r['variant']} | {median:.2f} | {r['s_per_step']:.2f} | "
                             f"{s['batch'] / median:.2f} | {1000 * r['data_wait_s']:.0f} | "
                             f"{100 * r['data_wait_s'] / median:.1f} % |")
        lines.append("")
    f = report["flops"]
    cases = f["cases"]
    main_case = cases[0]
    lines += [(f"**(c) FLOPs of one SD 1.5 stage-2 step** (`{c['path']}`: train {c['train']}, num_frames {c['num_frames']}, "
              f"batch_size {c['batch_size']} per process, gradient_accumulation {c['gradient_accumulation']}, "
              f"gradient_checkpointing {str(c['gradient_checkpointing']).lower()}, {c['mixed_precision']}; resolution "
              f"comes from the data: {main_case['size']}x{main_case['size']} assumed). `MuseDanceModel(sd15_config())` on "
              "the meta device, `FlopCounterMode` around one `TrainingStep` forward and `loss.backward()`, one conditioned "
              "sample (a dropped one skips ReferenceNet and the branches). FLOPs = 2 × multiply-adds of matmuls, "
              f"convolutions and attention; element-wise ops not counted. Attention counted: "
              f"{'yes' if main_case['attention_counted'] else '**no**'}. Trainable parameters: "
              f"{main_case['trainable_params'] / 1e6:.0f} M."), "",
              "| frames | size | batch | gradient checkpointing | forward TFLOP | backward TFLOP (incl. recompute) | **total TFLOP** |",
              "|---:|---|---:|---|---:|---:|---:|"]
    for r in cases:
        lines.append(f"| {r['frames']} | {r['size']}² | {r['batch']} | {'on' if r['gradient_checkpointing'] else 'off'} | "
                     f"{_t(r['forward'])} | {_t(r['backward'])} | **{_t(r['total'])}** |")
    parts = main_case["forward_parts"]
    names = {"vae": "VAE encode (clip + reference)", "text_encoder": "CLIP text encoder", "reference_unet": "ReferenceNet (once)",
             "denoising_unet": "denoising UNet + motion modules (+ reference K/V projections)", "music": "music branch",
             "beat": "beat branch"}
    lines += ["", "Forward of the first row by part: " + "; ".join(
        f"{names.get(k, k)} {v / 1e12:.2f} TFLOP ({100 * v / main_case['forward']:.0f} %)"
        for k, v in sorted(parts.items(), key=lambda kv: -kv[1])) + ".", ""]
    cpu = report["cpu_check"]
    if cpu and not cpu.get("skipped"):
        lines += [("**(d) CPU sanity check** (SD 1.5-shaped denoising UNet with the AnimateDiff v2 motion modules and "
                  f"MuseDance's processors, random fp32 weights, no reference/music, {cpu['threads']} threads, median of "
                  f"{cpu['repeats']} after a warm-up; FLOPs of the same call counted on the meta model). A plain "
                  f"2048² fp32 matmul runs at {cpu['matmul_gflops_per_s']:.0f} GFLOP/s here."), "",
                  "| size | frames | latent | GFLOP (meta count) | measured s (median) | runs s | GFLOP/s | of the matmul rate |",
                  "|---|---:|---:|---:|---:|---|---:|---:|"]
        for r in cpu["rows"]:
            runs = ", ".join(f"{t:.2f}" for t in r.get("all_seconds", [r["seconds"]]))
            lines.append(f"| {r['size']}² | {r['frames']} | {r['latent']}² | {r['flops'] / 1e9:.0f} | {r['seconds']:.2f} | {runs} | "
                         f"{r['gflops_per_s']:.0f} | {100 * r['gflops_per_s'] / cpu['matmul_gflops_per_s']:.0f} % |")
        pairs = zip(cpu["rows"], cpu["rows"][1:])
        lines.append("\n" + "; ".join(f"{b['size']}² / {a['size']}²: FLOPs {b['flops'] / a['flops']:.2f}×, time "
                                       f"{b['seconds'] / a['seconds']:.2f}×" for a, b in pairs) + ".")
        lines.append("")
    elif cpu:
        lines += [f"**(d) CPU sanity check**: skipped ({cpu['skipped']}).", ""]
    e = report["estimate"]
    lines += [(f"**(e) Estimate, not a measurement: SD 1.5 stage 2 on {e['gpus']} GPUs** (A100-class). Assumptions: "
              f"{_t(e['flops_per_step'])} TFLOP per step (row 1 of (c): {e['frames']} frames, {e['size']}², batch "
              f"{e['batch']} per process, a conditioned sample); {e['peak_tflops']:.0f} TFLOP/s dense bf16 peak; the MFU below; "
              f"DDP efficiency {100 * e['ddp_efficiency']:.0f} % (gradient all-reduce every "
              f"{e['gradient_accumulation']} steps, stragglers, checkpoints); `max_steps` {e['steps']} counts one batch per "
              f"process, so {e['gpus']} processes see {e['samples']:,} clips = {e['epochs_of_paper_data']:.1f} passes over the "
              f"paper's {PAPER_VIDEOS:,} videos (one window per video per pass). Validation videos, checkpoint writes, "
              "start-up and the dropped-condition samples' savings are left out."), "",
              "| MFU | s per step | samples/s per GPU | **wall time, max_steps on 8 GPUs** | one pass over 2,904 videos |",
              "|---:|---:|---:|---:|---:|"]
    for r in e["rows"]:
        lines.append(f"| {100 * r['mfu']:.0f} % | {r['per_step_s']:.2f} | {r['samples_per_s_per_gpu']:.2f} | "
                     f"**{r['wall_hours']:.1f} h** | {r['per_pass_minutes']:.1f} min |")
    if e["loading"]:
        ld = e["loading"]
        fastest = min(r["per_step_s"] for r in e["rows"])
        text = (f"Loading at that rate ({ld.get('set', '512²')}, {e['frames']} frames, batch 1): one "
                f"{'worker' if ld['workers_measured'] else 'process (0 workers)'} made "
                f"{ld['per_worker_samples_per_s']:.1f} samples/s on this CPU; a GPU needs ≤ "
                f"{ld['needed_samples_per_s_per_gpu']:.2f} samples/s, so {ld['workers_needed']} worker(s) per GPU keep "
                f"up (the config's default is {ld['configured_workers']}).")
        if "in_loop_ms_per_sample" in ld:
            text += (f" In the loop (0 workers) the {ld['in_loop_ms_per_sample']:.0f} ms per sample would add "
                     f"{100 * ld['in_loop_ms_per_sample'] / 1000 / fastest:.0f} % to the fastest step above.")
        lines += ["", text]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
