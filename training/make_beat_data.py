"""Training data for the learned beat/downbeat tracker: procedural music with exact labels.

    python training/make_beat_data.py --out data/beats_train --pieces 5000 --seed 0 --workers 2
    python training/make_beat_data.py --out data/beats_heldout --pieces 300 --seed 1   # held-out seeds

Every piece is composed from scratch (``musedance_core.training.beat_music``: no public music is
used), rendered with FluidSynth through one of ``--soundfonts`` and augmented
(``musedance_core.training.beat_render``). Per piece ``piece_NNNNN.flac`` (mono 22050 Hz, 16 bit) and
``piece_NNNNN.json`` (beats, downbeats in seconds of that audio; beats_per_bar, category, style,
soundfont, augment, seed, generator_version, duration, sample_rate). Piece ``i`` is a pure function of
(``--seed``, i): adding pieces never changes earlier ones, and a rerun skips pieces whose json (written
last, atomically) has the same seed and generator version. ``index.json`` lists the pieces and counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from musedance_core.training.beat_music import compose_piece
from musedance_core.training.beat_render import (
    DEFAULT_SOUNDFONTS,
    SAMPLE_RATE,
    RenderError,
    check_tools,
    render_piece,
)

GENERATOR_VERSION = 1
MIN_PIECE_S = 4.0


def piece_seed(base_seed: int, index: int) -> int:
    """A 63-bit seed for piece ``index`` of the set ``base_seed``."""
    return int(np.random.SeedSequence([int(base_seed), int(index)]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def is_done(out: Path, index: int, seed: int) -> bool:
    path = out / f"piece_{index:05d}.json"
    if not path.is_file() or not (out / f"piece_{index:05d}.flac").is_file():
        return False
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return meta.get("seed") == seed and meta.get("generator_version") == GENERATOR_VERSION


def make_piece(task: tuple) -> dict:
    """Compose, render and write piece ``index``; returns its json record."""
    import soundfile as sf

    out, index, seed, seconds_range, soundfonts, fluidsynth = task
    out = Path(out)
    compose_ss, sf_ss, render_ss = np.random.SeedSequence(seed).spawn(3)
    rng = np.random.default_rng(compose_ss)
    seconds = float(rng.uniform(*seconds_range))
    piece = compose_piece(rng, seconds)
    soundfont = Path(soundfonts[int(np.random.default_rng(sf_ss).integers(len(soundfonts)))])
    audio, info = render_piece(piece, soundfont, fluidsynth, np.random.default_rng(render_ss))
    name = f"piece_{index:05d}"
    tmp_audio = out / f"{name}.tmp.flac"
    sf.write(str(tmp_audio), audio, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    os.replace(tmp_audio, out / f"{name}.flac")
    record = {
        "beats": [round(float(t), 5) for t in info["beats"]],
        "downbeats": [round(float(t), 5) for t in info["downbeats"]],
        "beats_per_bar": int(piece.beats_per_bar), "category": piece.category, "style": piece.style,
        "soundfont": info["soundfont"], "augment": info["augment"], "fluidsynth": info["fluidsynth"],
        "composition": piece.info, "seed": seed, "index": index, "generator_version": GENERATOR_VERSION,
        "duration": round(float(info["duration"]), 4), "sample_rate": SAMPLE_RATE,
    }
    tmp_json = out / f"{name}.json.tmp"
    tmp_json.write_text(json.dumps(record, default=_jsonable))
    os.replace(tmp_json, out / f"{name}.json")
    return record


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a piece json")


def write_index(out: Path, pieces: int, seed: int | None = None) -> dict:
    records = []
    for i in range(pieces):
        path = out / f"piece_{i:05d}.json"
        if path.is_file():
            meta = json.loads(path.read_text())
            records.append({"name": path.stem, "category": meta["category"], "style": meta["style"],
                            "soundfont": meta["soundfont"], "beats_per_bar": meta["beats_per_bar"],
                            "duration": meta["duration"]})
    summary = {key: dict(sorted(Counter(str(r[key]) for r in records).items()))
               for key in ("category", "style", "soundfont", "beats_per_bar")}
    summary["pieces"] = len(records)
    summary["hours"] = round(sum(r["duration"] for r in records) / 3600, 3)
    index = {"generator_version": GENERATOR_VERSION, "seed": seed, "sample_rate": SAMPLE_RATE, "summary": summary,
             "pieces": records}
    tmp = out / "index.json.tmp"
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, out / "index.json")
    return summary


def generate(out: Path, pieces: int, seed: int, seconds_range: tuple[float, float], soundfonts: list[Path],
             fluidsynth: str, workers: int = 2) -> dict:
    from tqdm import tqdm

    if seconds_range[0] < MIN_PIECE_S or seconds_range[1] < seconds_range[0]:
        raise ValueError(f"--seconds-range {seconds_range} must be increasing and start at >= {MIN_PIECE_S} s")
    exe = check_tools(fluidsynth, soundfonts)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [piece_seed(seed, i) for i in range(pieces)]
    todo = [i for i in range(pieces) if not is_done(out, i, seeds[i])]
    tasks = [(str(out), i, seeds[i], tuple(seconds_range), tuple(str(s) for s in soundfonts), exe) for i in todo]
    t0 = time.perf_counter()
    pool = None
    if workers > 1 and len(tasks) > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers)
        results = pool.imap_unordered(make_piece, tasks)
    else:
        results = map(make_piece, tasks)
    try:
        for _ in tqdm(results, total=len(tasks), desc="beat pieces", unit="piece"):
            pass
    finally:
        if pool is not None:
            pool.terminate()
    seconds = time.perf_counter() - t0
    summary = write_index(out, pieces, seed)
    return {"written": len(tasks), "skipped": pieces - len(tasks), "seconds": seconds, "summary": summary}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("data/beats_train"), help="output folder")
    p.add_argument("--pieces", type=int, default=1000, help="number of pieces (a rerun adds the missing ones)")
    p.add_argument("--seed", type=int, default=0, help="base seed; another seed gives a disjoint (held-out) set")
    p.add_argument("--seconds-range", type=float, nargs=2, default=(20.0, 45.0), metavar=("MIN", "MAX"),
                   help="composed length of a piece in seconds (the render then cuts 0-10 s from the start)")
    p.add_argument("--soundfonts", type=Path, nargs="+", default=list(DEFAULT_SOUNDFONTS),
                   help="General-MIDI soundfonts to render with (never FluidR3_GM: it is held out)")
    p.add_argument("--workers", type=int, default=2, help="parallel processes")
    p.add_argument("--fluidsynth", default="fluidsynth", help="FluidSynth executable")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        stats = generate(args.out, args.pieces, args.seed, tuple(args.seconds_range), args.soundfonts,
                         args.fluidsynth, args.workers)
    except (ValueError, RenderError) as exc:
        raise SystemExit(f"make_beat_data: {exc}") from exc
    except KeyboardInterrupt:
        raise SystemExit("make_beat_data: interrupted; run the same command again to resume.") from None
    rate = stats["seconds"] / max(stats["written"], 1)
    print(f"[beats] wrote {stats['written']} pieces in {stats['seconds']:.1f} s ({rate:.2f} s/piece); "
          f"{stats['skipped']} were already there. {json.dumps(stats['summary'])}")


if __name__ == "__main__":
    main()
