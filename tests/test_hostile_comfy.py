"""Hostile input through ComfyUI's HTTP API (issue 24, the ComfyUI part): every bad value a clear
node error (validation or run time), long songs refused before any sampling, model names that
resolve only inside the model folders, /interrupt within a step, and the server still serving a
good prompt at the end. Bundle metadata and the frame/memory limit have core unit tests here too
(the server adds nothing to them).
"""

from __future__ import annotations

import copy
import json
import time

import numpy as np
import pytest

from tests.comfy_host import ComfyHost, ComfyHostError, require_comfy
from tests.test_comfy_workflows import (
    SAMPLING_LINE,
    node_errors,
    expect_node_error,
    fast_settings,
    node_of,
    api_workflow,
)

ANIMATE, LOADER, BEATS, ENCODER = ("MuseDanceAnimateImage", "MuseDanceModelLoader", "MuseDanceBeatExtractor",
                                   "MuseDanceMusicEncoder")
ENCODER_LOADER = "MuseDanceMusicEncoderLoader"


def _song(path, minutes: float, rate: int = 8000) -> None:
    """A click track (8 kHz mono, 16-bit: small files) lasting ``minutes``."""
    import soundfile

    t = np.arange(int(minutes * 60 * rate)) / rate
    clicks = (np.mod(t, 0.5) < 0.03) * np.sin(2 * np.pi * 440 * t) * 0.5
    soundfile.write(str(path), clicks.astype(np.float32), rate, subtype="PCM_16")


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    comfy = require_comfy()
    workdir = tmp_path_factory.mktemp("hostile-host")
    with ComfyHost(comfy, workdir) as server:
        songs = tmp_path_factory.mktemp("songs")
        for name, minutes in (("song_25min.wav", 25.0), ("song_6min.wav", 6.0), ("song_1min.wav", 1.0)):
            _song(songs / name, minutes)
            server.upload_file(songs / name)
        import soundfile

        t = np.arange(192000) / 192000
        soundfile.write(str(songs / "hifi_192k.wav"), (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 192000)
        server.upload_file(songs / "hifi_192k.wav")
        yield server


def _dance(**animate) -> dict:
    flow = fast_settings(api_workflow("musedance_dance.json"), **animate)
    node_of(flow, "TrimAudioDuration")["duration"] = 1.0
    return flow


def _with(flow: dict, class_type: str, **inputs) -> dict:
    flow = copy.deepcopy(flow)
    node_of(flow, class_type).update(inputs)
    return flow


def _beats_only(**inputs) -> dict:
    return _with(api_workflow("musedance_beats_only.json"), BEATS, **inputs)


def _music_graph(encoder: str, loader: bool) -> dict:
    """Demo song -> (encoder loader) -> Music Encoder -> PreviewAny."""
    flow = {
        "1": {"class_type": "LoadAudio", "inputs": {"audio": "musedance_demo_groove.mp3"}},
        "2": {"class_type": "TrimAudioDuration", "inputs": {"audio": ["1", 0], "start_index": 0.0, "duration": 1.0}},
        "4": {"class_type": ENCODER, "inputs": {"audio": ["2", 0], "fps": 12.0, "encoder": encoder}},
        "5": {"class_type": "PreviewAny", "inputs": {"source": ["4", 0]}},
    }
    if loader:
        flow["4"]["inputs"]["encoder"] = "spectral"
        flow["3"] = {"class_type": ENCODER_LOADER, "inputs": {"encoder": encoder}}
        flow["4"]["inputs"]["encoder_model"] = ["3", 0]
    return flow


# (id, prompt, node that refuses, text of the message)
HOSTILE = [
    # model names: only what the folder lists, the same refusal whether or not the path exists
    ("bundle-abs", _with(_dance(), LOADER, bundle="/etc/passwd"), LOADER, "'/etc/passwd' is not in models/musedance"),
    ("bundle-dotdot", _with(_dance(), LOADER, bundle="../../../../etc/passwd"), LOADER, "is not in models/musedance"),
    ("bundle-missing", _with(_dance(), LOADER, bundle="/nonexistent.safetensors"), LOADER, "is not in models/musedance"),
    ("bundle-empty", _with(_dance(), LOADER, bundle=""), LOADER, "'' is not in models/musedance"),
    ("motion-dotdot", _with(_dance(), LOADER, motion_module="../../etc/hosts"), LOADER,
     "is not in models/animatediff_models"),
    ("base-abs", _with(_dance(), LOADER, base_checkpoint="/etc/passwd"), LOADER, "is not in models/checkpoints"),
    ("precision", _with(_dance(), LOADER, precision="fp8"), LOADER, "fp8"),
    # numbers: ComfyUI's own range checks (one message each), then the core's
    ("steps-0", _with(_dance(), ANIMATE, steps=0), ANIMATE, "Value 0 smaller than min of 1"),
    ("steps-huge", _with(_dance(), ANIMATE, steps=10**9), ANIMATE, "bigger than max of 200"),
    ("seed-negative", _with(_dance(), ANIMATE, seed=-1), ANIMATE, "smaller than min of 0"),
    ("seed-2**63", _with(_dance(), ANIMATE, seed=2**63), ANIMATE, "bigger than max"),
    ("seed-2**64", _with(_dance(), ANIMATE, seed=2**64), ANIMATE, "bigger than max"),
    ("seed-2**200", _with(_dance(), ANIMATE, seed=2**200), ANIMATE, "bigger than max"),
    ("seed-text", _with(_dance(), ANIMATE, seed="abc"), ANIMATE, "Failed to convert an input value to a INT"),
    ("frames-negative", _with(_dance(), ANIMATE, frames=-1), ANIMATE, "smaller than min of 0"),
    ("cfg-nan", _with(_dance(), ANIMATE, cfg="nan"), ANIMATE, "cfg must be between 0 and 30"),  # float("nan") in ComfyUI
    ("strength-inf", _with(_dance(), ANIMATE, music_strength="inf"), ANIMATE, "bigger than max"),
    ("width-4", _with(_dance(), ANIMATE, width=4), ANIMATE, "width"),
    ("context-0", _with(_dance(), ANIMATE, context_length=0), ANIMATE, "context_length must be 1..64"),
    ("overlap-too-big", _with(_dance(), ANIMATE, context_overlap=16), ANIMATE,
     "context_overlap (16) must be smaller than context_length (16)"),
    ("scheduler", _with(_dance(), ANIMATE, scheduler="../evil"), ANIMATE, "scheduler must be one of"),
    ("offload", _with(_dance(), ANIMATE, offload="/etc"), ANIMATE, "offload must be one of"),
    # text that is not valid Unicode (a lone surrogate survives JSON)
    ("prompt-surrogate", _with(_dance(), ANIMATE, prompt="dance \ud800 now"), ANIMATE,
     "prompt holds invalid text at character 7"),
    ("negative-surrogate", _with(_dance(), ANIMATE, negative_prompt="\udfff"), ANIMATE,
     "negative_prompt holds invalid text"),
    # the Beat Extractor
    ("bpm-order", _beats_only(min_bpm=150.0, max_bpm=100.0), BEATS, "min_bpm (150) must be lower than max_bpm (100)"),
    ("bpm-low", _beats_only(min_bpm=10.0), BEATS, "min_bpm must be 0 (automatic) or at least 30"),
    ("bpm-huge", _beats_only(max_bpm=1e9), BEATS, "max_bpm must be 0 (automatic) or up to 300"),
    ("fps-0", _beats_only(fps=0.0), BEATS, "smaller than min of 1.0"),
    ("beats-per-bar", _beats_only(beats_per_bar=99), BEATS, "bigger than max of 16"),
    ("offset", _beats_only(beat_offset_ms=5000.0), BEATS, "bigger than max of 1000.0"),
    # music encoder names (both nodes) outside the folders: one message shape
    *[(f"encoder-{i}", _music_graph(name, loader=False), ENCODER, f"unknown music encoder '{name}'")
      for i, name in enumerate(("/etc", "../../etc", "/nonexistent"))],
    *[(f"encoder-loader-{i}", _music_graph(name, loader=True), ENCODER_LOADER, f"unknown music encoder '{name}'")
      for i, name in enumerate(("/etc", "../../etc", "/nonexistent"))],
]


@pytest.mark.integration
@pytest.mark.parametrize("flow, node_type, message", [case[1:] for case in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_prompt_gives_one_clear_node_error(host, flow, node_type, message):
    expect_node_error(host, flow, node_type, message)


def _message(host, flow) -> str:
    """The one error a refused prompt gives (validation or run time)."""
    try:
        prompt_id = host.queue(flow)
    except ComfyHostError as exc:
        return str(exc)
    return node_errors(host.wait(prompt_id, timeout=300, check=False))[0]["exception_message"]


@pytest.mark.integration
def test_comfyui_range_checks_stay_on_and_say_it_once(host):
    """validate_inputs names its inputs: ComfyUI still checks every other one, with one message."""
    text = _message(host, _with(_dance(), ANIMATE, steps=0))
    assert text.count("smaller than min") == 1 and "custom_validation_failed" not in text
    text = _message(host, _with(_dance(), ANIMATE, context_overlap=16))
    assert text.count("must be smaller than context_length") <= 2  # once per named input, not once per input


@pytest.mark.integration
@pytest.mark.parametrize("node", [ENCODER, ENCODER_LOADER])
def test_encoder_paths_are_refused_alike_whether_or_not_they_exist(host, node):
    texts = {name: _message(host, _music_graph(name, loader=node == ENCODER_LOADER))
             for name in ("/etc", "../../etc", "/nonexistent")}
    shapes = {text.replace(name, "X") for name, text in texts.items()}
    assert len(shapes) == 1, shapes
    assert "config.json" not in shapes.pop()


@pytest.mark.integration
def test_loader_defaults_to_the_demo_bundle(host):
    bundle = host.object_info(LOADER)["input"]["required"]["bundle"][1]
    assert bundle["default"] == "musedance-demo-tiny.safetensors"


def _long_song_flow(song: str, **animate) -> dict:
    flow = _dance(**animate)
    node_of(flow, "LoadAudio")["audio"] = song
    trim = next(key for key, node in flow.items() if node["class_type"] == "TrimAudioDuration")
    load = next(key for key, node in flow.items() if node["class_type"] == "LoadAudio")
    for node in flow.values():  # untrimmed: every input that took the trimmed audio takes the song
        for name, value in node["inputs"].items():
            if value == [trim, 0]:
                node["inputs"][name] = [load, 0]
    return flow


@pytest.mark.integration
def test_a_25_minute_song_is_refused_before_analysis(host):
    start = time.monotonic()
    flow = _long_song_flow("song_25min.wav", frames=0, width=512, height=512)
    entry = host.wait(host.queue(flow), timeout=120, check=False)
    seconds = time.monotonic() - start
    error = node_errors(entry)[0]
    assert error["node_type"] in (BEATS, ENCODER)
    assert "lasts 25:00, longer than the 20:00" in error["exception_message"]
    assert "TrimAudioDuration" in error["exception_message"]
    assert seconds < 30, seconds
    assert SAMPLING_LINE not in host.log_text()


@pytest.mark.integration
def test_a_long_song_with_frames_0_at_512_is_refused_before_sampling(host):
    """6 minutes at 12 fps = 4,320 frames: more than one run makes (the encoders take it)."""
    before = host.log_text().count(SAMPLING_LINE)
    start = time.monotonic()
    flow = _long_song_flow("song_6min.wav", frames=0, width=512, height=512)
    expect_node_error(host, flow, ANIMATE, "frames=0 takes the whole music, 4320 frames")
    assert "TrimAudioDuration" in _message(host, flow)
    assert host.log_text().count(SAMPLING_LINE) == before
    assert time.monotonic() - start < 120


@pytest.mark.integration
def test_frames_that_would_not_fit_in_memory_are_refused_before_sampling(host):
    import psutil

    need = 720 * 2048 * 2048 * 3 * 4  # 1 minute at 12 fps, 2048x2048
    if need < psutil.virtual_memory().available:
        pytest.skip("this machine has the memory for it")
    before = host.log_text().count(SAMPLING_LINE)
    flow = _long_song_flow("song_1min.wav", frames=0, width=2048, height=2048)
    expect_node_error(host, flow, ANIMATE, "frames=0 takes the whole music: 720 frames")
    message = _message(host, flow)
    assert "GB of memory" in message and "TrimAudioDuration" in message and "width/height" in message
    assert host.log_text().count(SAMPLING_LINE) == before


@pytest.mark.integration
def test_192_khz_audio_comes_back_at_a_rate_save_video_writes(host):
    from musedance_core.video.reader import probe_video

    flow = _dance()
    node_of(flow, "LoadAudio")["audio"] = "hifi_192k.wav"
    entry = host.run(flow, timeout=300)
    video = next(p for p in host.output_files(entry) if p.suffix == ".mp4")
    assert probe_video(video).has_audio


@pytest.mark.integration
def test_interrupt_at_512_stops_within_a_step(host):
    """One step's time at 512x512 (4 frames, cfg 1): bounded by a whole 1-step run after sampling
    starts (the step and the decode); the interrupt must end a 200-step run within 1.5 of it."""
    settings = {"width": 512, "height": 512, "frames": 4, "cfg": 1.0}

    def sampling_started(before: int, deadline: float) -> float:
        while host.log_text().count(SAMPLING_LINE) == before and time.monotonic() < deadline:
            time.sleep(0.1)
        return time.monotonic()

    before = host.log_text().count(SAMPLING_LINE)
    prompt_id = host.queue(_dance(steps=1, seed=7, **settings))
    began = sampling_started(before, time.monotonic() + 180)
    host.wait(prompt_id, timeout=300)
    one_step = time.monotonic() - began  # >= one step

    before = host.log_text().count(SAMPLING_LINE)
    prompt_id = host.queue(_dance(steps=200, seed=8, **settings))
    sampling_started(before, time.monotonic() + 180)
    time.sleep(min(2.0, one_step / 3))
    asked = time.monotonic()
    host.interrupt()
    entry = host.wait(prompt_id, timeout=300, check=False)
    took = time.monotonic() - asked
    interrupted = [data for name, data in entry["status"]["messages"] if name == "execution_interrupted"]
    assert interrupted and interrupted[0]["node_type"] == ANIMATE
    print(f"interrupt took {took:.1f} s; one step (bounded by a 1-step run) {one_step:.1f} s")
    assert took < 1.5 * one_step, (took, one_step)


@pytest.mark.integration
def test_zz_the_server_still_serves_a_good_prompt(host):
    entry = host.run(api_workflow("musedance_beats_only.json"), timeout=120)
    assert [p for p in host.output_files(entry) if p.suffix == ".png"]


# -- core unit tests: the server adds nothing to these ---------------------------------------
def test_memory_limit_counts_frames_and_latents():
    from musedance_core.errors import InputError
    from musedance_core.pipeline import check_memory

    check_memory(100, 512, 512, 4, 8, 12.0, available=10**10)  # 0.3 GB
    with pytest.raises(InputError, match=r"frames=0 takes the whole music: 13680 frames .* at 512x512 .*GB"):
        check_memory(13680, 512, 512, 4, 8, 12.0, available=21 * 10**9)
    check_memory(13680, 512, 512, 4, 8, 12.0, streamed=True, available=21 * 10**9)  # latents only: 0.9 GB
    with pytest.raises(InputError, match="frames=300 at 512x512"):
        check_memory(300, 512, 512, 4, 8, 12.0, requested=300, available=10**8)


def test_check_text_names_the_character():
    from musedance_core.errors import InputError
    from musedance_core.pipeline import check_text

    assert check_text("ok") == "ok"
    with pytest.raises(InputError, match=r"prompt holds invalid text at character 2 .*U\+D800"):
        check_text("a\ud800")


def _bundle_with_config(tmp_path, config_text: str):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "hostile.safetensors"
    save_file({"beat.x": torch.zeros(1)}, str(path),
              metadata={"format": "musedance", "format_version": "1", "config": config_text, "parts": "beat"})
    return path


def _tiny_json(**changes) -> str:
    from dataclasses import asdict

    from musedance_core.models.config import tiny_config

    data = asdict(tiny_config())
    for dotted, value in changes.items():
        target = data
        *parents, leaf = dotted.split("__")
        for key in parents:
            target = target[key]
        target[leaf] = value
    return json.dumps(data)


@pytest.mark.parametrize("config, field", [
    ("[" * 100_000 + "]" * 100_000, "nests deeper than"),
    ('{"a": ' * 100_000 + "1" + "}" * 100_000, "nests deeper than"),
    (_tiny_json(unet__block_out_channels=[32, -64]), "'unet.block_out_channels[1]' is -64"),
    (_tiny_json(unet__block_out_channels=[32, 10**12]), "'unet.block_out_channels[1]' is 1000000000000"),
    (_tiny_json(text_encoder__hidden_size=-1), "'text_encoder.hidden_size' is -1"),
    (_tiny_json(text_encoder__hidden_size=10**9), "'text_encoder.hidden_size'"),
    (_tiny_json(branch_hidden=0), "'branch_hidden' is 0"),
    (_tiny_json(vae__latent_channels=1e300), "'vae.latent_channels' must be a whole number"),
    (_tiny_json(unet="oops"), "'unet' must be an object"),
    (_tiny_json(fps=0), "'fps' must be a number"),
    (_tiny_json(unet__norm_num_groups=7), "describes no buildable model"),  # 32 channels in groups of 7
    ('"just text"', "must be a JSON object"),
    ("{not json", "not valid JSON"),
])
def test_bundle_metadata_is_validated_before_any_tensor(tmp_path, config, field):
    from musedance_core.checkpoints.bundle import BundleError, bundle_config

    with pytest.raises(BundleError, match="'hostile.safetensors'") as caught:
        bundle_config(_bundle_with_config(tmp_path, config))
    assert field in str(caught.value)
