"""Hostile and unusual command-line inputs (issue 24): each is a one-line ``error:`` (exit 2) or a
correct result, never a traceback, and no file is written or overwritten by a refused command.

The matrix grows with every bug: add a row to ``REFUSED`` (or a test below for a result that
must be right) when a new input misbehaves."""

from __future__ import annotations

import hashlib
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FAST = ("--steps", "1", "--width", "64", "--height", "64", "--context-length", "8", "--fps", "8")


def _cli(*args: str | bytes, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "musedance_core", *args], cwd=cwd, capture_output=True,
                          timeout=timeout, check=False, env=os.environ | {"PYTHONPATH": str(ROOT)})


def _text(data: bytes) -> str:
    return data.decode("utf-8", "backslashreplace")


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones too) with a hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_one_error_line(run: subprocess.CompletedProcess, code: int = 2) -> str:
    stderr = _text(run.stderr)
    assert run.returncode == code, stderr
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert stderr.strip().splitlines()[-1] == errors[0], stderr  # the error is the last word
    return errors[0]


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height (8-bit RGB) but holds almost no data: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    """A folder with song.wav (3 s of clicks at 120 BPM), me.png, and hostile inputs next to them."""
    import soundfile
    from PIL import Image

    sr = 22050
    t = np.arange(sr * 3) / sr
    song = 0.05 * np.sin(2 * np.pi * 220 * t)
    for beat in np.arange(0, 3, 0.5):
        i = int(beat * sr)
        song[i:i + 200] += np.hanning(200)
    soundfile.write(tmp_path / "song.wav", song.astype(np.float32), sr)
    (tmp_path / "song.npz").write_bytes((tmp_path / "song.wav").read_bytes())  # a wav named like an output
    (tmp_path / "clip.mp4").write_bytes((tmp_path / "song.wav").read_bytes())
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((60, 48, 3)) * 255).astype(np.uint8)).save(tmp_path / "me.png")
    (tmp_path / "bomb.png").write_bytes(_png_header(30000, 30000))  # PIL's DecompressionBombError
    (tmp_path / "big.png").write_bytes(_png_header(10000, 10000))  # PIL only warns; refused all the same
    nan = np.full((40, 40), 0.5, np.float32)
    nan[3, 3] = np.nan
    Image.fromarray(nan, mode="F").save(tmp_path / "nan.tif")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("a file, not a folder")
    (tmp_path / "old.mp4").write_bytes(b"an earlier video")
    return tmp_path


def _animate(*extra: str | bytes, image: str = "me.png", music: str = "song.wav", out: str = "out.mp4"):
    return ("animate", "--image", image, "--music", music, *FAST, "--out", out, *extra)


# (id, arguments run in the inputs folder, a piece of the error line, exit code)
REFUSED = [
    # -- beats: outputs checked before the analysis; an output that is an input is refused (data loss)
    ("beats-json-is-the-song", ("beats", "song.wav", "--json", "song.wav"), "is the music file", 2),
    ("beats-plot-is-the-song", ("beats", "song.wav", "--plot", "song.wav"), "must end in .png", 2),
    ("beats-plot-png-is-the-song", ("beats", "song.npz", "--plot", "song.npz"), "must end in .png", 2),
    ("beats-features-is-the-song", ("beats", "song.npz", "--features", "song.npz"), "is the music file", 2),
    ("beats-features-adds-npz-onto-the-song", ("beats", "song.npz", "--features", "song"), "is the music file", 2),
    ("beats-json-is-a-folder", ("beats", "song.wav", "--json", "folder"), "is a folder", 2),
    ("beats-plot-is-a-folder", ("beats", "song.wav", "--plot", "folder"), "is a folder", 2),
    ("beats-plot-under-a-file", ("beats", "song.wav", "--plot", "file/beats.png"), "is a file, not a folder", 2),
    ("beats-plot-gif", ("beats", "song.wav", "--plot", "beats.gif"), "must end in .png, .jpg, .jpeg, .webp", 2),
    ("beats-json-and-plot-same", ("beats", "song.wav", "--json", "x.png", "--plot", "x.png"), "both name", 2),
    ("beats-fps-0", ("beats", "song.wav", "--fps", "0"), "fps must be between", 2),
    ("beats-fps-nan", ("beats", "song.wav", "--fps", "nan"), "fps must be between", 2),
    ("beats-fps-negative", ("beats", "song.wav", "--fps", "-12"), "fps must be between", 2),
    ("beats-start-nan", ("beats", "song.wav", "--start", "nan"), "start for song.wav", 2),
    ("beats-missing-music", ("beats", "nothing.wav"), "audio file not found", 2),
    ("beats-music-is-text", ("beats", "notes.txt"), "notes.txt", 2),
    ("inspect-json-is-a-folder", ("inspect", "--json", "folder"), "is a folder", 2),
    # -- animate: numbers
    ("animate-seed-2**64", _animate("--seed", str(2**64)), "0..2**63-1", 2),
    ("animate-seed-negative", _animate("--seed", "-1"), "0..2**63-1", 2),
    ("animate-fps-0", _animate("--fps", "0"), "fps must be between 1 and 120", 2),
    ("animate-fps-negative", _animate("--fps", "-24"), "fps must be between 1 and 120", 2),
    ("animate-fps-nan", _animate("--fps", "nan"), "fps must be between 1 and 120", 2),
    ("animate-fps-inf", _animate("--fps", "inf"), "fps must be between 1 and 120", 2),
    ("animate-frames-negative", _animate("--frames", "-1"), "frames must be 0", 2),
    ("animate-steps-0", _animate("--steps", "0"), "steps must be 1..", 2),
    ("animate-cfg-nan", _animate("--cfg", "nan"), "cfg must be between", 2),
    ("animate-seconds-negative", _animate("--seconds", "-1"), "duration for song.wav", 2),
    # -- animate: outputs
    ("animate-out-is-the-music", _animate(out="song.wav"), "must end in .mp4", 2),
    ("animate-out-is-the-image", _animate(out="me.png"), "must end in .mp4", 2),
    ("animate-out-is-the-music-mp4", _animate(music="clip.mp4", out="clip.mp4"), "is the music file", 2),
    ("animate-out-gif", _animate(out="dance.gif"), "must end in .mp4, .m4v, .mov", 2),
    ("animate-out-no-suffix", _animate(out="dance"), "must end in .mp4, .m4v, .mov", 2),
    ("animate-out-is-a-folder", _animate(out="folder"), "is a folder", 2),
    ("animate-out-under-a-file", _animate(out="file/dance.mp4"), "is a file, not a folder", 2),
    # -- animate: prompts with invalid UTF-8 bytes (they arrive as lone surrogates in sys.argv)
    ("animate-prompt-invalid-utf8", _animate("--prompt", b"dances \xff\xfe wildly"), "not valid UTF-8", 2),
    ("animate-negative-prompt-invalid-utf8", _animate("--negative-prompt", b"\xc3("), "not valid UTF-8", 2),
    # -- animate: images read as ComfyUI reads them, or refused
    ("animate-image-bomb-30000", _animate(image="bomb.png"), "decompression bomb", 2),
    ("animate-image-100-megapixels", _animate(image="big.png"), "decompression bomb", 2),
    ("animate-image-nan-tiff", _animate(image="nan.tif"), "NaN or infinite", 2),
    ("animate-image-is-text", _animate(image="notes.txt"), "cannot read 'notes.txt' as an image", 2),
    ("animate-image-is-a-folder", _animate(image="folder"), "image file is a folder", 2),
    ("animate-image-missing", _animate(image="nothing.png"), "image file not found", 2),
    ("animate-music-missing", _animate(music="nothing.wav"), "audio file not found", 2),
]


@pytest.mark.integration
@pytest.mark.parametrize("args, expected, code", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_hostile_input_is_one_error_line_and_writes_nothing(inputs, args, expected, code):
    before = _snapshot(inputs)
    run = _cli(*args, cwd=inputs)
    line = _assert_one_error_line(run, code)
    assert expected in line, line
    assert _snapshot(inputs) == before, "a refused command wrote or changed a file"


@pytest.mark.integration
def test_beats_outputs_land_where_named_and_say_their_real_names(inputs):
    run = _cli("beats", "song.wav", "--features", "f", "--plot", "new/beats.jpg", "--json", "new/deeper/b.json",
               cwd=inputs)
    assert run.returncode == 0, _text(run.stderr)
    out = _text(run.stdout)
    assert "wrote f.npz (music" in out and "wrote new/beats.jpg" in out
    assert (inputs / "f.npz").is_file() and not (inputs / "f").exists()
    assert (inputs / "new" / "beats.jpg").read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG, not PNG bytes
    assert (inputs / "new" / "deeper" / "b.json").is_file()


@pytest.mark.integration
def test_long_prompt_warns_that_it_was_cut(inputs):
    run = _cli(*_animate("--prompt", "spin " * 200), cwd=inputs)
    assert run.returncode == 0, _text(run.stderr)
    assert "warning: prompt is longer than 77 tokens and was cut" in _text(run.stderr)


@pytest.mark.integration
def test_the_21_minute_refusal_names_what_the_user_can_do(tmp_path):
    import soundfile

    rate = 1000  # 21 minutes in 2.5 MB
    soundfile.write(tmp_path / "long.wav", np.zeros(21 * 60 * rate, np.float32), rate, subtype="PCM_16")
    line = _assert_one_error_line(_cli("beats", "long.wav", cwd=tmp_path))
    assert "--start" in line and "TrimAudioDuration" in line and "max_seconds" not in line
    _cli("beats", "long.wav", "--duration", "30", cwd=tmp_path).check_returncode()


# -- images read as ComfyUI's LoadImage reads them ------------------------------------------------

def test_exif_orientation_is_applied(tmp_path):
    from PIL import Image

    from musedance_core.images import read_image

    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    image.save(tmp_path / "phone.jpg", exif=exif)
    upright = read_image(tmp_path / "phone.jpg")
    assert upright.size == (20, 40)


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    from PIL import Image

    from musedance_core.images import read_image, to_rgb_array

    values = np.linspace(0, 65535, 40 * 40).reshape(40, 40).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "gray16.png")
    rgb = to_rgb_array(read_image(tmp_path / "gray16.png"))
    assert rgb.shape == (40, 40, 3)
    assert abs(float(rgb.mean()) - 0.5) < 0.01  # not almost white
    assert abs(float(rgb[20, 20, 0]) - values[20, 20] / 65535) < 1e-4


def test_float_tiff_without_nan_is_kept(tmp_path):
    from PIL import Image

    from musedance_core.images import read_image, to_rgb_array

    Image.fromarray(np.full((32, 32), 0.25, np.float32), mode="F").save(tmp_path / "f.tif")
    assert np.allclose(to_rgb_array(read_image(tmp_path / "f.tif")), 0.25)


# -- deterministic mp4 ----------------------------------------------------------------------------

def test_same_frames_give_byte_identical_mp4(tmp_path):
    from musedance_core.audio.io import Audio
    from musedance_core.video.writer import write_video

    rng = np.random.default_rng(1)
    frames = (rng.random((20, 64, 96, 3)) * 255).astype(np.uint8)
    audio = Audio(rng.standard_normal((2, 48000 * 2)).astype(np.float32) * 0.1, 48000, 48000)
    a = write_video(tmp_path / "a.mp4", frames, 12, audio=audio).read_bytes()
    b = write_video(tmp_path / "b.mp4", frames, 12, audio=audio).read_bytes()
    assert a == b
    assert b"Lavf" not in a  # no encoder-version tag from the muxer


# -- signals ----------------------------------------------------------------------------------------

@pytest.mark.integration
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_signal_during_animate_stops_cleanly(inputs, sig):
    signum = getattr(signal, sig)
    proc = subprocess.Popen([sys.executable, "-m", "musedance_core", *_animate("--steps", "200", out="old.mp4")],
                            cwd=inputs, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=os.environ | {"PYTHONPATH": str(ROOT)})
    seen = b""
    deadline = time.monotonic() + 120
    while b"music:" not in seen and time.monotonic() < deadline:  # the line printed just before sampling
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
    assert b"music:" in seen, seen
    time.sleep(1.0)  # well into sampling
    assert [p.name for p in inputs.glob(".old.mp4.*.partial")], "the writer's hidden file should exist by now"
    proc.send_signal(signum)
    try:
        _, rest = proc.communicate(timeout=60)
    finally:
        proc.kill()
    stderr = _text(seen + rest)
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith("error: "), stderr
    assert (inputs / "old.mp4").read_bytes() == b"an earlier video"  # the previous output is kept
    assert not [p.name for p in inputs.iterdir() if p.name.startswith(".") or p.name.endswith(".partial")]


# -- the same rules, row by row, in animate-batch -----------------------------------------------------

@pytest.mark.integration
def test_batch_rows_with_hostile_values_fail_alone_with_one_line_each(inputs):
    import csv

    from PIL import Image

    Image.fromarray(np.full((40, 40), 30000, np.uint16)).save(inputs / "gray16.png")
    rows = [["image", "music", "prompt", "output", "seed", "fps"],
            ["me.png", "song.wav", "dances", "a.mp4", str(2**64), ""],
            ["me.png", "song.wav", "dances", "b.mp4", "", "0"],
            ["bomb.png", "song.wav", "dances", "c.mp4", "", ""],
            ["nan.tif", "song.wav", "dances", "d.mp4", "", ""],
            ["me.png", "clip.mp4", "dances", "clip.mp4", "", ""],  # the output is the row's music
            ["gray16.png", "song.wav", "dances", "ok.mp4", "", ""]]
    with open(inputs / "jobs.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    before = (inputs / "clip.mp4").read_bytes()
    run = _cli("animate-batch", "jobs.csv", *FAST, cwd=inputs)
    out, err = _text(run.stdout), _text(run.stderr)
    assert run.returncode == 1, out + err
    assert "Traceback" not in err, err
    assert "row 1 failed a.mp4: seed must be a whole number in 0..2**63-1" in out
    assert "row 2 failed b.mp4: fps must be between 1 and 120" in out
    assert "row 3 failed c.mp4:" in out and "decompression bomb" in out
    assert "row 4 failed d.mp4:" in out and "NaN or infinite" in out
    assert "row 5 failed clip.mp4: output 'clip.mp4' is the row's music file" in out
    assert "row 6 made ok.mp4" in out  # a 16-bit grayscale image animates
    assert (inputs / "clip.mp4").read_bytes() == before
    assert not any((inputs / name).exists() for name in ("a.mp4", "b.mp4", "c.mp4", "d.mp4"))
