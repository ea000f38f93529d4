"""On-disk format of a MuseDance training data set (SynthDance and prepare_dataset.py share it).

A data set is a folder::

    <root>/manifest.jsonl      one JSON object per clip (see RECORD_KEYS), appended line by line
    <root>/dataset.json        how the set was made (generator, parameters, split rule)
    <root>/clips/<id>.npz      the clip's arrays (see ARRAY_KEYS)
    <root>/audio/<id>.flac     the clip's music, exactly the clip's span

Arrays in ``clips/<id>.npz`` (T frames, H x W pixels):
    frames          uint8   [T, H, W, 3]
    mask            uint8   [T, H, W]   1 on the subject, 0 elsewhere (optional for real video)
    parts           uint8   [T, H, W]   body part of each subject pixel, 0 = none (optional; a pose model's)
    music           float32 [T, D]      music encoder features at fps (record["music_encoder"])
    beats           float32 [T, K]      tracked beat features (``track_beats(...).frame_features``)
    beats_true      float32 [T, K]      the same features from the exact beats (SynthDance only)
    beat_times      float64 [NB]        exact beats in [0, T/fps), seconds from the clip start
    downbeat_times  float64 [ND]        exact downbeats in [0, T/fps), seconds from the clip start
    motion          float32 [T, 4]      ground-truth subject track (x, y, angle, scale), SynthDance only

Files are written under a temporary name and renamed, and each manifest line is written with one
``write`` on an ``O_APPEND`` descriptor, so an interrupted run leaves at most one torn last line,
which ``read_manifest`` skips and ``append_manifest`` repairs; generators resume by skipping the
ids already listed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..notes import note

MANIFEST_NAME = "manifest.jsonl"
INFO_NAME = "dataset.json"
CLIPS_DIR = "clips"
AUDIO_DIR = "audio"
AUDIO_EXT = ".flac"
FORMAT_VERSION = 1
SPLITS = ("train", "val")
# Keys every manifest record has (generators may add more, e.g. SynthDance's "music_id").
RECORD_KEYS = ("id", "clip", "audio", "caption", "fps", "num_frames", "width", "height", "split", "source",
               "style", "bpm", "beats_per_bar")
ARRAY_KEYS = ("frames", "mask", "parts", "music", "beats", "beats_true", "beat_times", "downbeat_times", "motion")
REQUIRED_ARRAYS = ("frames", "music", "beats")


class DatasetFormatError(ValueError):
    """A record or clip does not follow the data-set format."""


def clip_path(record_id: str) -> str:
    """Relative path of a clip's arrays."""
    return f"{CLIPS_DIR}/{record_id}.npz"


def audio_path(record_id: str) -> str:
    """Relative path of a clip's music."""
    return f"{AUDIO_DIR}/{record_id}{AUDIO_EXT}"


def check_arrays(record: dict, arrays: dict[str, np.ndarray]) -> None:
    """Check shapes and dtypes of a clip's arrays against its record; raises DatasetFormatError."""
    name = record.get("id", "?")
    missing = [k for k in REQUIRED_ARRAYS if k not in arrays]
    if missing:
        raise DatasetFormatError(f"clip '{name}': missing arrays {missing}; need {list(REQUIRED_ARRAYS)}.")
    t, h, w = int(record["num_frames"]), int(record["height"]), int(record["width"])
    expected = {"frames": ((t, h, w, 3), np.uint8), "mask": ((t, h, w), np.uint8), "parts": ((t, h, w), np.uint8),
                "motion": ((t, 4), np.float32)}
    for key, (shape, dtype) in expected.items():
        if key in arrays and (arrays[key].shape != shape or arrays[key].dtype != dtype):
            raise DatasetFormatError(f"clip '{name}': '{key}' must be {np.dtype(dtype).name} {list(shape)}; "
                                     f"got {arrays[key].dtype} {list(arrays[key].shape)}.")
    for key in ("music", "beats", "beats_true"):
        if key in arrays and (arrays[key].ndim != 2 or arrays[key].shape[0] != t or arrays[key].dtype != np.float32):
            raise DatasetFormatError(f"clip '{name}': '{key}' must be float32 [{t}, D]; "
                                     f"got {arrays[key].dtype} {list(arrays[key].shape)}.")


def write_clip(root: str | Path, record: dict, arrays: dict[str, np.ndarray], audio=None) -> dict:
    """Write a clip's arrays (and its music) under ``root``; returns the record with its paths set.

    Args:
        root: data-set folder.
        record: manifest record with at least ``id``, ``num_frames``, ``width``, ``height``.
        arrays: see the module docstring; checked with ``check_arrays``.
        audio: optional ``musedance_core.audio.io.Audio`` of exactly the clip's span.

    The manifest is not touched: call ``append_manifest`` once the files exist.
    """
    root = Path(root)
    check_arrays(record, arrays)
    record = dict(record, clip=clip_path(record["id"]))
    target = root / record["clip"]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    os.replace(tmp, target)
    if audio is not None:
        from musedance_core.audio.io import save_audio

        record["audio"] = audio_path(record["id"])
        (root / record["audio"]).parent.mkdir(parents=True, exist_ok=True)
        save_audio(root / record["audio"], audio)  # writes to a temporary name and renames
    else:
        record.setdefault("audio", None)
    return record


def append_manifest(root: str | Path, record: dict) -> None:
    """Append one record as one line of ``manifest.jsonl`` (one write; repairs a torn last line)."""
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        raise DatasetFormatError(f"record '{record.get('id', '?')}' lacks keys {missing}.")
    if record["split"] not in SPLITS:
        raise DatasetFormatError(f"record '{record['id']}': split must be one of {SPLITS}; got {record['split']!r}.")
    path = Path(root) / MANIFEST_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    _repair_torn_line(path)
    line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _repair_torn_line(path: Path) -> None:
    """Cut an unterminated last line (an interrupted append) off the manifest."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)


def read_manifest(root: str | Path, split: str | None = None) -> list[dict]:
    """Records of ``root/manifest.jsonl`` in file order (first of any repeated id), optionally one split.

    A missing manifest gives an empty list; a torn last line is skipped with a note.
    """
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    records, seen = [], set()
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if n == len(lines) - 1:
                note(f"{path}: skipping a torn last line (an interrupted write)")
                continue
            raise DatasetFormatError(f"{path}, line {n + 1}: not JSON ({exc}).") from exc
        if record["id"] in seen:
            continue
        seen.add(record["id"])
        if split is None or record.get("split", "train") == split:
            records.append(record)
    return records


def load_clip(root: str | Path, record: dict) -> dict[str, np.ndarray]:
    """All arrays of one clip, loaded into memory."""
    with np.load(Path(root) / record["clip"]) as data:
        return {key: data[key] for key in data.files}


def write_info(root: str | Path, info: dict) -> None:
    """Write ``dataset.json`` (atomically)."""
    path = Path(root) / INFO_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(dict(info, format_version=FORMAT_VERSION), indent=2) + "\n")
    os.replace(tmp, path)


def read_info(root: str | Path) -> dict | None:
    """``dataset.json`` of ``root``, or None when there is none."""
    path = Path(root) / INFO_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def check_same_beat_features(root: str | Path, old: dict | None, new: dict) -> None:
    """Refuse to add clips to a data set whose clips hold other beat columns (an older version's)."""
    if old is not None and old.get("beat_features") != new["beat_features"]:
        raise ValueError(f"'{root}' was made by an older MuseDance: its clips hold {len(old.get('beat_features', []))} "
                         f"beat features, this version writes {len(new['beat_features'])}. Delete the folder (or use "
                         "another --out) and run again.")
