"""The dance at the top of the README: the demo model's main job as an animated WebP.

    python -m musedance_core animate --image assets/demo/robot.png --music assets/demo/groove.mp3 \\
        --prompt "a red toy robot bounces on every beat" --seconds 8 --out dance.mp4
    python -m scripts.make_readme_animation dance.mp4 --out docs/musedance_demo.webp

Left: the still image; right: the video, both scaled up 4x (nearest neighbour: the demo model works
at 64x64); under it a bar that flashes on each beat the tracker found in the same music.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCALE = 4
BAR = 12  # px, the beat bar under the panels


def main() -> int:
    import numpy as np
    from PIL import Image

    from musedance_core.audio.analysis import ANALYSIS_SAMPLE_RATE
    from musedance_core.audio.beats import track_beats
    from musedance_core.audio.io import load_audio
    from musedance_core.images import fit_image
    from musedance_core.video.reader import probe_video, read_video

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", type=Path, help="the mp4 the animate command wrote")
    p.add_argument("--image", type=Path, default=ROOT / "assets/demo/robot.png", help="the still it animated")
    p.add_argument("--out", type=Path, default=ROOT / "docs/musedance_demo.webp")
    args = p.parse_args()

    info = probe_video(args.video)
    frames = read_video(args.video).frames
    n, h, w, _ = frames.shape
    song = load_audio(args.video, sample_rate=ANALYSIS_SAMPLE_RATE, mono=True)
    pulse = track_beats(song.samples[0], ANALYSIS_SAMPLE_RATE, info.fps).feature("beat_pulse")[:n]
    still = (fit_image(Image.open(args.image), w, h)[0].permute(1, 2, 0).numpy() * 127.5 + 127.5).astype(np.uint8)
    pictures = []
    for frame, beat in zip(frames, pulse):
        panel = np.concatenate([still, frame], axis=1).repeat(SCALE, 0).repeat(SCALE, 1)
        bar = np.zeros((BAR, panel.shape[1], 3), np.uint8)
        bar[:, panel.shape[1] // 2:] = (np.array([255, 200, 40]) * float(beat)).astype(np.uint8)
        pictures.append(Image.fromarray(np.concatenate([panel, bar])))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pictures[0].save(args.out, save_all=True, append_images=pictures[1:], duration=round(1000 / info.fps), loop=0,
                     quality=80, method=6)
    print(f"wrote {args.out}: {len(pictures)} frames, {args.out.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
