"""A whole preparation run: every video of a folder (in parallel worker processes), resumable, with
the unusable ones listed in skipped.jsonl and a summary."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from .. import dataset as fmt
from .clips import caption_hook, video_job
from .config import (
    DEFAULT_CAPTION,
    GENERATOR,
    GENERATOR_VERSION,
    SKIPPED_NAME,
    PrepareConfig,
)
from .sources import clip_id, find_videos, video_key

# -- the run ----------------------------------------------------------------------------------------

def dataset_info(cfg: PrepareConfig, videos: Path) -> dict:
    from ...types import BEAT_FEATURE_NAMES

    return {"generator": GENERATOR, "generator_version": GENERATOR_VERSION, "config": asdict(cfg),
            "videos": str(videos), "music_encoder": cfg.music_encoder, "beat_features": list(BEAT_FEATURE_NAMES),
            "default_caption": DEFAULT_CAPTION,
            "val_rule": "whole videos: 'val' when int(sha1(relative path)[:8], 16) / 2**32 < val_fraction"}


def prepare(cfg: PrepareConfig, videos: str | Path, root: str | Path, workers: int = 1, log=print) -> dict:
    """Make the data set under ``root`` from the videos under ``videos``; returns run statistics.

    Returns {"videos", "written", "existing", "skipped": [{"video", "reason"}], "seconds", "clips_per_second"}.
    """
    cfg.check()
    videos, root = Path(videos), Path(root)
    if not videos.is_dir():
        raise ValueError(f"--videos '{videos}' is not a folder.")
    if cfg.masks and not Path(cfg.masks).is_dir():
        raise ValueError(f"--masks '{cfg.masks}' is not a folder.")
    caption_hook(cfg)  # fail now, not in every worker
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
    skipped_path = root / SKIPPED_NAME
    skipped_path.write_text("")
    log(f"[prepare] {videos}: {len(files)} videos, {len(done)} clips already in {root}, {workers} worker(s)")
    tasks = []
    for video in files:
        prefix = clip_id(video_key(videos, video), 0)[:-6]
        tasks.append((cfg, str(root), str(videos), str(video), {d for d in done if d.startswith(prefix)}))
    if workers > 1 and len(tasks) > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(min(workers, len(tasks)))
        results = pool.imap(video_job, tasks)
    else:
        pool, results = None, map(video_job, tasks)
    t0 = time.perf_counter()
    written = existing = 0
    skipped: list[dict] = []
    try:
        for n, result in enumerate(results, 1):
            for record in result.records:
                fmt.append_manifest(root, record)
            written += len(result.records)
            existing += result.existing
            if result.skipped:
                entry = {"video": result.key, "reason": result.skipped}
                skipped.append(entry)
                with open(skipped_path, "a") as f:
                    f.write(json.dumps(entry) + "\n")
                log(f"[prepare] {n}/{len(tasks)} {result.key}: skipped: {result.skipped}")
            else:
                notes = f" ({'; '.join(result.notes)})" if result.notes else ""
                log(f"[prepare] {n}/{len(tasks)} {result.key}: {len(result.records)} new clip(s), "
                    f"{result.existing} already there, {result.seconds:.1f} s{notes}")
    finally:
        if pool is not None:
            pool.terminate()
    seconds = time.perf_counter() - t0
    return {"videos": len(files), "written": written, "existing": existing, "skipped": skipped,
            "seconds": seconds, "clips_per_second": written / seconds if seconds > 0 else 0.0}


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
    if stats["skipped"]:
        lines.append(f"[prepare] skipped {len(stats['skipped'])} of {stats['videos']} videos "
                     f"({', '.join(f'{k}: {v}' for k, v in reasons.most_common())}); see {root / SKIPPED_NAME}.")
    if records and not splits["val"]:
        lines.append("[prepare] note: no validation clips (too few videos for --val-fraction).")
    return "\n".join(lines)
