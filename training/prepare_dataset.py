"""Build a MuseDance training data set from a folder of dance videos with sound, offline.

    python training/prepare_dataset.py --videos my_dances --out data/dances --fps 12 --size 256
    python training/prepare_dataset.py --videos my_dances --out data/dances --width 320 --height 512 \\
        --mask-model models/segformer-b2-ade --pose-model models/vitpose-base \\
        --caption-model models/SmolVLM-256M-Instruct

Every video (mp4, mov, webm, mkv, m4v; found recursively) is read twice, streaming:

* Frames are resampled to ``--fps`` by timestamp (variable frame rates work), rotated as the file
  says, resized to cover ``width x height`` and centre-cropped.
* The soundtrack is analysed once as a whole (music features, ``--music-encoder``, and tracked
  beats), then sliced per clip; feature rows align with frames (row k = frame k).
* The first pass finds the shot cuts. Clips of ``--clip-seconds`` never cross one; they start on
  the music's downbeats (``--align``), at least ``--stride-seconds`` apart;
  ``--max-clips-per-video N`` keeps N of them spread evenly.
* Subject masks (``--masks-from auto``): a folder of your own masks (``--masks DIR``: a mask video
  ``DIR/<sub>/<stem>.<ext>`` or per-source-frame PNGs ``DIR/<sub>/<stem>/00001.png ...``, white is
  the subject), else a segmentation model (``--mask-model DIR``), else, with no model, a static-
  camera fallback (the shot's median background; a moving camera gets no masks). A clip whose
  subject is seen in fewer than ``--min-visible`` of its frames, or is smaller than
  ``--min-subject`` or larger than ``--max-subject`` of the frame, is refused and counted.
* Body-part maps (``--pose-model DIR``, ViTPose): each subject pixel labelled with its body part,
  so stage 1 weighs hands and head as much as the torso.
* Captions, first found wins: a sidecar (``<video>.txt`` or ``<video>.json`` with ``caption`` or
  timed ``captions``; ``--captions-from none`` ignores them), ``--caption-hook file.py:function``
  (``(frames, fps) -> str``), a vision-language model (``--caption-model DIR`` with the prompt of
  ``--caption-prompt``, seeing ``--caption-frames`` frames), else a template sentence from the
  tempo, the loudness and the subject's measured moves.

Model folders are local (nothing is downloaded): the README's *Preparing your own videos* names
the model families, their layouts and licences. With a model folder the run uses one process
(the models sit on the GPU when there is one).

Split: whole videos are 'val' when a hash of their relative path falls below ``--val-fraction``.
Resuming: finished videos are listed in ``videos.jsonl`` and not decoded again; clips already in
``manifest.jsonl`` are kept. ``dataset.json`` records the settings; a rerun with others is refused.
Unusable videos (unreadable, no audio, silent, too short, no shot long enough, bad sidecar or mask)
are listed in ``skipped.jsonl`` with the reason; a progress bar and a summary are shown.
The format is in ``musedance_core/training/dataset.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from musedance_core.training.prepare.config import ALIGNS, MASKS_FROM, PrepareConfig
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
    d = PrepareConfig()
    p.add_argument("--no-cut-detection", action="store_true",
                   help="treat every video as one shot (single takes); by default clips never cross a shot cut")
    p.add_argument("--align", choices=ALIGNS, default=d.align,
                   help="clips start on the music's downbeats, beats, or every --stride-seconds (none)")
    p.add_argument("--min-subject", type=float, default=d.min_subject,
                   help="least mean subject area per clip, as a fraction of the frame (with masks)")
    p.add_argument("--max-subject", type=float, default=d.max_subject, help="largest mean subject area")
    p.add_argument("--min-visible", type=float, default=d.min_visible,
                   help="fraction of a clip's frames in which the subject must be seen")
    p.add_argument("--mask-model", type=Path, default=None, metavar="DIR",
                   help="person segmentation model folder (transformers, e.g. a SegFormer trained on ADE20K)")
    p.add_argument("--mask-labels", nargs="+", default=[], metavar="LABEL",
                   help="the mask model's classes that are the subject (default: its person-like labels)")
    p.add_argument("--masks-from", choices=MASKS_FROM, default=d.masks_from,
                   help="auto: --masks, else --mask-model, else the static-camera fallback (no model)")
    p.add_argument("--pose-model", type=Path, default=None, metavar="DIR",
                   help="ViTPose model folder: body-part maps for stage 1's focus on the dancer")
    p.add_argument("--caption-model", type=Path, default=None, metavar="DIR",
                   help="vision-language model folder (SmolVLM, Qwen2-VL, Qwen2.5-VL) for motion captions")
    p.add_argument("--caption-prompt", type=Path, default=None, metavar="FILE",
                   help="the captioning instruction (default: musedance_core/training/prepare/motion_caption_prompt.txt)")
    p.add_argument("--caption-frames", type=int, default=d.caption_frames, help="frames of a clip the captioner sees")
    return p.parse_args(argv)


def _folder(path: Path | None) -> str | None:
    return str(path.resolve()) if path is not None else None


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    width, height = args.width or args.size, args.height or args.size
    cfg = PrepareConfig(fps=args.fps, width=width, height=height, clip_seconds=args.clip_seconds,
                        stride_seconds=args.stride_seconds, max_clips_per_video=args.max_clips_per_video,
                        val_fraction=args.val_fraction, captions_from=args.captions_from,
                        caption_hook=args.caption_hook,
                        masks=str(args.masks.resolve()) if args.masks else None, music_encoder=args.music_encoder,
                        audio_encoders=tuple(str(d.resolve()) for d in args.audio_encoders),
                        cut_detection=not args.no_cut_detection, align=args.align, min_subject=args.min_subject, max_subject=args.max_subject,
                        min_visible=args.min_visible, masks_from=args.masks_from,
                        mask_model=_folder(args.mask_model), mask_labels=tuple(args.mask_labels),
                        pose_model=_folder(args.pose_model), caption_model=_folder(args.caption_model),
                        caption_prompt=_folder(args.caption_prompt), caption_frames=args.caption_frames)
    try:
        stats = prepare(cfg, args.videos, args.out, workers=max(1, args.workers))
    except ValueError as exc:
        sys.exit(f"prepare_dataset: {exc}")
    except KeyboardInterrupt:
        sys.exit("prepare_dataset: interrupted; run the same command again to resume.")
    print(summary(args.out, stats))


if __name__ == "__main__":
    main()
