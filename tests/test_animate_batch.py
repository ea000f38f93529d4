"""``animate-batch``: one mp4 per CSV row, resumable, bad rows reported, rows shared out over processes.

Runs the real command (the bundled demo model, 64x64, one step, 1 s of music), as one process
and as two CPU processes under ``accelerate launch``.
"""

from __future__ import annotations

import csv
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _song(path: Path) -> Path:
    import soundfile

    from musedance_core.audio.synth import Groove, render_groove

    track = render_groove(Groove(bpm=120.0, seconds=1.0), seed=1)
    soundfile.write(path, track.samples, track.sample_rate)
    return path


def _image(path: Path, seed: int = 0) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.random.default_rng(seed).random((48, 40, 3)) * 255).astype(np.uint8)).save(path)
    return path


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def _batch(*args: str, launcher: list[str] | None = None, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    command = (launcher or [sys.executable]) + ["-m", "musedance_core", "animate-batch", *args]
    return subprocess.run(command, cwd=cwd, env=ENV | env, capture_output=True, text=True, timeout=300)


def _lines(stdout: str, status: str) -> list[tuple[int, int, str]]:
    """(rank, row, output) of every '[rank r/N] row n <status> <output>' line."""
    pattern = re.compile(rf"^\[rank (\d+)/\d+\] row (\d+) {re.escape(status)} (\S+)", re.M)
    return [(int(rank), int(row), out) for rank, row, out in pattern.findall(stdout)]


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir())}


@pytest.mark.integration
def test_one_process_makes_the_good_rows_reports_the_bad_and_a_rerun_makes_none(tmp_path):
    from musedance_core.video.reader import probe_video

    song = _song(tmp_path / "song.wav")
    for i, name in enumerate(("me0.png", "me1.png", "pics/me2.png")):
        _image(tmp_path / name, i)
    jobs = _write_csv(tmp_path / "jobs.csv", [
        ["image", "music", "prompt", "output", "frames", "fps", "seed"],
        ["me0.png", "song.wav", "bounces", "out/a.mp4", "", "", ""],  # blank cells: the command line's
        ["me1.png", "song.wav", "", "out/b.mp4", "4", "", "3"],
        ["missing.png", "song.wav", "spins", "out/c.mp4", "", "", ""],
        ["pics/me2.png", str(song), "jumps", "out/d.mp4", "", "6", ""],  # relative to the CSV; absolute
        ["me0.png", "song.wav", "waves", "out/e.mp4", "four", "", ""],
    ])
    out = tmp_path / "out"
    out.mkdir()
    (out / ".a.mp4.0badc0de.partial").write_bytes(b"left by a killed run")

    run = _batch(str(jobs), "--steps", "1", "--fps", "8", "--device", "cpu", cwd=tmp_path)
    assert run.returncode == 1, run.stderr  # a row failed
    assert "Traceback" not in run.stderr
    made = _lines(run.stdout, "made")
    assert sorted(o for _, _, o in made) == ["out/a.mp4", "out/b.mp4", "out/d.mp4"]
    assert re.search(r"^\[rank 0/1\] row 3 failed out/c\.mp4: image file not found: '.*missing\.png'", run.stdout, re.M)
    assert "row 5 failed out/e.mp4: column 'frames' must be a number; got 'four'" in run.stdout
    assert "[rank 0/1] done: 3 made, 0 skipped, 2 failed of 5 rows" in run.stdout
    for name, frames, fps in (("a", 8, 8.0), ("b", 4, 8.0), ("d", 6, 6.0)):
        info = probe_video(out / f"{name}.mp4")
        assert (info.num_frames, info.fps, info.width, info.height) == (frames, fps, 64, 64), name
        assert info.has_audio and abs(info.audio_duration - frames / fps) < 0.05, name
    assert sorted(os.listdir(out)) == ["a.mp4", "b.mp4", "d.mp4"]  # no temporary file left, the stale one gone
    with open(tmp_path / "jobs.report-0.csv", newline="") as f:
        report = {int(r["row"]): r for r in csv.DictReader(f)}
    assert [report[n]["status"] for n in range(1, 6)] == ["made", "made", "failed", "made", "failed"]
    assert "image file not found" in report[3]["reason"]

    before = _mtimes(out)
    rerun = _batch(str(jobs), "--steps", "1", "--fps", "8", "--device", "cpu", cwd=tmp_path)
    assert rerun.returncode == 1, rerun.stderr  # the bad rows are still bad
    assert _lines(rerun.stdout, "made") == []
    assert [(row, o) for _, row, o in _lines(rerun.stdout, "skip (exists)")] == [
        (1, "out/a.mp4"), (2, "out/b.mp4"), (4, "out/d.mp4")]
    assert "model:" not in rerun.stdout  # nothing to make, nothing loaded
    assert "done: 0 made, 3 skipped, 2 failed of 5 rows" in rerun.stdout
    assert _mtimes(out) == before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_two_processes_make_every_output_once_and_a_rerun_makes_none(tmp_path):
    """``accelerate launch --cpu`` starts a single process (more need mpirun), so two CPU processes
    are launched the torchrun way with no GPU visible; the batch then joins them over gloo."""
    from musedance_core.video.reader import probe_video

    _song(tmp_path / "song.wav")
    for i in range(4):
        _image(tmp_path / f"me{i}.png", i)
    rows = [["image", "music", "prompt", "output"]]
    rows += [[f"me{i}.png", "song.wav", "dances", f"out/{name}.mp4"] for i, name in enumerate("abcd")]
    rows.insert(2, ["missing.png", "song.wav", "dances", "out/x.mp4"])  # row 2: rank 1's, which has less to do
    jobs = _write_csv(tmp_path / "jobs.csv", rows)
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", str(_free_port())]
    run = _batch(str(jobs), "--steps", "1", launcher=launcher, CUDA_VISIBLE_DEVICES="")
    assert run.returncode == 1, run.stdout + run.stderr  # rank 1's failed row fails the whole launch...
    made = _lines(run.stdout, "made")
    # ...but only after rank 0 finished its rows: every output made, each exactly once
    assert sorted(o for _, _, o in made) == ["out/a.mp4", "out/b.mp4", "out/c.mp4", "out/d.mp4"]
    assert {rank for rank, _, _ in made} == {0, 1}
    assert all(rank == (row - 1) % 2 for rank, row, _ in made)
    assert re.search(r"^\[rank 1/2\] row 2 failed out/x\.mp4: image file not found", run.stdout, re.M)
    assert "all 2 processes: 4 made, 0 skipped, 1 failed of 5 rows" in run.stdout
    assert sorted(os.listdir(tmp_path / "out")) == ["a.mp4", "b.mp4", "c.mp4", "d.mp4"]
    assert all(probe_video(tmp_path / "out" / f"{n}.mp4").num_frames == 12 for n in "abcd")  # 1 s at the demo's 12 fps
    assert (tmp_path / "jobs.report-0.csv").is_file() and (tmp_path / "jobs.report-1.csv").is_file()

    before = _mtimes(tmp_path / "out")
    rerun = _batch(str(jobs), "--steps", "1", launcher=launcher[:-1] + [str(_free_port())], CUDA_VISIBLE_DEVICES="")
    assert rerun.returncode == 1, rerun.stdout + rerun.stderr
    assert _lines(rerun.stdout, "made") == []
    assert sorted(o for _, _, o in _lines(rerun.stdout, "skip (exists)")) == [
        "out/a.mp4", "out/b.mp4", "out/c.mp4", "out/d.mp4"]
    assert "all 2 processes: 0 made, 4 skipped, 1 failed of 5 rows" in rerun.stdout
    assert _mtimes(tmp_path / "out") == before


@pytest.mark.parametrize("rows, message", [
    ([["image", "music", "prompt", "output", "stpes"], ["me.png", "song.wav", "x", "a.mp4", "1"]],
     "unknown column(s): 'stpes'"),
    ([["image", "prompt", "output"], ["me.png", "x", "a.mp4"]], "lacks the required column(s) music"),
    ([["image", "music", "prompt", "output"], ["me.png", "song.wav", "x", "a.mp4"],
      ["me.png", "song.wav", "y", "b.mp4"], ["me.png", "song.wav", "z", "./a.mp4"]],
     "rows 1 and 3 of 'jobs.csv' both write './a.mp4'"),
    ([], "has no header row"),
])
def test_a_wrong_csv_stops_before_anything_runs(tmp_path, capsys, rows, message):
    from musedance_core import cli

    _song(tmp_path / "song.wav")
    _image(tmp_path / "me.png")
    jobs = _write_csv(tmp_path / "jobs.csv", rows)
    code = cli.main(["animate-batch", str(jobs), "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs.csv", "me.png", "song.wav"]  # no output, no report


def test_cells_are_converted_and_blank_ones_take_the_command_line_values(tmp_path):
    from musedance_core.batch import read_jobs
    from musedance_core.cli import build_parser, options_from_args

    jobs = _write_csv(tmp_path / "jobs.csv", [
        ["Image", "music", "prompt", "output", "steps", "cfg", "seconds", "scheduler", "negative-prompt"],
        ["a.png", "/songs/x.mp3", "spins", "o/1.mp4", "12.0", "", "2.5", "euler", ""],
        ["", "", "", "", "", "", "", "", ""],  # a blank line is no job
        ["b.png", "x.mp3", "", "o/2.mp4", "1.5", "x", "", "fast", "blur"],
        ["b.png", "x.mp3", "", "o/3.gif", "", "", "", "", ""],
    ])
    args = build_parser().parse_args(["animate-batch", str(jobs), "--steps", "7", "--cfg", "2", "--prompt", "bops",
                                      "--negative-prompt", "static", "--decode-chunk", "2"])
    first, second, third = read_jobs(jobs, options_from_args(args))
    assert first.error is None and first.row == 1
    assert (first.image, first.music, first.output) == (tmp_path / "a.png", Path("/songs/x.mp3"), tmp_path / "o/1.mp4")
    assert (first.settings.steps, first.settings.cfg, first.settings.scheduler) == (12, 2.0, "euler")
    assert (first.seconds, first.prompt, first.negative_prompt, first.settings.decode_chunk) == (2.5, "spins", "static", 2)
    assert second.row == 3 and second.error == "column 'steps' must be a whole number; got '1.5'."
    assert third.error == "output 'o/3.gif' must end in .mp4, .m4v, .mov."
