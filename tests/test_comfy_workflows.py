"""Integration: the MuseDance nodes and example workflows on a real ComfyUI server.

The workflows run the pack's bundled demo model on the demo picture and song the pack offers to
ComfyUI's input folder at start-up (as on a user's fresh install: the tests write no input the
workflows read); a temporary models folder holds the extra files the loader tests need: a bundle
without motion modules, AnimateDiff-layout motion files at the tiny model's size, files of the
wrong kind, and tiny random-weight music encoder folders. Runs in CI (``require_comfy``
fails there if ComfyUI is missing); the steps and sizes of the example workflows are lowered so
a run takes seconds.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from musedance_core.animate import DEMO_BUNDLE
from musedance_core.checkpoints.assemble import ModelSources, assemble
from musedance_core.checkpoints.bundle import COMPONENTS, save_bundle
from musedance_core.models.config import tiny_config
from musedance_core.models.musedance import MuseDanceModel
from musedance_core.video.reader import probe_video, read_video
from scripts.workflow_formats import strip_meta, ui_to_api
from tests.checkpoint_files import TINY_CHANNELS, TINY_LAYERS, Randoms, animatediff_file, save
from tests.comfy_host import PACK_NAME, ComfyHost, ComfyHostError, require_comfy

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]

BUNDLE = DEMO_BUNDLE.name  # listed from the pack's assets/demo
SAMPLING_LINE = "MuseDance: sampling"  # logged by the Animate node as sampling begins
DEMO_INPUTS = ("musedance_demo_robot.png", "musedance_demo_groove.mp3")
NODES = {
    "MuseDanceModelLoader": (["bundle", "precision"], ["MUSEDANCE_MODEL", "FLOAT"]),
    "MuseDanceMusicEncoderLoader": (["encoder"], ["MUSEDANCE_MUSIC_ENCODER"]),
    "MuseDanceMusicEncoder": (["audio", "fps", "encoder"], ["MUSEDANCE_MUSIC"]),
    "MuseDanceBeatExtractor": (["audio", "fps", "min_bpm", "max_bpm", "beats_per_bar"],
                               ["MUSEDANCE_BEATS", "IMAGE", "FLOAT", "INT", "FLOAT", "FLOAT", "MASK", "MASK"]),
    "MuseDanceAnimateImage": (["model", "image", "music", "beats", "audio", "prompt", "negative_prompt", "seed",
                               "steps", "cfg", "music_strength", "beat_strength", "width", "height", "frames",
                               "context_length", "context_overlap", "scheduler", "keep_model_loaded"],
                              ["IMAGE", "AUDIO", "FLOAT"]),
}


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    comfy = require_comfy()
    workdir = tmp_path_factory.mktemp("musedance-host")
    models = workdir / "models"
    write_assembly_files(models)
    (models / "musedance" / "broken.safetensors").write_bytes(b"\x00" * 64)
    from tests.test_backbones import make_hubert, make_mert

    make_mert(models / "musedance_music_encoders" / "tiny-mert")  # the pack's own folder
    make_hubert(models / "audio_encoders" / "tiny-hubert")  # the folder read before it existed
    with ComfyHost(comfy, workdir) as server:
        from PIL import Image

        # the workflows' inputs come from the pack, not from the test
        assert sorted(p.name for p in server.input_dir.iterdir() if p.is_file()) == sorted(DEMO_INPUTS)
        Image.new("RGB", (1, 1), (255, 0, 0)).save(server.input_dir / "one_pixel.png")
        (server.input_dir / "corrupt.mp3").write_bytes(b"ID3" + bytes(range(256)) * 20)
        yield server


def write_assembly_files(models: Path) -> None:
    """A bundle without motion modules, two AnimateDiff v2 files for it, the same bundle completed
    in-process with the first file (the node must build exactly that model), and a motion LoRA."""
    for folder in ("musedance", "animatediff_models", "checkpoints"):
        (models / folder).mkdir(parents=True)
    torch.manual_seed(0)
    partial = models / "musedance" / "tiny-no-motion.safetensors"
    save_bundle(MuseDanceModel(tiny_config()), partial, parts=tuple(c for c in COMPONENTS if c != "motion"))
    for name, seed in (("mm_a_v2.safetensors", 1), ("mm_b_v2.safetensors", 2)):
        save(animatediff_file(TINY_CHANNELS, TINY_LAYERS, 32, True, Randoms(seed)), models / "animatediff_models" / name)
    model, _ = assemble(ModelSources(bundle=partial, motion=models / "animatediff_models" / "mm_a_v2.safetensors"))
    save_bundle(model, models / "musedance" / "tiny-with-a.safetensors")
    lora = animatediff_file(TINY_CHANNELS, TINY_LAYERS, 32, True, Randoms(3), lora=True)
    save(lora, models / "animatediff_models" / "v2_lora_ZoomIn.safetensors")
    save(lora, models / "checkpoints" / "not_a_base.safetensors")


def api_workflow(name: str) -> dict:
    return json.loads((ROOT / "example_workflows" / "api" / name).read_text())


def fast_settings(flow: dict, **animate) -> dict:
    """Lower the sampling cost of a workflow (1 step, 64x64) and apply overrides."""
    flow = copy.deepcopy(flow)
    for node in flow.values():
        if node["class_type"] == "MuseDanceAnimateImage":
            node["inputs"].update({"steps": 1, "width": 64, "height": 64} | animate)
    return flow


def node_of(flow: dict, class_type: str) -> dict:
    return next(n["inputs"] for n in flow.values() if n["class_type"] == class_type)


def node_errors(entry: dict) -> list[dict]:
    return [data for name, data in entry["status"]["messages"] if name == "execution_error"]


def test_nodes_are_registered_with_their_types(host):
    info = host.object_info()
    for node_id, (inputs, outputs) in NODES.items():
        assert node_id in info, node_id
        assert info[node_id]["input_order"]["required"] == inputs
        assert info[node_id]["output"] == outputs
        assert info[node_id]["category"] == "MuseDance"
        assert info[node_id]["description"]
        for name, spec in info[node_id]["input"]["required"].items():
            assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
    loader = info["MuseDanceModelLoader"]["input"]
    assert BUNDLE in loader["required"]["bundle"][1]["options"]
    assert info["MuseDanceModelLoader"]["input_order"]["optional"] == ["base_checkpoint", "motion_module"]
    assert "mm_a_v2.safetensors" in loader["optional"]["motion_module"][1]["options"]
    assert info["MuseDanceBeatExtractor"]["input_order"]["optional"] == ["beat_offset_ms"]
    assert info["MuseDanceBeatExtractor"]["input"]["optional"]["beat_offset_ms"][1]["default"] == 0.0
    assert loader["optional"]["base_checkpoint"][1]["default"] == "none"


def test_pack_imports_fast_and_cleanly(host):
    seconds, ok = host.import_times()[PACK_NAME]
    assert ok and seconds < 1.0
    assert "IMPORT FAILED" not in host.log_text()


@pytest.mark.parametrize("name", ["musedance_dance.json", "musedance_beats_only.json", "musedance_long_video.json"])
def test_ui_and_api_workflows_agree(host, name):
    info = host.object_info()
    ui = json.loads((ROOT / "example_workflows" / name).read_text())
    assert ui["version"] == 0.4 and all(node["type"] in info for node in ui["nodes"])
    assert ui_to_api(ui, info) == strip_meta(api_workflow(name))


def test_dance_workflow_makes_an_mp4_with_the_music(host):
    """As shipped but for the step count: size and fps left to the model (0 and the loader's fps)."""
    flow = copy.deepcopy(api_workflow("musedance_dance.json"))
    node_of(flow, "MuseDanceAnimateImage")["steps"] = 1
    seconds = node_of(flow, "TrimAudioDuration")["duration"]
    loader = next(key for key, node in flow.items() if node["class_type"] == "MuseDanceModelLoader")
    assert node_of(flow, "MuseDanceMusicEncoder")["fps"] == node_of(flow, "MuseDanceBeatExtractor")["fps"] == [loader, 1]
    assert node_of(flow, "MuseDanceAnimateImage")["width"] == node_of(flow, "MuseDanceAnimateImage")["height"] == 0
    entry = host.run(flow, timeout=300)
    videos = [p for p in host.output_files(entry) if p.suffix == ".mp4"]
    assert len(videos) == 1
    info = probe_video(videos[0])
    fps = 12.0  # the demo model's, from its training data
    assert (info.width, info.height) == (64, 64)  # likewise
    assert info.num_frames == round(seconds * fps) and info.fps == pytest.approx(fps)
    assert info.has_audio and info.audio_duration == pytest.approx(seconds, abs=0.05)


def test_an_api_prompt_saved_before_prompt_guidance_still_runs(host):
    flow = fast_settings(api_workflow("musedance_dance.json"))
    node_of(flow, "TrimAudioDuration")["duration"] = 1.0
    del node_of(flow, "MuseDanceAnimateImage")["prompt_guidance"]
    entry = host.run(flow, timeout=300)
    assert not node_errors(entry)
    assert any(p.suffix == ".mp4" for p in host.output_files(entry))


def test_long_video_workflow_runs_in_windows(host):
    flow = fast_settings(api_workflow("musedance_long_video.json"), context_length=8, context_overlap=2)
    node_of(flow, "TrimAudioDuration")["duration"] = 6.0
    entry = host.run(flow, timeout=600)
    info = probe_video(next(p for p in host.output_files(entry) if p.suffix == ".mp4"))
    assert info.num_frames == 72 and info.has_audio


def test_beats_only_workflow_saves_the_plot(host):
    entry = host.run(api_workflow("musedance_beats_only.json"), timeout=120)
    plots = [p for p in host.output_files(entry) if p.suffix == ".png"]
    assert len(plots) == 1 and plots[0].stat().st_size > 1000
    nudged = api_workflow("musedance_beats_only.json")
    node_of(nudged, "MuseDanceBeatExtractor")["beat_offset_ms"] = 40.0  # the optional input, through the API
    assert [p for p in host.output_files(host.run(nudged, timeout=120)) if p.suffix == ".png"]
    out_of_range = api_workflow("musedance_beats_only.json")
    node_of(out_of_range, "MuseDanceBeatExtractor")["beat_offset_ms"] = 5000.0
    expect_node_error(host, out_of_range, "MuseDanceBeatExtractor", "beat_offset_ms")


def test_interrupt_mid_sampling_then_serve_the_next_prompt(host):
    flow = fast_settings(api_workflow("musedance_dance.json"), steps=200, seed=123)
    started = host.log_text().count(SAMPLING_LINE)
    prompt_id = host.queue(flow)
    deadline = time.monotonic() + 180
    while host.log_text().count(SAMPLING_LINE) == started and time.monotonic() < deadline:
        time.sleep(0.2)  # the Animate node logs this line when sampling begins
    time.sleep(1.0)
    host.interrupt()
    entry = host.wait(prompt_id, timeout=120, check=False)
    interrupted = [data for name, data in entry["status"]["messages"] if name == "execution_interrupted"]
    assert interrupted and interrupted[0]["node_type"] == "MuseDanceAnimateImage"  # stopped inside sampling
    host.run(api_workflow("musedance_beats_only.json"), timeout=120)  # the server still serves


def _dance_frames(host, animate: dict | None = None, **loader) -> np.ndarray:
    """Frames of a short dance made with the loader's inputs set to ``loader`` (and the Animate
    node's to ``animate``), saved losslessly (PNG: ComfyUI's mp4 encoding is not bit-reproducible,
    the sampled frames are)."""
    from PIL import Image

    flow = fast_settings(api_workflow("musedance_dance.json"), seed=5, **(animate or {}))
    node_of(flow, "TrimAudioDuration")["duration"] = 1.0
    node_of(flow, "MuseDanceModelLoader").update(loader)
    animate = next(key for key, node in flow.items() if node["class_type"] == "MuseDanceAnimateImage")
    flow["lossless"] = {"class_type": "SaveImage", "inputs": {"images": [animate, 0], "filename_prefix": "frames"}}
    entry = host.run(flow, timeout=300)
    pngs = sorted(p for p in host.output_files(entry) if p.suffix == ".png" and p.name.startswith("frames"))
    return np.stack([np.asarray(Image.open(p)) for p in pngs]).astype(np.int16)


def test_loader_assembles_bundle_and_motion_module_by_value(host):
    """bundle without motion + mm_a makes exactly the frames of the model the core assembles from
    the same files (saved whole as tiny-with-a); another motion file makes another dance."""
    with_a = _dance_frames(host, bundle="tiny-no-motion.safetensors", motion_module="mm_a_v2.safetensors")
    whole = _dance_frames(host, bundle="tiny-with-a.safetensors", motion_module="none")
    with_b = _dance_frames(host, bundle="tiny-no-motion.safetensors", motion_module="mm_b_v2.safetensors")
    assert len(with_a) == 12
    # the same weights (the core's assembly is compared tensor by tensor in test_motion_loading);
    # here at most float summation order apart: 1/255 on a few values, against ~0.2 mean for mm_b
    difference = np.abs(with_a - whole)
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3
    assert np.abs(with_a - with_b).mean() > 0.05  # one step of 64x64 sampling: small but real
    log = host.log_text()
    assert "MuseDance model assembled" in log and "from mm_a_v2.safetensors" in log


def test_loader_names_wrong_files(host):
    flow = fast_settings(api_workflow("musedance_dance.json"))
    node_of(flow, "MuseDanceModelLoader").update(bundle="tiny-no-motion.safetensors",
                                               motion_module="v2_lora_ZoomIn.safetensors")
    expect_node_error(host, flow, "MuseDanceModelLoader", "is an AnimateDiff motion LoRA")
    node_of(flow, "MuseDanceModelLoader").update(bundle="none", motion_module="none",
                                               base_checkpoint="not_a_base.safetensors")
    expect_node_error(host, flow, "MuseDanceModelLoader", "MuseDance needs a Stable Diffusion 1.5 checkpoint")
    node_of(flow, "MuseDanceModelLoader").update(bundle="tiny-no-motion.safetensors", base_checkpoint="none")
    expect_node_error(host, flow, "MuseDanceModelLoader", "no file provides the motion")
    host.run(api_workflow("musedance_beats_only.json"), timeout=120)  # still healthy


def expect_node_error(host, flow: dict, node_type: str, message: str) -> None:
    """The prompt is refused at validation, or the node fails at run time, with ``message``."""
    try:
        prompt_id = host.queue(flow)
    except ComfyHostError as exc:  # validation errors name the node and the input
        assert node_type in str(exc) and message in str(exc), str(exc)
        return
    entry = host.wait(prompt_id, timeout=300, check=False)
    errors = node_errors(entry)
    assert errors, entry["status"]
    assert errors[0]["node_type"] == node_type
    assert message in errors[0]["exception_message"], errors[0]["exception_message"]


def test_bad_inputs_give_clear_node_errors_and_the_server_keeps_serving(host):
    base = fast_settings(api_workflow("musedance_dance.json"))
    one_pixel = copy.deepcopy(base)
    node_of(one_pixel, "LoadImage")["image"] = "one_pixel.png"
    expect_node_error(host, one_pixel, "MuseDanceAnimateImage", "image is 1x1 pixels")

    corrupt = copy.deepcopy(base)
    node_of(corrupt, "LoadAudio")["audio"] = "corrupt.mp3"
    entry = host.wait(host.queue(corrupt), timeout=120, check=False)
    assert node_errors(entry) and node_errors(entry)[0]["node_type"] == "LoadAudio"

    broken = copy.deepcopy(base)
    node_of(broken, "MuseDanceModelLoader")["bundle"] = "broken.safetensors"
    expect_node_error(host, broken, "MuseDanceModelLoader", "not a readable .safetensors file")

    missing = copy.deepcopy(base)
    node_of(missing, "MuseDanceModelLoader")["bundle"] = "no_such_model.safetensors"
    expect_node_error(host, missing, "MuseDanceModelLoader", "'no_such_model.safetensors' is not in models/musedance")

    too_long = copy.deepcopy(base)
    node_of(too_long, "MuseDanceAnimateImage")["frames"] = 99999
    expect_node_error(host, too_long, "MuseDanceAnimateImage", "Value 99999 bigger than max of 4096")

    bad_tempo = api_workflow("musedance_beats_only.json")
    node_of(bad_tempo, "MuseDanceBeatExtractor").update(min_bpm=150.0, max_bpm=100.0)
    expect_node_error(host, bad_tempo, "MuseDanceBeatExtractor", "min_bpm (150) must be lower than max_bpm (100)")

    host.run(api_workflow("musedance_beats_only.json"), timeout=120)  # still healthy


def _music_graph(fps: float, encoder: str, loader: str | None) -> dict:
    """Demo song -> (Load MuseDance Music Encoder) -> Music Encoder -> PreviewAny (shows the features)."""
    flow = {
        "1": {"class_type": "LoadAudio", "inputs": {"audio": DEMO_INPUTS[1]}},
        "2": {"class_type": "TrimAudioDuration", "inputs": {"audio": ["1", 0], "start_index": 0.0, "duration": 2.0}},
        "4": {"class_type": "MuseDanceMusicEncoder", "inputs": {"audio": ["2", 0], "fps": fps, "encoder": encoder}},
        "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}},
    }
    if loader is not None:
        flow["3"] = {"class_type": "MuseDanceMusicEncoderLoader", "inputs": {"encoder": loader}}
        flow["4"]["inputs"]["encoder_model"] = ["3", 0]
    return flow


def _text(entry: dict, node_id: str) -> str:
    return "".join(entry["outputs"].get(node_id, {}).get("text", []))


def test_a_learned_encoder_from_the_loader_is_loaded_once_across_runs(host):
    loads = lambda name: host.log_text().count(f"MuseDance: loading music encoder '{name}'")  # noqa: E731
    before = loads("tiny-mert")
    first = host.run(_music_graph(12.0, "spectral", loader="tiny-mert"), timeout=120)
    second = host.run(_music_graph(24.0, "spectral", loader="tiny-mert"), timeout=120)  # encodes again, same model
    assert loads("tiny-mert") - before == 1
    assert "mert:tiny-mert:mean" in _text(first, "5") and "mert:tiny-mert:mean" in _text(second, "5")
    assert "fps=12.0" in _text(first, "5") and "fps=24.0" in _text(second, "5")


def test_the_encoder_list_reads_both_folders_and_names_no_paths(host):
    choices = host.object_info("MuseDanceMusicEncoderLoader")["input"]["required"]["encoder"][1]["options"]
    assert {"spectral", "tiny-mert", "tiny-hubert"} <= set(choices)
    entry = host.run(_music_graph(12.0, "tiny-hubert", loader=None), timeout=120)  # the old folder, by the combo
    assert "hubert:tiny-hubert:mean" in _text(entry, "5")
    outside = _music_graph(12.0, "spectral", loader="tiny-mert")
    outside["3"]["inputs"]["encoder"] = str(host.models_dir / "musedance_music_encoders" / "tiny-mert")
    expect_node_error(host, outside, "MuseDanceMusicEncoderLoader", "encoder")


def test_the_beat_schedule_drives_a_core_mask_node(host):
    """Beat Extractor's MASK batch flashes a white image into black frames (ImageCompositeMasked);
    each saved frame's brightness is that frame's value in the FLOAT list."""
    from PIL import Image

    flow = {
        "1": {"class_type": "LoadAudio", "inputs": {"audio": DEMO_INPUTS[1]}},
        "2": {"class_type": "TrimAudioDuration", "inputs": {"audio": ["1", 0], "start_index": 0.0, "duration": 4.0}},
        "3": {"class_type": "MuseDanceBeatExtractor", "inputs": {"audio": ["2", 0], "fps": 12.0, "min_bpm": 0.0,
                                                                 "max_bpm": 0.0, "beats_per_bar": 0}},
        "4": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": ["3", 3], "color": 0}},
        "5": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 0xFFFFFF}},
        "6": {"class_type": "ImageCompositeMasked", "inputs": {"destination": ["4", 0], "source": ["5", 0], "x": 0,
                                                               "y": 0, "resize_source": False, "mask": ["3", 6]}},
        "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "pulse"}},
        "8": {"class_type": "PreviewAny", "inputs": {"source": ["3", 4]}},
        "9": {"class_type": "PreviewAny", "inputs": {"source": ["3", 2]}},
        "10": {"class_type": "PreviewAny", "inputs": {"source": ["3", 5]}},
        "11": {"class_type": "MaskToImage", "inputs": {"mask": ["3", 7]}},
        "12": {"class_type": "SaveImage", "inputs": {"images": ["11", 0], "filename_prefix": "downbeat"}},
    }
    entry = host.run(flow, timeout=120)
    downbeats = np.array(json.loads(_text(entry, "10")))
    down_frames = sorted(p for p in host.output_files(entry) if p.name.startswith("downbeat"))
    down_brightness = np.array([np.asarray(Image.open(p).convert("L"), np.float64).mean() / 255 for p in down_frames])
    assert np.asarray(Image.open(down_frames[0])).shape[:2] == (64, 64)
    assert len(down_frames) == 48 and np.abs(down_brightness - downbeats).max() < 2 / 255
    assert 1 <= int((downbeats > 0.9).sum()) <= 4 * 3  # one per bar (8 beats = 2 bars), a few frames each
    schedule = np.array(json.loads(_text(entry, "8")))
    frames = sorted(p for p in host.output_files(entry) if p.name.startswith("pulse"))
    brightness = np.array([np.asarray(Image.open(p).convert("L"), np.float64).mean() / 255 for p in frames])
    assert len(frames) == len(schedule) == 48  # 4 s at 12 fps
    assert np.abs(brightness - schedule).max() < 2 / 255
    tempo = float(_text(entry, "9"))
    peaks = int(((schedule[1:-1] > schedule[:-2]) & (schedule[1:-1] >= schedule[2:]) & (schedule[1:-1] > 0.5)).sum())
    assert 100 < tempo < 140 and abs(peaks - 4 * tempo / 60) <= 1.5  # one flash per beat of the demo song
    assert np.all(schedule[downbeats > 0.9] > 0.9)  # every downbeat is a beat


def _cached(entry: dict) -> list[str]:
    """The ids of the nodes ComfyUI served from its cache in this run."""
    return next((data["nodes"] for name, data in entry["status"]["messages"] if name == "execution_cached"), [])


def test_notes_of_an_identical_second_run_reach_the_node(host):
    """The same prompt, queued again at once, is served from ComfyUI's cache: the Animate node does
    not run, so it says nothing new (ComfyUI 0.3.75 sends no UI output for a cached node that is
    not an output node; the frontend keeps the box of the run that made the output, see
    test_comfy_frontend). Once another prompt has pushed the node out of the cache, the same
    prompt runs it again in the same server process, and its notes come again: the core says a
    note every time (a Python warning shows once per code line per process)."""
    flow = fast_settings(api_workflow("musedance_dance.json"), frames=4000, seed=11)
    node_of(flow, "TrimAudioDuration")["duration"] = 1.0
    animate = next(key for key, node in flow.items() if node["class_type"] == "MuseDanceAnimateImage")
    note = "frames=4000 is longer than the music (12 frames at 12 fps)"
    log_lines = f"MuseDance Animate Image: {note}"  # the core's log line, labelled with the node's name
    said, sampled = host.log_text().count(log_lines), host.log_text().count(SAMPLING_LINE)

    first = host.run(flow, timeout=300)
    assert animate not in _cached(first) and note in _text(first, animate)
    cached = host.run(copy.deepcopy(flow), timeout=300)
    assert animate in _cached(cached) and _text(cached, animate) in ("", _text(first, animate))
    host.run(api_workflow("musedance_beats_only.json"), timeout=120)  # no Animate node: its cached output goes
    again = host.run(copy.deepcopy(flow), timeout=300)
    assert animate not in _cached(again) and note in _text(again, animate)
    assert host.log_text().count(SAMPLING_LINE) - sampled == 2  # the node ran twice...
    assert host.log_text().count(log_lines) - said == 2  # ...and said its note each time, once


def test_low_memory_switches_make_the_same_frames(host):
    plain = _dance_frames(host)
    saving = _dance_frames(host, animate={"vae_tiling": True, "decode_chunk": 1, "offload": "stages"})
    assert plain.shape == saving.shape == (12, 64, 64, 3)
    assert np.abs(plain - saving).max() <= 1  # float summation order at most


def test_the_headless_api_client_makes_a_dance(host, tmp_path):
    """example_workflows/api/api_client.py, as the README runs it: uploads, queues, downloads the mp4."""
    import subprocess

    from PIL import Image

    Image.new("RGB", (80, 96), (200, 40, 40)).save(tmp_path / "me.png")
    out = tmp_path / "dance.mp4"
    run = subprocess.run([sys.executable, str(ROOT / "example_workflows/api/api_client.py"), "--server", host.url,
                          "--image", str(tmp_path / "me.png"), "--music", str(ROOT / "assets/demo/groove.mp3"),
                          "--seconds", "1", "--steps", "1", "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    info = probe_video(out)
    assert info.num_frames == 12 and (info.width, info.height) == (64, 64) and info.has_audio
