"""The pack as the Comfy Registry ships it: pyproject metadata, and the files .comfyignore keeps
are enough for ComfyUI to load the pack and run an example workflow on a fresh install."""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.comfy_host import ComfyHost, require_comfy

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_pyproject_has_what_the_registry_reads():
    project, comfy = _pyproject()["project"], _pyproject()["tool"]["comfy"]
    assert project["name"] and project["version"].count(".") == 2
    assert {"Repository", "Documentation", "Bug Tracker"} <= set(project["urls"])
    assert "Operating System :: OS Independent" in project["classifiers"]
    assert comfy["PublisherId"] and comfy["requires-comfyui"].startswith(">=0.3.75")
    assert "personal_access_token" in (ROOT / ".github/workflows/publish.yml").read_text()


def _ignored(path: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        anchored = pattern.strip("/")
        if pattern.endswith("/") and (path == anchored or path.startswith(anchored + "/")):
            return True
        if fnmatch.fnmatch(path, anchored):
            return True
    return False


def registry_files() -> list[str]:
    """The repository's files minus what .comfyignore names (its patterns are anchored paths)."""
    patterns = [line.strip() for line in (ROOT / ".comfyignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    return [path for path in tracked if not _ignored(path, patterns) and (ROOT / path).is_file()]


def test_the_registry_package_leaves_out_tests_training_and_scripts():
    files = registry_files()
    assert not [f for f in files if f.split("/")[0] in ("tests", "benchmarks", "training", "scripts", ".ci")]
    assert "musedance_core/audio/weights/beat_tracker.safetensors" in files
    assert "assets/demo/musedance-demo-tiny.safetensors" in files
    assert any(f.startswith("musedance_core/models/clip_tokenizer/") for f in files)
    assert "web/musedance_notes.js" in files
    thumbnails = {Path(f).stem for f in files if f.startswith("example_workflows/") and f.endswith(".jpg")}
    flows = {Path(f).stem for f in files if f.startswith("example_workflows/") and f.count("/") == 1
             and f.endswith(".json")}
    assert flows and flows <= thumbnails  # the template browser shows each with its .jpg


@pytest.mark.integration
def test_the_registry_package_runs_a_workflow_on_a_fresh_comfyui(tmp_path):
    comfy = require_comfy()
    pack = tmp_path / "pack"
    for path in registry_files():
        (pack / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, pack / path)
    flow = json.loads((pack / "example_workflows/api/musedance_dance.json").read_text())
    for node in flow.values():
        if node["class_type"] == "MuseDanceAnimateImage":
            node["inputs"]["steps"] = 1
        if node["class_type"] == "TrimAudioDuration":
            node["inputs"]["duration"] = 1.0
    users_song = tmp_path / "host" / "input" / "musedance_demo_groove.mp3"  # a user's file of that name
    users_song.parent.mkdir(parents=True)
    users_song.write_bytes((ROOT / "assets/demo/groove.mp3").read_bytes()[:-1000])  # still a playable mp3
    with ComfyHost(comfy, tmp_path / "host", pack_dir=pack) as host:
        assert (host.input_dir / "musedance_demo_robot.png").read_bytes() == (ROOT / "assets/demo/robot.png").read_bytes()
        assert users_song.stat().st_size == (ROOT / "assets/demo/groove.mp3").stat().st_size - 1000  # left alone
        assert not list(host.input_dir.glob(".*partial"))
        entry = host.run(flow, timeout=300)
        assert any(p.suffix == ".mp4" for p in host.output_files(entry))
