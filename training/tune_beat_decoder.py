"""Choose the beat decoder's costs and the no-beat threshold on held-out renders of the training generator.

    python training/tune_beat_decoder.py --data data/beats_val [--weights W] [--out runs/beat_tracker/tuning.json]

The network runs once per piece; then every combination of the grid below is decoded and scored
(mean beat F-measure plus half the mean downbeat F-measure over the pieces with beats). The
confidence of the beatless pieces and of the pieces with beats is printed, so the no-beat and
low-confidence thresholds can be set between them. Use a folder rendered with a seed the net
never trained on (``make_beat_data.py --seed 1``); never the evaluation set in ``bench_data/``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GRID = {
    "tempo_change_cost": (4.0, 10.0),
    "jump_cost": (6.0, 12.0),
    "downbeat_weight": (0.5, 1.0, 2.0),
    "beat_bonus": (0.0, 1.0, 2.0, 3.0),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="held-out pieces (make_beat_data.py layout)")
    p.add_argument("--weights", type=Path, default=None, help="beat tracker weights (default: the shipped ones)")
    p.add_argument("--out", type=Path, default=None, help="write the scores of every combination here (JSON)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from musedance_core.audio.beat_decode import DecodeSettings
    from musedance_core.audio.beat_net import load_beat_net
    from musedance_core.training.beat_tracker import load_pieces, piece_activations, score_pieces

    args = parse_args(argv)
    net = load_beat_net(args.weights)
    pieces = load_pieces(args.data, net.config.n_mels)
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
    if args.out:
        args.out.write_text(json.dumps({"grid": GRID, "results": results, "best": best}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
