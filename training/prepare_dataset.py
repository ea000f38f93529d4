"""Build a MuseDance training data set from a folder of dance videos with sound.

    python training/prepare_dataset.py --videos my_dances --out data/dances --fps 12 --size 256 \\
        --clip-seconds 4 --stride-seconds 4 --workers 2
    python training/prepare_dataset.py --videos my_dances --out data/dances --width 320 --height 512 \\
        --masks my_dances_densepose --caption-hook my_captioner.py:describe

Every video (mp4, mov, webm, mkv, m4v; found recursively) is read once, streaming:

* Frames are resampled to ``--fps`` by timestamp (output frame k shows the source frame whose time
  is nearest k / fps, so variable-frame-rate files work), rotated as the file's display matrix says,
  resized to cover ``width x height`` and centre-cropped.
* The soundtrack is analysed once as a whole (music features, ``--music-encoder``, and tracked
  beats), then sliced per clip, so clip edges have no edge effects; feature rows are aligned with
  frames (row k = frame k).
* Clips of ``--clip-seconds`` start every ``--stride-seconds``; ``--max-clips-per-video N`` keeps N
  of them spread evenly over the video. Each clip's audio span is saved as ``audio/<id>.flac``.

Captions, per clip, first found wins:
  1. ``--captions-from sidecar`` (default): ``<video>.txt`` (the whole text) or ``<video>.json``
     holding ``{"caption": "..."}`` or ``{"captions": [{"start": s, "end": e, "text": "..."}]}``
     (the entry overlapping the clip most; ``caption`` is the fallback). ``<video>`` is the file
     name with or without its extension (``dance.txt`` or ``dance.mp4.txt``).
  2. ``--caption-hook file.py:function`` (or ``installed.module:function``): a local function
     ``(frames, fps) -> str`` called per clip with ``frames`` uint8 [T, H, W, 3] (the clip as
     saved) and ``fps``. It is loaded once per worker process and must not need the network at
     load or call; it runs in the worker processes, so keep it light or use ``--workers 1``.
  3. ``DEFAULT_CAPTION``.

Masks (optional, ``--masks DIR``): for ``<videos>/<sub>/<stem>.<ext>`` either a mask video
``DIR/<sub>/<stem>.<any video ext>`` (resampled by timestamp like the video) or a folder of
per-source-frame PNGs ``DIR/<sub>/<stem>/00001.png ...`` (sorted by name; PNG i is source frame i).
White (>= 128) is the subject. Videos without a mask get no ``mask`` array (the trainer uses all ones).

Split: whole videos are 'val' when a hash of their relative path falls below ``--val-fraction``
(deterministic; a video keeps its split when others are added).

Resuming: a rerun skips clips already in ``manifest.jsonl`` (a video whose clips are all there is
not decoded again). ``dataset.json`` records the settings; a rerun with different ones is refused.
Unusable videos (unreadable, no audio stream, silent, too short, bad sidecar or mask) are skipped
and listed in ``skipped.jsonl`` (rewritten each run) with the reason; a summary is printed.
The format is in ``musedance_core/training/dataset.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from musedance_core.training.prepare.config import PrepareConfig
from musedance_core.training.prepare.run import prepare, summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=Path, required=True, help="folder of dance videos with sound (searched recursively)")
    p.add_argument("--out", type=Path, required=True, help="data-set folder (created; a rerun resumes)")
    p.add_argument("--fps", type=float, default=12.0, help="frame rate of the clips")
    p.add_argument("--size", type=int, default=256, help="frame width and height (unless --width/--height)")
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--height", type=int, default=None)
    p.add_argument("--clip-seconds", type=float, default=4.0)
    p.add_argument("--stride-seconds", type=float, default=4.0, help="start of one clip to the next")
    p.add_argument("--max-clips-per-video", type=int, default=None, help="keep at most N clips per video, spread evenly")
    p.add_argument("--val-fraction", type=float, default=0.05, help="fraction of videos held out as 'val'")
    p.add_argument("--workers", type=int, default=2, help="parallel processes (one video at a time each)")
    p.add_argument("--captions-from", choices=("sidecar", "none"), default="sidecar")
    p.add_argument("--caption-hook", default=None, help="file.py:function or module:function, (frames uint8 [T,H,W,3], fps) -> str")
    p.add_argument("--masks", type=Path, default=None, help="folder of mask videos or per-frame PNG folders")
    p.add_argument("--music-encoder", default="spectral",
                   help="spectral (default), a folder name in --audio-encoders, or a MERT/HuBERT/wav2vec2/CLAP folder")
    p.add_argument("--audio-encoders", type=Path, action="append", default=[], metavar="DIR",
                   help="folder of music encoder folders, e.g. ComfyUI/models/audio_encoders (repeatable)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    width, height = args.width or args.size, args.height or args.size
    cfg = PrepareConfig(fps=args.fps, width=width, height=height, clip_seconds=args.clip_seconds,
                        stride_seconds=args.stride_seconds, max_clips_per_video=args.max_clips_per_video,
                        val_fraction=args.val_fraction, captions_from=args.captions_from,
                        caption_hook=args.caption_hook,
                        masks=str(args.masks.resolve()) if args.masks else None, music_encoder=args.music_encoder,
                        audio_encoders=tuple(str(d.resolve()) for d in args.audio_encoders))
    try:
        stats = prepare(cfg, args.videos, args.out, workers=max(1, args.workers))
    except ValueError as exc:
        sys.exit(f"prepare_dataset: {exc}")
    except KeyboardInterrupt:
        sys.exit("prepare_dataset: interrupted; run the same command again to resume.")
    print(summary(args.out, stats))


if __name__ == "__main__":
    main()
