"""Training data: clips listed in a ``manifest.jsonl`` (SynthDance or prepare_dataset.py output).

Each manifest line names a clip ``.npz`` holding ``frames`` uint8 [T, H, W, 3], optional ``mask``
uint8 [T, H, W] (the subject), optional ``parts`` uint8 [T, H, W] (body parts, 0 = none),
``music`` float32 [T, D] and ``beats`` float32 [T, K], plus the clip's ``caption`` and ``split``.

The example's ``mask`` is the subject focus the loss weighs by (steps.py: 1 + mask_weight * focus):
the subject mask, and where part maps exist and ``part_focus`` > 0, the same subject with every
visible body part given an equal share of the weight, so hands and head count as much as the
torso (the role DensePose plays in the paper's stage 1).

Sampling is a pure function of (seed, epoch, index), and batches follow a per-epoch permutation:
the run's k-th sample is a pure function of k (``SampleSet``). A run's data position is one number,
the samples seen, so a resumed run continues with exactly the batches it would have seen, on any
number of processes. ``make_loader`` deals consecutive batches of sample numbers to the processes
in turn (through ``accelerator.prepare``), so one global batch holds the same samples whatever the
process count; worker processes load them ahead of the step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError

MODES = ("image", "frame", "clip")


def read_manifest(root: str | Path, split: str | None = None) -> list[dict]:
    """The clips of ``split`` listed in ``root/manifest.jsonl`` (a torn last line is skipped)."""
    from .dataset import read_manifest as read_lines

    if not (Path(root) / "manifest.jsonl").is_file():
        raise InputError(f"no manifest.jsonl in '{root}'. Make a data set with training/synth_dance.py or "
                         "training/prepare_dataset.py first.")
    records = read_lines(root, split)
    if not records:
        raise InputError(f"'{root}/manifest.jsonl' lists no clips" + (f" in split '{split}'" if split else "") + ".")
    return records


def repeat_by_style(records: list[dict] | tuple[dict, ...], times: dict[str, int]) -> tuple[dict, ...]:
    """Each clip whose manifest ``style`` is a key of ``times`` listed that many times (in place), so
    an epoch shows the styles a model finds hardest more often; every copy draws its own window.
    A style no training clip has is an error: a typo would otherwise change nothing, silently."""
    present = {r.get("style") for r in records}
    missing = sorted(set(times) - present)
    if missing:
        named = sorted(s for s in present if s)
        raise InputError(f"repeat_by_style names {missing}, which no training clip has; the manifest's styles are "
                         f"{named or 'none (no clip has a style field)'}.")
    return tuple(r for r in records for _ in range(times.get(r.get("style"), 1)))


@dataclass(frozen=True)
class ClipSampler:
    """Turns a clip into one training example.

    mode: "image" (one frame, for the VAE), "frame" (stage 1: a target frame and a reference
    frame at most ``reference_window`` frames away) or "clip" (stage 2: ``num_frames`` frames
    and a reference frame from anywhere in the clip).
    """

    root: Path
    records: tuple[dict, ...]
    mode: str
    num_frames: int = 16
    reference_window: int = 12
    seed: int = 0
    part_focus: float = 0.0  # 0 = the subject mask only; 1 = every visible body part weighs the same

    def __post_init__(self):
        if self.mode not in MODES:
            raise InputError(f"data mode must be one of {MODES}; got '{self.mode}'.")

    def __len__(self) -> int:
        return len(self.records)

    def example(self, index: int, epoch: int) -> dict:
        record = self.records[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        with np.load(self.root / record["clip"]) as arrays:
            frames = arrays["frames"]
            total = frames.shape[0]
            if self.mode == "clip":
                if total < self.num_frames:
                    raise InputError(f"clip '{record['id']}' has {total} frames; training needs {self.num_frames}.")
                start = int(rng.integers(0, total - self.num_frames + 1))
                picked = np.arange(start, start + self.num_frames)
                ref = int(rng.integers(0, total))
            else:
                t = int(rng.integers(0, total))
                picked = np.array([t])
                lo, hi = max(0, t - self.reference_window), min(total, t + self.reference_window + 1)
                ref = int(rng.integers(lo, hi))
            out = {
                "pixels": _to_pixels(frames[picked]),  # (F, 3, H, W) in [-1, 1]
                "reference": _to_pixels(frames[ref : ref + 1])[0],
                "caption": record.get("caption", ""),
            }
            mask = arrays["mask"][picked] if "mask" in arrays.files else np.ones(frames[picked].shape[:3], np.uint8)
            focus = (mask > 0).astype(np.float32)
            if self.part_focus > 0 and "parts" in arrays.files:
                focus = part_balanced_focus(focus, arrays["parts"][picked], self.part_focus)
            out["mask"] = torch.from_numpy(focus)[:, None]  # (F, 1, H, W)
            if self.mode == "clip":
                out["music"] = torch.from_numpy(arrays["music"][picked].astype(np.float32))
                out["beats"] = torch.from_numpy(arrays["beats"][picked].astype(np.float32))
        return out


MAX_PART_WEIGHT = 8.0  # a part of a few pixels (a hand far away) cannot take over the loss


def part_balanced_focus(mask: np.ndarray, parts: np.ndarray, amount: float) -> np.ndarray:
    """Per frame, the subject ``mask`` [F, H, W] (0/1) reweighted so each visible part of ``parts``
    (labels 1..P) holds an equal share, blended with the plain mask by ``amount`` (0..1); the mean
    over the subject stays 1, so ``mask_weight`` keeps its meaning."""
    out = mask.astype(np.float32).copy()
    for f in range(len(mask)):
        subject = out[f] > 0
        labels = np.where(subject, parts[f], 0)
        present = [p for p in np.unique(labels) if p > 0]
        n = subject.sum()
        if not present or n == 0:
            continue
        weights = np.ones_like(out[f])  # subject pixels no part claims keep weight 1
        for p in present:
            area = labels == p
            weights[area] = min(n / (len(present) * area.sum()), MAX_PART_WEIGHT)
        balanced = np.where(subject, weights, 0.0)
        balanced *= n / balanced.sum()  # mean 1 over the subject
        out[f] = (1 - amount) * out[f] + amount * balanced
    return out


def _to_pixels(frames: np.ndarray) -> torch.Tensor:
    """uint8 [F, H, W, 3] -> float32 [F, 3, H, W] in [-1, 1]."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def collate(examples: list[dict]) -> dict:
    batch = {key: torch.stack([e[key] for e in examples]) for key in examples[0] if key != "caption"}
    batch["caption"] = [e["caption"] for e in examples]
    return batch


def epoch_order(sampler: ClipSampler, epoch: int) -> np.ndarray:
    """The order in which ``epoch`` shows the sampler's clips (a seeded permutation)."""
    return np.random.default_rng([sampler.seed, epoch, 7]).permutation(len(sampler))


class SampleSet(torch.utils.data.Dataset):
    """The run's samples by their global number k (epoch k // clips, place k % clips in that epoch's
    order); each example carries its number as ``sample``, which seeds its random draws."""

    def __init__(self, sampler: ClipSampler):
        self.sampler = sampler
        self._orders: dict[int, np.ndarray] = {}

    def __len__(self) -> int:  # one epoch; the batch sampler goes on past it
        return len(self.sampler)

    def __getitem__(self, k: int) -> dict:
        epoch, place = divmod(int(k), len(self.sampler))
        if epoch not in self._orders:
            self._orders = {epoch: epoch_order(self.sampler, epoch)}  # one epoch at a time is enough
        example = self.sampler.example(int(self._orders[epoch][place]), epoch)
        example["sample"] = torch.tensor(int(k))
        return example


class GlobalBatches(torch.utils.data.Sampler):
    """Endless batches of ``batch_size`` consecutive sample numbers from ``start``. Under
    ``accelerator.prepare`` process r of N takes batches r, r+N, ...: a step's N batches are one
    global batch of N*batch_size consecutive samples, the batch one process would take alone."""

    def __init__(self, start: int, batch_size: int):
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1; got {batch_size}.")
        self.start, self.batch_size = int(start), int(batch_size)

    def __iter__(self):
        k = self.start
        while True:
            yield list(range(k, k + self.batch_size))
            k += self.batch_size


def make_loader(sampler: ClipSampler, batch_size: int, start: int = 0, workers: int = 0,
                pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader of the run's batches from sample ``start`` on: ``workers`` processes read and
    crop the clips ahead of the step (2 batches each), pinned when the model is on a GPU."""
    return torch.utils.data.DataLoader(
        SampleSet(sampler), batch_sampler=GlobalBatches(start, batch_size), collate_fn=collate,
        num_workers=workers, pin_memory=pin_memory, persistent_workers=workers > 0,
        prefetch_factor=2 if workers > 0 else None)


def first_batch(sampler: ClipSampler, size: int) -> dict:
    """The run's first ``size`` samples as one batch (a fixed batch, e.g. to measure the VAE's scale)."""
    samples = SampleSet(sampler)
    return collate([samples[k] for k in range(size)])


def clip_conditions(arrays, record: dict, encoder_id: str):
    """(MusicFeatures, BeatTrack) of a stored clip, for the sampling pipeline (validation, evaluation)."""
    from ..types import BeatTrack, MusicFeatures

    fps = float(record["fps"])
    music = arrays["music"].astype(np.float32)
    beats = arrays["beats"].astype(np.float32)
    duration = music.shape[0] / fps
    beat_times = arrays["beat_times"] if "beat_times" in arrays.files else np.zeros(0)
    downbeats = arrays["downbeat_times"] if "downbeat_times" in arrays.files else np.zeros(0)
    features = MusicFeatures(music, fps, record.get("music_encoder", encoder_id), 0.0, duration, 22050)
    track = BeatTrack(np.asarray(beat_times, float), np.asarray(downbeats, float), float(record.get("bpm", 0.0)),
                      int(record.get("beats_per_bar", 4)), beats, fps, duration, np.zeros(music.shape[0], np.float32))
    return features, track
