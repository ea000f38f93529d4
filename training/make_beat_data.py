"""Training data for the learned beat/downbeat tracker: procedural music with exact labels.

    python training/make_beat_data.py --out data/beats_train --pieces 5000 --seed 0 --workers 2
    python training/make_beat_data.py --out data/beats_heldout --pieces 300 --seed 1   # held-out seeds

Every piece is composed from scratch (``musedance_core.training.beat_tracker.music``: no public music is
used), rendered with FluidSynth through one of ``--soundfonts`` and augmented
(``musedance_core.training.beat_tracker.render``). Per piece ``piece_NNNNN.flac`` (mono 22050 Hz, 16 bit) and
``piece_NNNNN.json`` (beats, downbeats in seconds of that audio; beats_per_bar, category, style,
soundfont, augment, seed, generator_version, duration, sample_rate). Piece ``i`` is a pure function of
(``--seed``, i): adding pieces never changes earlier ones, and a rerun skips pieces whose json (written
last, atomically) has the same seed and generator version. ``index.json`` lists the pieces and counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from musedance_core.training.beat_tracker.dataset import generate
from musedance_core.training.beat_tracker.render import DEFAULT_SOUNDFONTS, RenderError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("data/beats_train"), help="output folder")
    p.add_argument("--pieces", type=int, default=1000, help="number of pieces (a rerun adds the missing ones)")
    p.add_argument("--seed", type=int, default=0, help="base seed; another seed gives a disjoint (held-out) set")
    p.add_argument("--seconds-range", type=float, nargs=2, default=(20.0, 45.0), metavar=("MIN", "MAX"),
                   help="composed length of a piece in seconds (the render then cuts 0-10 s from the start)")
    p.add_argument("--soundfonts", type=Path, nargs="+", default=list(DEFAULT_SOUNDFONTS),
                   help="General-MIDI soundfonts to render with (never FluidR3_GM: it is held out)")
    p.add_argument("--workers", type=int, default=2, help="parallel processes")
    p.add_argument("--fluidsynth", default="fluidsynth", help="FluidSynth executable")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        stats = generate(args.out, args.pieces, args.seed, tuple(args.seconds_range), args.soundfonts,
                         args.fluidsynth, args.workers)
    except (ValueError, RenderError) as exc:
        sys.exit(f"make_beat_data: {exc}")
    except KeyboardInterrupt:
        sys.exit("make_beat_data: interrupted; run the same command again to resume.")
    rate = stats["seconds"] / max(stats["written"], 1)
    print(f"[beats] wrote {stats['written']} pieces in {stats['seconds']:.1f} s ({rate:.2f} s/piece); "
          f"{stats['skipped']} were already there. {json.dumps(stats['summary'])}")


if __name__ == "__main__":
    main()
