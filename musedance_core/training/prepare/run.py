"""A whole preparation run: every video of a folder (in parallel worker processes), resumable, with
the unusable ones listed in skipped.jsonl and a summary."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from .. import dataset as fmt
from .clips import caption_hook, models, video_job
from .config import (
    GENERATOR,
    GENERATOR_VERSION,
    PROGRESS_NAME,
    SKIPPED_NAME,
    PrepareConfig,
)
from .sources import clip_id, find_videos, video_key

# -- the run ----------------------------------------------------------------------------------------

def dataset_info(cfg: PrepareConfig, videos: Path) -> dict:
    from ...types import BEAT_FEATURE_NAMES

    return {"generator": GENERATOR, "generator_version": GENERATOR_VERSION, "config": asdict(cfg),
            "videos": str(videos), "music_encoder": cfg.music_encoder, "beat_features": list(BEAT_FEATURE_NAMES),
            "val_rule": "whole videos: 'val' when int(sha1(relative path)[:8], 16) / 2**32 < val_fraction"}


def prepare(cfg: PrepareConfig, videos: str | Path, root: str | Path, workers: int = 1, log=None) -> dict:
    """Make the data set under ``root`` from the videos under ``videos``; returns run statistics.

    Returns {"videos", "written", "existing", "skipped": [{"video", "reason"}], "rejected": {reason: clips},
    "seconds", "clips_per_second"}. ``log`` gets one line per video (default: above a progress bar).
    """
    cfg.check()
    videos, root = Path(videos), Path(root)
    if not videos.is_dir():
        raise ValueError(f"--videos '{videos}' is not a folder.")
    if cfg.masks and not Path(cfg.masks).is_dir():
        raise ValueError(f"--masks '{cfg.masks}' is not a folder.")
    caption_hook(cfg)  # fail now, not in every worker
    if cfg.uses_models:  # a wrong folder fails here, once, naming it; the models stay loaded for workers=1
        models(cfg)
        workers = 1  # one process holds the models (on the GPU); decoding is not what takes the time then
    info = json.loads(json.dumps(dataset_info(cfg, videos)))  # as stored (tuples become lists)
    old = fmt.read_info(root)
    if old is not None and old.get("config") != info["config"]:
        changed = {k: (old.get("config", {}).get(k), v) for k, v in info["config"].items()
                   if old.get("config", {}).get(k) != v}
        raise ValueError(f"'{root}' holds a data set made with other settings (old, new): {changed}. "
                         "Use another --out folder or the same settings.")
    fmt.check_same_beat_features(root, old, info)
    fmt.write_info(root, info)
    exclude = (root,) + ((Path(cfg.masks),) if cfg.masks else ())
    files = find_videos(videos, exclude)
    done = {r["id"] for r in fmt.read_manifest(root)}
    finished = read_progress(root)
    skipped_path = root / SKIPPED_NAME
    skipped_path.write_text("")
    tasks = []
    for video in files:
        key = video_key(videos, video)
        if key in finished:
            continue
        prefix = clip_id(key, 0)[:-6]
        tasks.append((cfg, str(root), str(videos), str(video), {d for d in done if d.startswith(prefix)}))
    bar = None
    if log is None:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), desc="videos", unit="video", dynamic_ncols=True)
        log = bar.write
    log(f"[prepare] {videos}: {len(files)} videos ({len(files) - len(tasks)} finished before), {len(done)} clips "
        f"already in {root}, {workers} worker(s)")
    if workers > 1 and len(tasks) > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(min(workers, len(tasks)))
        results = pool.imap(video_job, tasks)
    else:
        pool, results = None, map(video_job, tasks)
    t0 = time.perf_counter()
    written = existing = 0
    skipped: list[dict] = []
    rejected: dict[str, int] = {}
    try:
        for n, result in enumerate(results, 1):
            for record in result.records:
                fmt.append_manifest(root, record)
            written += len(result.records)
            existing += result.existing
            for reason, count in result.rejected.items():
                rejected[reason] = rejected.get(reason, 0) + count
            if result.skipped:
                entry = {"video": result.key, "reason": result.skipped}
                skipped.append(entry)
                with open(skipped_path, "a") as f:
                    f.write(json.dumps(entry) + "\n")
                log(f"[prepare] {n}/{len(tasks)} {result.key}: skipped: {result.skipped}")
            else:
                mark_finished(root, result)
                notes = f" ({'; '.join(result.notes)})" if result.notes else ""
                log(f"[prepare] {n}/{len(tasks)} {result.key}: {len(result.records)} new clip(s), "
                    f"{result.existing} already there, {result.seconds:.1f} s{notes}")
            if bar is not None:
                bar.update(1)
    finally:
        if pool is not None:
            pool.terminate()
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    return {"videos": len(files), "written": written, "existing": existing, "skipped": skipped, "rejected": rejected,
            "seconds": seconds, "clips_per_second": written / seconds if seconds > 0 else 0.0}


def read_progress(root: Path) -> set[str]:
    """The videos a previous run finished (every planned clip written or refused)."""
    path = root / PROGRESS_NAME
    if not path.is_file():
        return set()
    finished = set()
    for line in path.read_text().splitlines():
        try:
            finished.add(json.loads(line)["video"])
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line from an interrupted run: that video is simply done again
    return finished


def mark_finished(root: Path, result) -> None:
    with open(root / PROGRESS_NAME, "a") as f:
        f.write(json.dumps({"video": result.key, "planned": result.planned, "written": len(result.records),
                            "existing": result.existing, "rejected": result.rejected}) + "\n")


def summary(root: Path, stats: dict) -> str:
    records = fmt.read_manifest(root)
    splits = Counter(r["split"] for r in records)
    vids = {s: len({r["video"] for r in records if r["split"] == s and "video" in r}) for s in fmt.SPLITS}
    reasons = Counter(s["reason"].split(":")[0].split(" (")[0] for s in stats["skipped"])
    lines = [
        (f"[prepare] wrote {stats['written']} clips in {stats['seconds']:.1f} s "
         f"({stats['clips_per_second']:.2f} clips/s); {stats['existing']} were already there."),
        (f"[prepare] {root}: {len(records)} clips: train {splits['train']} ({vids['train']} videos), "
         f"val {splits['val']} ({vids['val']} videos)."),
    ]
    if stats.get("rejected"):
        lines.append("[prepare] clips refused: " + ", ".join(f"{r}: {c}" for r, c in sorted(stats["rejected"].items()))
                     + " (see --min-subject, --max-subject, --min-visible).")
    if stats["skipped"]:
        lines.append(f"[prepare] skipped {len(stats['skipped'])} of {stats['videos']} videos "
                     f"({', '.join(f'{k}: {v}' for k, v in reasons.most_common())}); see {root / SKIPPED_NAME}.")
    if records and not splits["val"]:
        lines.append("[prepare] note: no validation clips (too few videos for --val-fraction).")
    return "\n".join(lines)
