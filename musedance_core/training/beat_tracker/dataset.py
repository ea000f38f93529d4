"""The beat tracker's training music as files: each piece composed (music.py), rendered with a
soundfont and augmented (render.py), and written as ``piece_NNNNN.flac`` + ``.json`` (beats,
downbeats, meter, how it was made), atomically, in parallel processes; a rerun makes only the
missing pieces; ``index.json`` summarises the set. training/make_beat_data.py is its command line."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np

from .music import compose_piece
from .render import SAMPLE_RATE, check_tools, render_piece

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
