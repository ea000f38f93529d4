"""Issue 22: on a fresh ComfyUI with an empty input folder, every shipped workflow runs to its output,
in UI format through the real frontend and in API format.

One ComfyUI server for the whole file (``ComfyHost``; its input folder starts empty, the pack
copies the demo picture and song into it at start-up) and one headless Chromium page on its
frontend (``tests/frontend.Frontend``). Each ``example_workflows/*.json`` is loaded as a user
would, checked for missing nodes/models and console errors, made cheap through its widgets (2
sampling steps, at most 3 s of music) and queued with the frontend's own Queue path, so the
frontend converts the UI graph to the prompt. Each ``example_workflows/api/*.json`` is posted as it
is, lowered the same way. The workflows are read when the tests are collected, whatever they hold
then. Needs ComfyUI (``require_comfy``), Chromium and Playwright (``require_frontend``); with
``CI=true`` a missing one fails the tests instead of skipping them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from musedance_core.video.reader import probe_video
from tests.comfy_host import ComfyHost, require_comfy
from tests.frontend import Frontend, require_frontend

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "example_workflows"
UI_FLOWS = sorted(EXAMPLES.glob("*.json"))
API_FLOWS = sorted((EXAMPLES / "api").glob("*.json"))
DEMO_INPUTS = {"musedance_demo_robot.png": ROOT / "assets/demo/robot.png",  # what the pack offers (nodes/host.py)
               "musedance_demo_groove.mp3": ROOT / "assets/demo/groove.mp3"}
OUTPUT_KIND = {"musedance_dance": ".mp4", "musedance_long_video": ".mp4", "musedance_beats_only": ".png"}
FAST_STEPS = 2  # MuseDanceAnimateImage steps
MAX_SECONDS = 3.0  # TrimAudioDuration duration
RUN_TIMEOUT = 300.0  # s per workflow run (a few seconds each on 2 CPU cores)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    comfy = require_comfy()
    server = ComfyHost(comfy, tmp_path_factory.mktemp("fresh-comfyui"))
    assert _files(server.input_dir) == [], "the input folder must start empty"
    with server:
        server.inputs_at_start = _files(server.input_dir)  # what the pack put there while ComfyUI started
        yield server


@pytest.fixture(scope="module")
def ui(request):
    require_frontend()  # before the server starts: no Chromium, no server start for nothing
    with Frontend(request.getfixturevalue("host")) as frontend:
        yield frontend


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def _forget_earlier_runs(host: ComfyHost) -> None:
    """Empty ComfyUI's node cache and unload the models, so the next run computes every node as on a
    fresh install (the dance and long-video workflows are identical once lowered: the second would
    be served from the cache). ``POST /free`` only sets a flag that the prompt worker applies after
    its next prompt or when it next wakes, and a wake-up can be missed while it collects garbage; so a
    trivial prompt follows: once it is in the history, the worker applies the flag before it takes
    the next prompt from the queue."""
    host._request("POST", "/free", json={"free_memory": True})  # free_memory unloads the models too
    host.run({"1": {"class_type": "PrimitiveInt", "inputs": {"value": 22}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}, timeout=60)


def _cached_nodes(entry: dict) -> list[str]:
    return [node for name, data in entry["status"]["messages"] if name == "execution_cached" for node in data["nodes"]]


# ---------------------------------------------------------------- outputs
def _check_outputs(host: ComfyHost, name: str, entry: dict) -> None:
    """The run saved its outputs: an mp4 with the music per SaveVideo, a PNG per SaveImage."""
    prompt = entry["prompt"][2]  # what was executed
    classes = [node["class_type"] for node in prompt.values()]
    files = host.output_files(entry)
    assert files, f"{name}: no output files; outputs: {entry.get('outputs')}"
    for path in files:
        assert path.is_file() and path.stat().st_size > 0, f"{name}: {path} is missing or empty"
    if name in OUTPUT_KIND:
        assert any(p.suffix == OUTPUT_KIND[name] for p in files), f"{name}: no {OUTPUT_KIND[name]} among {files}"
    videos = [p for p in files if p.suffix == ".mp4"]
    assert len(videos) == classes.count("SaveVideo"), f"{name}: {files}"
    trims = [node["inputs"]["duration"] for node in prompt.values() if node["class_type"] == "TrimAudioDuration"]
    for video in videos:
        info = probe_video(video)
        assert info.num_frames > 0 and info.has_audio, f"{name}: {info}"
        if len(trims) == 1:  # frames and music both span the trimmed segment
            assert info.audio_duration == pytest.approx(trims[0], abs=0.1), f"{name}: {info}"
            assert abs(info.num_frames - trims[0] * info.fps) <= 1, f"{name}: {info}"
    images = [p for p in files if p.suffix == ".png"]
    assert len(images) >= classes.count("SaveImage"), f"{name}: {files}"
    for image in images:
        assert image.stat().st_size > 1000, f"{name}: {image} is too small to hold a plot"


def _steps_of(entry: dict) -> list[int]:
    return [n["inputs"]["steps"] for n in entry["prompt"][2].values() if n["class_type"] == "MuseDanceAnimateImage"]


# ---------------------------------------------------------------- the fresh server and the page
def test_shipped_workflows_are_found():
    assert {p.stem for p in UI_FLOWS} >= set(OUTPUT_KIND), UI_FLOWS
    assert {p.stem for p in API_FLOWS} >= set(OUTPUT_KIND), API_FLOWS


def test_a_fresh_server_gets_the_demo_inputs_from_the_pack(host):
    assert host.inputs_at_start == sorted(DEMO_INPUTS), host.log_tail()
    for name, source in DEMO_INPUTS.items():
        assert (host.input_dir / name).read_bytes() == source.read_bytes(), name


def test_the_frontend_opens_without_errors(ui):
    assert ui.console_at_open == [], f"console errors while the frontend started: {ui.console_at_open}"


# ---------------------------------------------------------------- UI format, through the frontend
@pytest.mark.parametrize("path", UI_FLOWS, ids=_ids(UI_FLOWS))
def test_ui_workflow_runs_from_the_frontend(host, ui, path):
    workflow = json.loads(path.read_text())
    report = ui.load(workflow, path.stem)
    assert report.nodes == len(workflow["nodes"])
    assert report.missing_nodes == [], f"missing nodes: {report}"
    assert report.missing_models == [], f"missing models: {report}"
    assert report.console == [], f"console errors while loading: {report}"
    types = {node["type"] for node in workflow["nodes"]}
    if "MuseDanceAnimateImage" in types:
        ui.set_widget("MuseDanceAnimateImage", "steps", FAST_STEPS)
    if "TrimAudioDuration" in types:
        seconds = ui.widget_value("TrimAudioDuration", "duration")
        ui.set_widget("TrimAudioDuration", "duration", min(float(seconds), MAX_SECONDS))

    errors_before = len(ui.console)
    _forget_earlier_runs(host)
    prompt_id = ui.queue()
    entry = host.wait(prompt_id, timeout=RUN_TIMEOUT)
    assert ui.wait_done(prompt_id) == "execution_success"
    assert entry["prompt"][3]["extra_pnginfo"]["workflow"]["nodes"], "not queued by the frontend"
    assert _cached_nodes(entry) == [], "nodes were served from an earlier run's cache"
    assert all(steps == FAST_STEPS for steps in _steps_of(entry)), "the steps widget did not reach the prompt"
    _check_outputs(host, path.stem, entry)
    assert ui.console[errors_before:] == [], "console errors while the workflow ran"


@pytest.mark.parametrize("path", [p for p in UI_FLOWS if (EXAMPLES / "api" / p.name).is_file()],
                         ids=_ids([p for p in UI_FLOWS if (EXAMPLES / "api" / p.name).is_file()]))
def test_the_frontend_queues_what_the_api_twin_says(host, ui, path):
    """The prompt the frontend makes of the UI file is its API twin: the same nodes, links and
    values; inputs the twin leaves out are the node's defaults or frontend-only widgets."""
    info = host.object_info()
    ui.load(json.loads(path.read_text()), path.stem)
    made = ui.graph_to_prompt()
    twin = json.loads((EXAMPLES / "api" / path.name).read_text())
    assert sorted(made) == sorted(twin)
    problems = []
    for node_id, node in twin.items():
        ours = made[node_id]
        if ours["class_type"] != node["class_type"]:
            problems.append(f"{node_id}: {ours['class_type']} != {node['class_type']}")
            continue
        declared = info[node["class_type"]]["input"]
        specs = {**declared.get("required", {}), **declared.get("optional", {})}
        for name in sorted(set(node["inputs"]) | set(ours["inputs"])):
            if name not in ours["inputs"]:
                problems.append(f"{node_id} {node['class_type']}.{name}: only in the API twin")
            elif name not in node["inputs"]:
                spec = specs.get(name)
                if spec is not None and (len(spec) < 2 or spec[1].get("default") != ours["inputs"][name]):
                    problems.append(f"{node_id} {node['class_type']}.{name}={ours['inputs'][name]!r}: not in "
                                    "the API twin and not the default")
            elif ours["inputs"][name] != node["inputs"][name]:
                problems.append(f"{node_id} {node['class_type']}.{name}: frontend {ours['inputs'][name]!r}, "
                                f"API twin {node['inputs'][name]!r}")
    assert problems == []


def test_the_node_shows_its_notes_in_the_frontend_and_clears_them_after_a_clean_run(host, ui):
    """frames beyond the music are cut with a note; web/musedance_notes.js shows it on the node."""
    path = EXAMPLES / "musedance_dance.json"
    ui.load(json.loads(path.read_text()), path.stem)
    ui.set_widget("MuseDanceAnimateImage", "steps", 1)
    ui.set_widget("TrimAudioDuration", "duration", 1.0)
    ui.set_widget("MuseDanceAnimateImage", "frames", 500)
    prompt_id = ui.queue()
    host.wait(prompt_id, timeout=RUN_TIMEOUT)
    assert ui.wait_done(prompt_id) == "execution_success"
    note = ui.widget_value("MuseDanceAnimateImage", "musedance_notes")
    assert note and "frames=500 is longer than the music (12 frames at 12 fps)" in note, note
    prompt_id = ui.queue()  # the same prompt again: ComfyUI serves the node from its cache...
    host.wait(prompt_id, timeout=RUN_TIMEOUT)
    assert ui.wait_done(prompt_id) == "execution_success"
    assert ui.widget_value("MuseDanceAnimateImage", "musedance_notes") == note  # ...and its notes stay shown
    ui.set_widget("MuseDanceAnimateImage", "frames", 0)
    prompt_id = ui.queue()
    host.wait(prompt_id, timeout=RUN_TIMEOUT)
    assert ui.wait_done(prompt_id) == "execution_success"
    assert ui.widget_value("MuseDanceAnimateImage", "musedance_notes") is None  # removed
    assert "musedance_notes" not in json.dumps(ui.graph_to_prompt())  # display only, never sent


# ---------------------------------------------------------------- API format
def _lowered(flow: dict) -> dict:
    flow = copy.deepcopy(flow)
    for node in flow.values():
        if node["class_type"] == "MuseDanceAnimateImage":
            node["inputs"]["steps"] = FAST_STEPS
        if node["class_type"] == "TrimAudioDuration":
            node["inputs"]["duration"] = min(float(node["inputs"]["duration"]), MAX_SECONDS)
    return flow


@pytest.mark.parametrize("path", API_FLOWS, ids=_ids(API_FLOWS))
def test_api_workflow_runs(host, path):
    _forget_earlier_runs(host)
    entry = host.run(_lowered(json.loads(path.read_text())), timeout=RUN_TIMEOUT)
    assert _cached_nodes(entry) == [], "nodes were served from an earlier run's cache"
    assert all(steps == FAST_STEPS for steps in _steps_of(entry))
    _check_outputs(host, path.stem, entry)
