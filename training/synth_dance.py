"""SynthDance: a procedurally generated music-dance data set with exact beats and exact motion.

    python training/synth_dance.py --out data/synthdance --clips 2000 --size 64 --fps 12 --frames 24 \\
        --seed 0 --workers 2 --val-fraction 0.05
    python training/synth_dance.py --out data/synthdance --preview preview.mp4   # also writes preview.png

Each clip is a simple subject (circle, square, star, triangle, stick figure, blob, robot) with random
colours on a plain, two-tone or gradient background, moving in one of ``STYLES`` locked to the beats
of procedural music (``musedance_core.audio.synth``), with a caption that names subject, colour and
style. Clips are cut from "songs": each song is rendered once, analysed once (music features and
tracked beats over the whole song, then sliced, so clips have no edge effects), and gives
``--clips-per-song`` clips with different subjects, styles and start times. Whole songs go to the
validation split, so validation music is never heard in training.

Everything is a pure function of (seed, index): clip ``i`` is the same whatever ``--clips`` is, a
rerun skips the clips already in the manifest, and ``--workers`` processes songs in parallel.
The format is in ``musedance_core/training/dataset.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from musedance_core.training.synthdance.generator import SynthDanceConfig, generate
from musedance_core.training.synthdance.preview import write_preview


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("data/synthdance"), help="data-set folder")
    p.add_argument("--clips", type=int, default=2000, help="number of clips (a rerun adds the missing ones)")
    p.add_argument("--size", type=int, default=64, help="frame width and height in pixels (64, 96, 128)")
    p.add_argument("--fps", type=float, default=12.0)
    p.add_argument("--frames", type=int, default=24, help="frames per clip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="parallel processes (one song at a time each)")
    p.add_argument("--val-fraction", type=float, default=0.05, help="fraction of songs held out as 'val'")
    p.add_argument("--clips-per-song", type=int, default=4)
    p.add_argument("--song-seconds", type=float, default=16.0, help="length of each rendered song")
    p.add_argument("--val-frames", type=int, default=None,
                   help="frames per validation clip (default: --frames); e.g. 96 for steadier beat metrics")
    p.add_argument("--preview", type=Path, default=None,
                   help="write a preview mp4 (all styles side by side, with the music) and a PNG contact "
                        "sheet next to it, instead of a data set")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cfg = SynthDanceConfig(seed=args.seed, size=args.size, fps=args.fps, num_frames=args.frames,
                           clips_per_song=args.clips_per_song, val_fraction=args.val_fraction,
                           song_seconds=args.song_seconds, val_frames=args.val_frames)
    try:
        cfg.check()
        if args.preview is not None:
            video, png = write_preview(cfg, args.preview)
            print(f"[synthdance] wrote {video} and {png}")
            return
        stats = generate(cfg, args.out, args.clips, workers=args.workers)
    except ValueError as exc:
        sys.exit(f"synth_dance: {exc}")
    except KeyboardInterrupt:
        sys.exit("synth_dance: interrupted; run the same command again to resume.")
    print(f"[synthdance] wrote {stats['written']} clips in {stats['seconds']:.1f} s "
          f"({stats['clips_per_second']:.1f} clips/s); {stats['skipped']} were already there.")


if __name__ == "__main__":
    main()
