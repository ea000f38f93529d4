"""Does the README's main job dance on the beat? Runs it and measures the video against the music.

The main-job command (``animate`` with the bundled image, song and demo model) is run as the README
gives it, and again with the bundled song replaced by synthetic control songs at other tempi (same
image, prompt and seed). Each video's motion energy (frame differences) is measured against the
bundled song's beats with the beat-phase vector strength and BAS (docs/ARCHITECTURE.md, Measures): the
bundled-music video should score higher against the bundled beats than the control videos do.

    .venv/bin/python -m benchmarks.demo_dance_check [--model BUNDLE] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from musedance_core.audio.beats import track_beats
from musedance_core.audio.io import load_audio
from musedance_core.audio.synth import Groove, render_groove
from musedance_core.metrics import BAS_SIGMA_FRAMES
from musedance_core.video.reader import read_video
from musedance_core.training.evaluation.beat_scores import beat_measures

ROOT = Path(__file__).resolve().parents[1]

IMAGE = ROOT / "assets/demo/robot.png"
SONG = ROOT / "assets/demo/groove.mp3"
PROMPT = "a red toy robot bounces on every beat"
CONTROL_TEMPO_RATIOS = (0.75, 1.3)  # far enough from the song's tempo that its beats drift through all phases


def animate(music: Path, out: Path, args) -> float:
    """Runs the main-job command with ``music``; returns its wall time in seconds."""
    cmd = [sys.executable, "-m", "musedance_core", "animate", "--image", str(IMAGE), "--music", str(music),
           "--prompt", PROMPT, "--seconds", str(args.seconds), "--width", str(args.size), "--height", str(args.size),
           "--seed", str(args.seed), "--out", str(out)]
    if args.model:
        cmd += ["--model", str(args.model)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    return time.perf_counter() - t0


def control_song(bpm: float, seconds: float, folder: Path) -> Path:
    """A synthetic drums + bass + chords song at ``bpm``, written as wav."""
    from musedance_core.audio.io import Audio, save_audio

    track = render_groove(Groove(bpm=bpm, seconds=seconds + 1.0), seed=int(bpm))
    path = folder / f"control_{bpm:.0f}bpm.wav"
    save_audio(path, Audio(track.samples[None, :], track.sample_rate, track.sample_rate))
    return path


def main(argv: list[str] | None = None) -> list[str]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="bundle to test (default: the bundled demo model)")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", type=Path, help="also write the table here")
    args = p.parse_args(argv)

    audio = load_audio(SONG, mono=True, duration=args.seconds)
    song = track_beats(audio.samples[0], audio.sample_rate, fps=12.0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = [("bundled song", SONG)] + [(f"control song, {song.tempo * r:.0f} BPM", control_song(song.tempo * r,
                                                                                                 args.seconds, tmp))
                                           for r in CONTROL_TEMPO_RATIOS]
        rows = []
        for name, music in runs:
            out = tmp / f"{len(rows)}.mp4"
            seconds = animate(music, out, args)
            video = read_video(out)
            m = beat_measures(video.frames, song.beat_times, video.fps, BAS_SIGMA_FRAMES)
            rows.append(f"| {name} | {m['vs']:.3f} | {m['bas']:.3f} | {seconds:.0f} s |")
            print(rows[-1], flush=True)
    lines = [f"Bundled song: {song.tempo:.1f} BPM, {len(song.beat_times)} beats in the first {args.seconds:g} s; "
             f"every video measured against the bundled song's beats (BAS sigma {BAS_SIGMA_FRAMES:g} frames).", "",
             "| music the video was made with | beat-phase VS | BAS | animate wall time |", "|---|---|---|---|", *rows]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return lines


if __name__ == "__main__":
    main()
