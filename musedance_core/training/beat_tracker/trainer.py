"""Training the beat and downbeat network (musedance_core.audio.beat_net) on rendered music:
plain binary cross-entropy (the outputs stay probabilities the decoder reads as such), warm-up and
cosine learning rate, EMA weights, atomic checkpoints that resume bit-identically, and the
scores (beat and downbeat F) of decoded beats on held-out pieces. training/train_beat_tracker.py
is its command line."""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ...audio.beat_net import (
    FRAME_RATE,
    BeatNet,
    BeatNetConfig,
)
from ...errors import TrainError
from .pieces import Piece


@dataclass(frozen=True)
class BeatTrainConfig:
    data: str = "data/beats_train"
    val_data: str | None = None
    output_dir: str = "runs/beat_tracker"
    steps: int = 3000
    batch_size: int = 8
    crop_seconds: float = 20.0
    lr: float = 2e-3
    min_lr: float = 5e-5
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    ema_decay: float = 0.998
    noise_items: float = 0.08  # share of batch items replaced by beatless noise or speech-like babble
    checkpoint_every: int = 250
    log_every: int = 25
    seed: int = 0
    threads: int = 0  # torch threads; 0 = torch's default
    max_pieces: int = 0  # 0 = all
    net: BeatNetConfig = BeatNetConfig()


def loss_fn(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked binary cross-entropy over beat and downbeat outputs."""
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(dim=2)
    return (loss * mask).sum() / mask.sum().clamp_min(1.0)


def learning_rate(cfg: BeatTrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to ``min_lr``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def build_net(cfg: BeatTrainConfig) -> BeatNet:
    torch.manual_seed(cfg.seed)
    return BeatNet(cfg.net)


class EMA:
    """Exponential moving average of a module's parameters and buffers."""

    def __init__(self, net: BeatNet, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in net.state_dict().items()}

    @torch.no_grad()
    def update(self, net: BeatNet) -> None:
        for k, v in net.state_dict().items():
            self.shadow[k].mul_(self.decay).add_(v.detach().float(), alpha=1 - self.decay)

    def copy_to(self, net: BeatNet) -> BeatNet:
        net.load_state_dict(self.shadow)
        return net


def piece_activations(net: BeatNet, pieces: list[Piece]) -> list[np.ndarray]:
    """Beat and downbeat probabilities (T, 2) of each piece; the network runs once per piece."""
    with torch.inference_mode():
        return [torch.sigmoid(net(p.mel.float()[None])[0]).numpy().astype(np.float64) for p in pieces]


def score_pieces(pieces: list[Piece], activations: list[np.ndarray], settings=None) -> list[dict]:
    """Decode each piece's activations (default tempo range and meters) and score them against its
    labels: one row per piece with its confidence and, where it has beats, beat and downbeat F."""
    import warnings

    import mir_eval  # a training dependency (requirements-dev.txt), imported only here

    from ...audio.beat_decode import DecodeSettings, decode_beats
    from ...audio.beats import DEFAULT_MAX_BPM, DEFAULT_MIN_BPM

    def f_measure(reference: np.ndarray, estimated: np.ndarray) -> float:  # full lists: no 5 s trimming
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Estimated beats are empty.": scored 0, as meant
            return round(mir_eval.beat.f_measure(np.asarray(reference, float), np.asarray(estimated, float)), 4)

    rows = []
    for piece, act in zip(pieces, activations, strict=True):
        decoded = decode_beats(act, FRAME_RATE, DEFAULT_MIN_BPM, DEFAULT_MAX_BPM,
                               settings=settings or DecodeSettings())
        beats = decoded.beats / FRAME_RATE
        labelled = len(piece.beats) > 0
        rows.append({"piece": piece.name, "category": piece.category, "salience": round(decoded.salience, 3),
                     "beat_f": f_measure(piece.beats, beats) if labelled else None,
                     "downbeat_f": f_measure(piece.downbeats, beats[decoded.positions == 0]) if labelled else None,
                     "num_beats": int(len(beats))})
    return rows


def train(cfg: BeatTrainConfig, export: Path | None = None) -> Path:
    """Train (or resume) the run ``cfg`` describes; returns the weights file it writes
    (``<output_dir>/beat_tracker.safetensors``, also copied to ``export``)."""
    from ...audio.beat_net import save_beat_net
    from ..checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
    from .pieces import load_pieces, make_batch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    pieces = load_pieces(cfg.data, cfg.net.n_mels, cfg.max_pieces)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = build_net(cfg)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = EMA(net, cfg.ema_decay)
    start = 0
    resume = latest_checkpoint(out)
    if resume is not None:
        trainable, opt_state, state, ema_state = load_checkpoint(resume)
        if state.get("config") != config_key(cfg):
            raise TrainError(f"{resume} was written with another configuration ({state.get('config')}); "
                             "use another --out or the same options.")
        net.load_state_dict(trainable)
        optimizer.load_state_dict(opt_state)
        ema.shadow = {k: v.float() for k, v in (ema_state or trainable).items()}
        start = int(state["step"])
        print(f"resumed from {resume} at step {start}")
    print(f"{len(pieces)} pieces, {sum(p.mel.shape[0] for p in pieces) / 3600 / 50:.1f} h; "
          f"{sum(p.numel() for p in net.parameters()) / 1e3:.0f} k parameters; steps {start}..{cfg.steps}")
    log_path = out / "loss.csv"
    new_log = not log_path.is_file() or start == 0
    with open(log_path, "w" if new_log else "a", newline="") as log_file:
        log = csv.writer(log_file)
        if new_log:
            log.writerow(["step", "loss", "lr", "seconds"])
        net.train()
        t0, running = time.perf_counter(), []
        for step in range(start, cfg.steps):
            lr = learning_rate(cfg, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            mel, target, mask = make_batch(pieces, cfg, step)
            loss = loss_fn(net(mel), target, mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()
            ema.update(net)
            running.append(float(loss.detach()))
            if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
                elapsed = time.perf_counter() - t0
                log.writerow([step + 1, f"{np.mean(running):.5f}", f"{lr:.6f}", f"{elapsed:.1f}"])
                log_file.flush()
                print(f"step {step + 1}/{cfg.steps} loss {np.mean(running):.4f} lr {lr:.5f} ({elapsed:.0f} s)",
                      flush=True)
                running = []
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
                save_checkpoint(out, step + 1, net.state_dict(), optimizer.state_dict(),
                                {"config": config_key(cfg)}, ema=ema.shadow)
    final = ema.copy_to(build_net(cfg)).eval()
    meta = {"trained_steps": cfg.steps, "data": Path(cfg.data).name, "pieces": len(pieces)}
    save_beat_net(final, out / "beat_tracker.safetensors", meta)
    print(f"wrote {out / 'beat_tracker.safetensors'}")
    if export:
        export.parent.mkdir(parents=True, exist_ok=True)
        save_beat_net(final, export, meta)
        print(f"wrote {export}")
    if cfg.val_data:
        report = validate(final, load_pieces(cfg.val_data, cfg.net.n_mels))
        (out / "validation.json").write_text(json.dumps(report, indent=1))
        print(f"validation: {json.dumps(report['summary'])}")
    return out / "beat_tracker.safetensors"


def config_key(cfg: BeatTrainConfig) -> dict:
    """What must match to resume: everything that shapes the batches and the net (not the paths)."""
    key = asdict(cfg)
    for name in ("output_dir", "val_data", "checkpoint_every", "log_every", "threads"):
        key.pop(name)
    return json.loads(json.dumps(key))


def validate(net, pieces) -> dict:
    """Beat and downbeat F-measure of the decoded beats on held-out pieces, per category."""
    rows = score_pieces(pieces, piece_activations(net, pieces))
    summary = {}
    for cat in sorted({r["category"] for r in rows}) + ["all"]:
        group = [r for r in rows if cat in ("all", r["category"])]
        scored = [r for r in group if r["beat_f"] is not None]
        summary[cat] = {"pieces": len(group), "salience": round(float(np.mean([r["salience"] for r in group])), 3)}
        if scored:
            summary[cat]["beat_f"] = round(float(np.mean([r["beat_f"] for r in scored])), 3)
            summary[cat]["downbeat_f"] = round(float(np.mean([r["downbeat_f"] for r in scored])), 3)
    return {"summary": summary, "pieces": rows}
