"""Train MuseDance's beat and downbeat network on music the project renders itself.

    python training/make_beat_data.py --out data/beats_train --pieces 1500
    python training/make_beat_data.py --out data/beats_val --pieces 120 --seed 2
    python training/train_beat_tracker.py --data data/beats_train --val-data data/beats_val \\
        --out runs/beat_tracker --export musedance_core/audio/weights/beat_tracker.safetensors

Runs on the CPU (a GPU is used if present, but the net is small: ~290 k parameters). Checkpoints
atomically every ``--checkpoint-every`` steps; the same command after an interruption (even
``kill -9``) resumes at the last checkpoint and follows the same path as an unbroken run. Ends by
writing the EMA weights to ``<out>/beat_tracker.safetensors`` (and ``--export``), and, with
``--val-data``, the validation beat F-measure of the decoded beats.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from musedance_core.training.beat_tracker import BeatTrainConfig  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = BeatTrainConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=d.data, help="training pieces (default: %(default)s)")
    p.add_argument("--val-data", default=None, help="held-out pieces for the closing evaluation")
    p.add_argument("--out", default=d.output_dir,
                   help="run folder: checkpoints, loss log, weights (default: %(default)s)")
    p.add_argument("--steps", type=int, default=d.steps, help="training steps (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="crops per step (default: %(default)s)")
    p.add_argument("--crop-seconds", type=float, default=d.crop_seconds, help="crop length (default: %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (default: %(default)s)")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every, help="(default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="(default: %(default)s)")
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads; 0 = default")
    p.add_argument("--max-pieces", type=int, default=0, help="use only the first N pieces (0 = all)")
    p.add_argument("--channels", type=int, default=d.net.channels, help="network width (default: %(default)s)")
    p.add_argument("--export", type=Path, default=None, help="also write the final weights here")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> BeatTrainConfig:
    d = BeatTrainConfig()
    return replace(d, data=args.data, val_data=args.val_data, output_dir=args.out, steps=args.steps,
                   batch_size=args.batch_size, crop_seconds=args.crop_seconds, lr=args.lr,
                   checkpoint_every=args.checkpoint_every, seed=args.seed, threads=args.threads,
                   max_pieces=args.max_pieces, net=replace(d.net, channels=args.channels))


def main(argv: list[str] | None = None) -> int:
    from musedance_core.audio.beat_net import save_beat_net
    from musedance_core.errors import MuseDanceError
    from musedance_core.training.beat_tracker import (EMA, build_net, learning_rate, load_pieces, loss_fn,
                                                      make_batch)
    from musedance_core.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

    args = parse_args(argv)
    cfg = config_from_args(args)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        pieces = load_pieces(cfg.data, cfg.net.n_mels, cfg.max_pieces)
    except MuseDanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = build_net(cfg)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = EMA(net, cfg.ema_decay)
    start = 0
    resume = latest_checkpoint(out)
    if resume is not None:
        trainable, opt_state, state, ema_state = load_checkpoint(resume)
        if state.get("config") != _config_key(cfg):
            print(f"error: {resume} was written with another configuration ({state.get('config')}); "
                  f"use another --out or the same options.", file=sys.stderr)
            return 2
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
                                {"config": _config_key(cfg)}, ema=ema.shadow)
    final = ema.copy_to(build_net(cfg)).eval()
    meta = {"trained_steps": cfg.steps, "data": Path(cfg.data).name, "pieces": len(pieces)}
    save_beat_net(final, out / "beat_tracker.safetensors", meta)
    print(f"wrote {out / 'beat_tracker.safetensors'}")
    if args.export:
        args.export.parent.mkdir(parents=True, exist_ok=True)
        save_beat_net(final, args.export, meta)
        print(f"wrote {args.export}")
    if cfg.val_data:
        report = validate(final, load_pieces(cfg.val_data, cfg.net.n_mels))
        (out / "validation.json").write_text(json.dumps(report, indent=1))
        print(f"validation: {json.dumps(report['summary'])}")
    return 0


def _config_key(cfg: BeatTrainConfig) -> dict:
    """What must match to resume: everything that shapes the batches and the net (not the paths)."""
    key = asdict(cfg)
    for name in ("output_dir", "val_data", "checkpoint_every", "log_every", "threads"):
        key.pop(name)
    return json.loads(json.dumps(key))


def validate(net, pieces) -> dict:
    """Beat and downbeat F-measure of the decoded beats on held-out pieces, per category."""
    from musedance_core.training.beat_tracker import piece_activations, score_pieces

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


if __name__ == "__main__":
    sys.exit(main())
