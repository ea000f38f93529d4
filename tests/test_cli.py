"""The command line, run as a user runs it: a separate process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "musedance_core", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.integration
def test_beats_command_prints_and_writes(groove_file, tmp_path):
    plot, data, feats = tmp_path / "beats.png", tmp_path / "beats.json", tmp_path / "f.npz"
    run = _cli("beats", str(groove_file), "--fps", "24", "--plot", str(plot), "--json", str(data),
               "--features", str(feats))
    assert run.returncode == 0, run.stderr
    assert "tempo 120" in run.stdout or "tempo 119" in run.stdout
    assert "downbeats" in run.stdout and "real time" in run.stdout
    assert plot.read_bytes()[:4] == b"\x89PNG"
    payload = json.loads(data.read_text())
    assert abs(payload["tempo"] - 120) < 2 and payload["num_frames"] == 288
    assert len(payload["beat_times"]) >= 22
    arrays = np.load(feats)
    assert arrays["music"].shape[0] == arrays["beats"].shape[0] == 288


@pytest.mark.integration
def test_beats_segment(groove_file):
    run = _cli("beats", str(groove_file), "--start", "2", "--duration", "5", "--fps", "10")
    assert run.returncode == 0, run.stderr
    assert "5.00 s analysed from 2.00 s" in run.stdout
    assert "50 frames at 10 fps" in run.stdout


@pytest.mark.integration
def test_errors_are_one_clear_line(tmp_path, groove_file):
    run = _cli("beats", str(tmp_path / "missing.wav"))
    assert run.returncode == 2
    assert run.stderr.strip().startswith("error: audio file not found")
    assert "Traceback" not in run.stderr
    run = _cli("beats", str(groove_file), "--fps", "0")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "fps must be between 1 and 120; got 0.0" in run.stderr


@pytest.mark.integration
def test_silent_file_warns_and_succeeds(tmp_path):
    import soundfile

    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros(44100 * 2, np.float32), 44100)
    run = _cli("beats", str(path))
    assert run.returncode == 0, run.stderr
    assert "warning: no beat found: the audio is silent" in run.stderr
    assert "48 frames at 24 fps" in run.stdout


def _image(path: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((60, 48, 4)) * 255).astype(np.uint8), "RGBA").save(path)
    return path


@pytest.mark.integration
def test_animate_writes_an_mp4_with_the_music(groove_file, tmp_path):
    from musedance_core.video.reader import probe_video

    out = tmp_path / "dance.mp4"
    run = _cli("animate", "--image", str(_image(tmp_path / "me.png")), "--music", str(groove_file),
               "--start", "1", "--seconds", "2", "--fps", "8", "--width", "64", "--height", "64",
               "--steps", "1", "--context-length", "8", "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert "model: demo model musedance-demo-tiny.safetensors" in run.stderr
    info = probe_video(out)
    assert info.num_frames == 16 and info.fps == 8.0
    assert info.has_audio and abs(info.audio_duration - 2.0) < 0.05
    assert (info.width, info.height) == (64, 64)


@pytest.mark.integration
def test_animate_with_only_image_and_music_uses_the_model_s_own_size_and_fps(tmp_path):
    """The demo model was trained on 64x64 clips at 12 fps: that, not some fixed 256x256, is the default."""
    import soundfile as sf

    from musedance_core.audio.io import load_audio
    from musedance_core.video.reader import probe_video

    song = load_audio(ROOT / "assets/demo/groove.mp3", start=0.0, duration=1.5)
    sf.write(tmp_path / "song.wav", song.samples.T, song.sample_rate)
    _image(tmp_path / "me.png")
    run = subprocess.run([sys.executable, "-m", "musedance_core", "animate", "--image", "me.png", "--music", "song.wav"],
                         cwd=tmp_path, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    info = probe_video(tmp_path / "musedance.mp4")
    assert (info.width, info.height) == (64, 64) and info.fps == 12.0 and info.num_frames == 18
    assert info.has_audio


@pytest.mark.integration
def test_animate_frames_shorter_than_the_music_cut_the_audio(groove_file, tmp_path):
    from musedance_core.video.reader import probe_video

    out = tmp_path / "short.mp4"
    run = _cli("animate", "--image", str(_image(tmp_path / "me.png")), "--music", str(groove_file),
               "--frames", "6", "--fps", "12", "--width", "64", "--height", "64", "--steps", "1", "--out", str(out))
    assert run.returncode == 0, run.stderr
    info = probe_video(out)
    assert info.num_frames == 6 and abs(info.audio_duration - 0.5) < 0.05


@pytest.mark.integration
def test_animate_bad_image_is_one_clear_line(groove_file, tmp_path):
    bad = tmp_path / "photo.png"
    bad.write_bytes(b"not an image")
    run = _cli("animate", "--image", str(bad), "--music", str(groove_file), "--out", str(tmp_path / "x.mp4"))
    assert run.returncode == 2 and "cannot read 'photo.png' as an image" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "x.mp4").exists()


@pytest.mark.integration
def test_animate_with_a_bundle_and_a_motion_module_prints_where_tensors_came_from(groove_file, tmp_path):
    import torch

    from musedance_core.checkpoints.bundle import COMPONENTS, save_bundle
    from musedance_core.models.config import tiny_config
    from musedance_core.models.musedance import MuseDanceModel
    from musedance_core.video.reader import probe_video
    from tests.checkpoint_files import TINY_CHANNELS, TINY_LAYERS, Randoms, animatediff_file, save

    torch.manual_seed(0)
    bundle = save_bundle(MuseDanceModel(tiny_config()), tmp_path / "mine.safetensors",
                         parts=tuple(c for c in COMPONENTS if c != "motion"))
    motion = save(animatediff_file(TINY_CHANNELS, TINY_LAYERS, 24, False, Randoms(1)), tmp_path / "mm_v1.ckpt")
    out = tmp_path / "dance.mp4"
    run = _cli("animate", "--image", str(_image(tmp_path / "me.png")), "--music", str(groove_file),
               "--model", str(bundle), "--motion", str(motion), "--frames", "6", "--width", "64", "--height", "64",
               "--steps", "1", "--out", str(out))
    assert run.returncode == 0, run.stderr
    assert "from mm_v1.ckpt" in run.stderr and "ready to run" in run.stderr
    assert "model: mm_v1.ckpt + mine.safetensors" in run.stderr
    assert probe_video(out).num_frames == 6


def test_animate_without_the_demo_model_says_how_to_restore_it(groove_file, tmp_path, monkeypatch, capsys):
    from musedance_core import animate, cli

    monkeypatch.setattr(animate, "DEMO_BUNDLE", tmp_path / "gone.safetensors")
    code = cli.main(["animate", "--image", str(_image(tmp_path / "me.png")), "--music", str(groove_file),
                     "--out", str(tmp_path / "x.mp4")])
    assert code == 2 and not (tmp_path / "x.mp4").exists()
    assert "demo model is missing" in capsys.readouterr().err


@pytest.mark.integration
def test_beat_offset_moves_the_written_beats(groove_file, tmp_path):
    plain, shifted = tmp_path / "plain.json", tmp_path / "shifted.json"
    assert _cli("beats", str(groove_file), "--json", str(plain)).returncode == 0
    run = _cli("beats", str(groove_file), "--json", str(shifted), "--beat-offset-ms", "-30")
    assert run.returncode == 0, run.stderr
    a, b = (np.asarray(json.loads(p.read_text())["beat_times"]) for p in (plain, shifted))
    moved = a - 0.03
    assert np.allclose(b, moved[moved >= 0])  # a beat moved before the start is dropped
    run = _cli("beats", str(groove_file), "--beat-offset-ms", "2000")
    assert run.returncode == 2 and "beat_offset_ms must be between -1000 and 1000" in run.stderr


@pytest.mark.integration
def test_help_names_the_command_the_way_it_was_run():
    """The installed console script calls itself ``musedance``; run as a module it is
    ``python -m musedance_core`` (the README gives both)."""
    module = _cli("animate", "--help")
    assert module.returncode == 0, module.stderr
    assert module.stdout.startswith("usage: python -m musedance_core animate ")
    script = Path(sys.executable).with_name("musedance")
    assert script.is_file(), f"{script} is missing: 'pip install -e .' (bash scripts/setup.sh) installs it"
    run = subprocess.run([str(script), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: musedance ") and "animate-batch" in run.stdout


@pytest.mark.integration
def test_the_installed_command_animates_from_any_folder(tmp_path):
    """`pip install -e .` then `musedance animate ...` (README): the console script finds the core, the
    demo model and the shipped weights from a folder outside the repository."""
    from musedance_core.video.reader import probe_video

    script = Path(sys.executable).with_name("musedance")
    demo = ROOT / "assets" / "demo"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}
    run = subprocess.run([str(script), "animate", "--image", str(demo / "robot.png"), "--music", str(demo / "groove.mp3"),
                          "--prompt", "a red toy robot bounces on every beat", "--seconds", "1", "--steps", "2",
                          "--out", "dance.mp4"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    info = probe_video(tmp_path / "dance.mp4")
    assert info.has_audio and (info.width, info.height) == (64, 64)
