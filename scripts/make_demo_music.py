"""Regenerates assets/demo/groove.mp3, the bundled demo music (20 s, 124 BPM, 4/4).

Made with musedance_core's own synthesiser so that its beats are known exactly and nothing
is downloaded. Run: .venv/bin/python -m scripts.make_demo_music
"""

from pathlib import Path

import numpy as np

from musedance_core.audio.io import Audio, save_audio
from musedance_core.audio.synth import Groove, render_groove

OUT = Path(__file__).resolve().parents[1] / "assets" / "demo" / "groove.mp3"


def main() -> None:
    song = render_groove(Groove(bpm=124.0, beats_per_bar=4, seconds=20.0, intro_bars=2), seed=2024)
    stereo = np.stack([song.samples, song.samples])
    save_audio(OUT, Audio(stereo, song.sample_rate, song.sample_rate))
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB); beats every {60 / 124:.3f} s from 0.0 s")


if __name__ == "__main__":
    main()
