"""Precision and memory benchmark: what each weight precision costs on this machine, and how much
device memory stage offload saves.

(a) Precision on the CPU. The pipeline (demo model if bundled, else a random tiny one; 8 frames,
    128x128, 4 DDIM steps, cfg 3.5) runs with fp32, bf16 and (with ``--fp16``) fp16 weights,
    interleaved, ``--repeats`` times after an untimed warm-up each; the median wall time and the
    largest difference of the frames from fp32 (0..1 scale) are reported.
(b) Device memory with ``offload="stages"``. For the sd15 layout in fp16 (built on the meta
    device: no memory used, no GPU needed) the bytes of weights that must sit on the device in
    each stage of the pipeline (encode, denoise, decode; exactly the modules the pipeline moves)
    against the whole model without offload.

    .venv/bin/python -m benchmarks.precision_benchmark [--threads 1] [--repeats 3] [--fp16] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from musedance_core.audio.synth import Groove, render_groove
from musedance_core.pipeline import AnimateSettings, MuseDancePipeline

GIB = 2 ** 30


def _model():
    from musedance_core.animate import DEMO_BUNDLE
    from musedance_core.checkpoints.bundle import load_bundle
    from musedance_core.models.config import tiny_config
    from musedance_core.models.musedance import MuseDanceModel

    if DEMO_BUNDLE.is_file():
        return load_bundle(DEMO_BUNDLE), "demo model"
    torch.manual_seed(0)
    return MuseDanceModel(tiny_config()).eval(), "random tiny model"


def _inputs(fps: float):
    from musedance_core.audio.beats import track_beats
    from musedance_core.audio.encoders import get_music_encoder

    track = render_groove(Groove(bpm=120.0, seconds=2.0))
    samples, rate = track.samples, track.sample_rate
    beats = track_beats(samples, rate, fps)
    music = get_music_encoder("spectral").encode(samples, rate, fps)
    image = (np.random.default_rng(0).random((128, 128, 3)) * 255).astype(np.uint8)
    return image, music, beats


def precision_times(repeats: int, fp16: bool) -> tuple[str, list[dict]]:
    base, label = _model()
    image, music, beats = _inputs(float(base.config.fps))
    settings = AnimateSettings(num_frames=8, width=128, height=128, steps=4, context_length=8)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16} | ({"fp16": torch.float16} if fp16 else {})
    pipes = {name: MuseDancePipeline(copy.deepcopy(base).to(dtype)) for name, dtype in dtypes.items()}
    frames, times = {}, {name: [] for name in dtypes}
    for name, pipe in pipes.items():  # warm-up, and the frames to compare
        frames[name] = pipe(image, music, beats, "bounces on every beat", settings=settings).frames.float()
    for r in range(repeats):
        order = list(pipes)[r % len(pipes):] + list(pipes)[:r % len(pipes)]
        for name in order:
            t0 = time.perf_counter()
            pipes[name](image, music, beats, "bounces on every beat", settings=settings)
            times[name].append(time.perf_counter() - t0)
    rows = [{"precision": name, "seconds": statistics.median(times[name]),
             "max_diff": float((frames[name] - frames["fp32"]).abs().max())} for name in dtypes]
    return label, rows


def offload_bytes() -> list[dict]:
    from musedance_core.models.config import sd15_config
    from musedance_core.models.musedance import MuseDanceModel

    with torch.device("meta"):
        model = MuseDanceModel(sd15_config()).to(torch.float16)
    pipe = MuseDancePipeline(model)  # only asked which modules each stage uses

    def size(names: list[str]) -> int:
        seen, total = set(), 0
        for name in names:
            for p in list(model.get_submodule(name).parameters()) + list(model.get_submodule(name).buffers()):
                if id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel() * p.element_size()
        return total

    whole = sum(p.numel() * p.element_size() for p in list(model.parameters()) + list(model.buffers()))
    stages = {"encode": pipe.encode_parts(), "denoise": pipe.denoise_parts(), "decode": pipe.decode_parts()}
    rows = [{"stage": name, "gib": size(parts) / GIB} for name, parts in stages.items()]
    rows.append({"stage": "no offload (whole model)", "gib": whole / GIB})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--fp16", action="store_true", help="also time fp16 on the CPU (slow kernels)")
    p.add_argument("--markdown", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    label, times = precision_times(args.repeats, args.fp16)
    memory = offload_bytes()
    lines = [f"Command: `.venv/bin/python -m benchmarks.precision_benchmark {' '.join(argv or sys.argv[1:])}`",
             f"torch {torch.__version__}, {args.threads} thread(s), {label}, 8 frames 128x128, 4 DDIM steps, cfg 3.5",
             "", "| weights | median s | max frame diff vs fp32 |", "|---|---|---|"]
    lines += [f"| {r['precision']} | {r['seconds']:.2f} | {r['max_diff']:.4f} |" for r in times]
    lines += ["", "sd15 layout, fp16 weights on the device per pipeline stage with `offload=\"stages\"`:", "",
              "| stage | GiB |", "|---|---|"]
    lines += [f"| {r['stage']} | {r['gib']:.2f} |" for r in memory]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
