"""The input side of data preparation: which video files, their stable keys, ids and splits, and the
captions and masks that come with them (sidecar files, mask videos or PNG folders, a caption hook)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .config import ID_HASH_CHARS, ID_SLUG_CHARS, VIDEO_EXTS, SkipVideo

# -- names, splits, sidecars ------------------------------------------------------------------------

def find_videos(folder: Path, exclude: tuple[Path, ...] = ()) -> list[Path]:
    """Video files under ``folder`` (recursive, sorted), skipping hidden files and ``exclude`` folders."""
    excluded = [e.resolve() for e in exclude]
    found = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in VIDEO_EXTS or not path.is_file() or path.name.startswith("."):
            continue
        resolved = path.resolve()
        if any(resolved.is_relative_to(e) for e in excluded):
            continue
        found.append(path)
    return found


def _hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def video_key(folder: Path, video: Path) -> str:
    """The video's path relative to the videos folder, with '/' separators."""
    return video.relative_to(folder).as_posix()


def video_split(key: str, val_fraction: float) -> str:
    """'val' when the hash of ``key`` maps below ``val_fraction`` in [0, 1), else 'train'."""
    u = int(_hash(key)[:8], 16) / 2**32
    return "val" if u < val_fraction else "train"


def clip_id(key: str, start_frame: int) -> str:
    """``<slug>-<hash of the relative path>-<start frame>``: unique and stable per video and start."""
    stem = key.rsplit(".", 1)[0]
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", stem)[-ID_SLUG_CHARS:].strip("_") or "video"
    return f"{slug}-{_hash(key)[:ID_HASH_CHARS]}-{start_frame:06d}"


def _sidecar(video: Path, ext: str) -> Path | None:
    for candidate in (video.with_suffix(ext), video.with_name(video.name + ext)):
        if candidate.is_file():
            return candidate
    return None


def read_sidecar(video: Path) -> dict | None:
    """The caption sidecar of ``video`` as {"caption": str | None, "captions": [(start, end, text)]}, or None.

    Raises SkipVideo when a sidecar exists but cannot be used.
    """
    txt, js = _sidecar(video, ".txt"), _sidecar(video, ".json")
    if js is not None:
        try:
            data = json.loads(js.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SkipVideo(f"caption sidecar '{js.name}' is not valid JSON ({exc}).") from exc
        if not isinstance(data, dict):
            raise SkipVideo(f"caption sidecar '{js.name}' must be an object with 'caption' or 'captions'.")
        spans = []
        for n, item in enumerate(data.get("captions") or []):
            try:
                spans.append((float(item["start"]), float(item["end"]), str(item["text"]).strip()))
            except (KeyError, TypeError, ValueError) as exc:
                raise SkipVideo(f"caption sidecar '{js.name}': captions[{n}] needs numeric 'start', 'end' "
                                f"and a 'text'; got {item!r}.") from exc
        caption = data.get("caption")
        return {"caption": str(caption).strip() if caption else None, "captions": spans}
    if txt is not None:
        try:
            text = txt.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SkipVideo(f"caption sidecar '{txt.name}' cannot be read as UTF-8 text ({exc}).") from exc
        return {"caption": text or None, "captions": []}
    return None


def sidecar_caption(sidecar: dict | None, start: float, end: float) -> str | None:
    """The timed caption overlapping [start, end) most, else the whole-video caption, else None."""
    if sidecar is None:
        return None
    best, best_overlap = None, 0.0
    for s, e, text in sidecar["captions"]:
        overlap = min(e, end) - max(s, start)
        if text and overlap > best_overlap:
            best, best_overlap = text, overlap
    return best or sidecar["caption"]


def load_hook(spec: str | None) -> Callable[[np.ndarray, float], str] | None:
    """The caption function ``spec`` names: ``path/to/file.py:function`` (the file is loaded as a
    module) or ``package.module:function`` (an installed module)."""
    if spec is None:
        return None
    module_name, _, func_name = spec.rpartition(":")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name).resolve()
            if not path.is_file():
                raise ImportError(f"no file {path}")
            loader = importlib.util.spec_from_file_location(f"musedance_caption_hook_{path.stem}", path)
            module = importlib.util.module_from_spec(loader)
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except Exception as exc:  # the user's code: any failure at import is reported, not raised as is
        raise ValueError(f"--caption-hook: cannot load '{module_name}' ({type(exc).__name__}: {exc}); give a file "
                         "(my_captioner.py:describe) or an installed module (my_package.captions:describe).") from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ValueError(f"--caption-hook: '{module_name}' has no function '{func_name}'.")  # noqa: TRY004 (a user setting)
    return func


def find_mask(masks: Path, key: str) -> Path | None:
    """The mask video or PNG folder for video ``key`` under ``masks``, or None."""
    stem = masks / key.rsplit(".", 1)[0]
    if stem.is_dir():
        return stem
    for ext in VIDEO_EXTS:
        for candidate in (stem.with_name(stem.name + ext), stem.with_name(stem.name + ext.upper())):
            if candidate.is_file():
                return candidate
    return None
