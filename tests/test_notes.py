"""Notes are data: said every time (not once per code line, as Python warnings are), collected by
every open collector, logged once each; and no library call changes another library's logger."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

import numpy as np
import pytest

from musedance_core.audio.io import Audio, save_audio
from musedance_core.cli import main
from musedance_core.notes import LOGGER_NAME, collect_notes, note


def _say_twice() -> None:
    for _ in range(2):
        note("frames=500 is longer than the music")  # one code line, twice


def test_a_note_from_the_same_line_is_collected_every_time(caplog):
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        with collect_notes() as first:
            _say_twice()
        with collect_notes() as second:  # a second run in the same process
            _say_twice()
    assert first == second == ["frames=500 is longer than the music"] * 2
    logged = [r for r in caplog.records if r.name == LOGGER_NAME]
    assert [r.getMessage() for r in logged] == ["frames=500 is longer than the music"] * 4
    assert all(r.levelno == logging.WARNING for r in logged)


def test_nested_collectors_each_get_the_note_and_the_label_names_it_in_the_log(caplog):
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        with collect_notes(label="MuseDance Animate Image") as outer:
            note("before")
            with collect_notes() as inner:  # the pipeline's own, inside the node's
                note("inside")
            note("after")
    assert outer == ["before", "inside", "after"] and inner == ["inside"]
    assert [r.getMessage() for r in caplog.records if r.name == LOGGER_NAME] == [
        "MuseDance Animate Image: before", "MuseDance Animate Image: inside", "MuseDance Animate Image: after"]


def test_a_note_outside_any_collector_is_still_logged(caplog):
    with caplog.at_level(logging.WARNING, logger=LOGGER_NAME):
        note("said to the log only")
    assert "said to the log only" in caplog.text


def test_threads_collect_their_own_notes():
    results: dict[int, list[str]] = {}
    barrier = threading.Barrier(2)

    def run(n: int) -> None:
        with collect_notes() as notes:
            barrier.wait()  # both collectors open at once
            note(f"thread {n}")
            barrier.wait()
        results[n] = notes

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {0: ["thread 0"], 1: ["thread 1"]}


@pytest.mark.integration
def test_importing_the_core_and_building_a_model_leave_the_diffusers_logger_alone():
    """In a fresh process: diffusers sets its own level when imported; MuseDance never changes it."""
    code = (
        "import logging, diffusers, torch\n"
        "before = logging.getLogger('diffusers').level\n"
        "import musedance_core, musedance_core.pipeline, musedance_core.cli, musedance_core.animate\n"
        "from musedance_core.models.config import tiny_config\n"
        "from musedance_core.models.musedance import MuseDanceModel\n"
        "torch.manual_seed(0)\n"
        "MuseDanceModel(tiny_config())\n"
        "print(before, logging.getLogger('diffusers').level)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    before, after = run.stdout.split()
    assert before == after


def test_the_cli_quiets_diffusers_only_while_it_runs(tmp_path, capsys):
    diffusers, ours = logging.getLogger("diffusers"), logging.getLogger(LOGGER_NAME)
    before = diffusers.level, ours.level, ours.propagate, list(ours.handlers)
    song = save_audio(tmp_path / "silence.wav", Audio(np.zeros((1, 22050), np.float32), 22050, 22050))
    assert main(["beats", str(song)]) == 0
    assert capsys.readouterr().err.count("warning: no beat found: the audio is silent") == 1  # once, not twice
    assert (diffusers.level, ours.level, ours.propagate, list(ours.handlers)) == before
