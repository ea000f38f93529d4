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
import torch

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
    from musedance_core.audio.beat_decode import DecodeSettings, decode_beats
    from musedance_core.audio.beat_net import FRAME_RATE, load_beat_net
    from musedance_core.audio.beats import DEFAULT_MAX_BPM, DEFAULT_MIN_BPM
    from musedance_core.metrics import beat_f_measure
    from musedance_core.training.beat_tracker import load_pieces

    args = parse_args(argv)
    net = load_beat_net(args.weights)
    pieces = load_pieces(args.data, net.config.n_mels)
    with torch.inference_mode():
        acts = [torch.sigmoid(net(p.mel.float()[None])[0]).numpy().astype(np.float64) for p in pieces]
    results = []
    for values in itertools.product(*GRID.values()):
        settings = DecodeSettings(**dict(zip(GRID, values)))
        t0 = time.perf_counter()
        beat_f, down_f, conf = [], [], {"beats": [], "beatless": []}
        for piece, act in zip(pieces, acts):
            out = decode_beats(act, FRAME_RATE, DEFAULT_MIN_BPM, DEFAULT_MAX_BPM, settings=settings)
            beats = out.beats / FRAME_RATE
            conf["beats" if len(piece.beats) else "beatless"].append(out.salience)
            if len(piece.beats):
                beat_f.append(beat_f_measure(piece.beats, beats))
                down_f.append(beat_f_measure(piece.downbeats, beats[out.positions == 0]))
        row = {"settings": asdict(settings), "beat_f": float(np.mean(beat_f)), "downbeat_f": float(np.mean(down_f)),
               "score": float(np.mean(beat_f) + 0.5 * np.mean(down_f)), "seconds": time.perf_counter() - t0,
               "confidence_beats_p5": float(np.percentile(conf["beats"], 5)) if conf["beats"] else None,
               "confidence_beatless_max": float(max(conf["beatless"])) if conf["beatless"] else None}
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
