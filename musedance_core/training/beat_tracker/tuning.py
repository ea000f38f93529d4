"""Choosing the beat decoder's settings: a grid search over its costs and weights on held-out
pieces, scored by beat F + 0.5 downbeat F (training/tune_beat_decoder.py is its command line)."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

GRID = {
    "tempo_change_cost": (4.0, 10.0),
    "jump_cost": (6.0, 12.0),
    "downbeat_weight": (0.5, 1.0, 2.0),
    "beat_bonus": (0.0, 1.0, 2.0, 3.0),
}


def tune(data: str | Path, weights: Path | None = None, out: Path | None = None) -> dict:
    """Score every GRID combination on the pieces in ``data`` with the net's activations computed
    once; returns (and with ``out`` writes as JSON) {"grid", "results", "best"}."""
    from ...audio.beat_decode import DecodeSettings
    from ...audio.beat_net import load_beat_net
    from .pieces import load_pieces
    from .trainer import piece_activations, score_pieces

    net = load_beat_net(weights)
    pieces = load_pieces(data, net.config.n_mels)
    acts = piece_activations(net, pieces)
    results = []
    for values in itertools.product(*GRID.values()):
        settings = DecodeSettings(**dict(zip(GRID, values)))
        t0 = time.perf_counter()
        rows = score_pieces(pieces, acts, settings)
        scored = [r for r in rows if r["beat_f"] is not None]
        beatless = [r["salience"] for r in rows if r["beat_f"] is None]
        beat_f, down_f = np.mean([r["beat_f"] for r in scored]), np.mean([r["downbeat_f"] for r in scored])
        row = {"settings": asdict(settings), "beat_f": float(beat_f), "downbeat_f": float(down_f),
               "score": float(beat_f + 0.5 * down_f), "seconds": time.perf_counter() - t0,
               "confidence_beats_p5": float(np.percentile([r["salience"] for r in scored], 5)) if scored else None,
               "confidence_beatless_max": float(max(beatless)) if beatless else None}
        results.append(row)
        print(f"{dict(zip(GRID, values))}: beat F {row['beat_f']:.4f}, downbeat F {row['downbeat_f']:.4f}, "
              f"confidence beats p5 {row['confidence_beats_p5']}, beatless max {row['confidence_beatless_max']}",
              flush=True)
    best = max(results, key=lambda r: r["score"])
    print(f"best: {json.dumps(best)}")
    report = {"grid": GRID, "results": results, "best": best}
    if out:
        out.write_text(json.dumps(report, indent=1))
    return report
