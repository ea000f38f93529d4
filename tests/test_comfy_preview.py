"""Integration: sampling previews on a real ComfyUI server started with ``--preview-method taesd``.

The demo model's VAE is not SD 1.5's, so the Animate node falls back to latent2rgb previews with
a map fitted to that VAE (one warning per run), and the server takes a preview image at every
step without failing the run. (The default method, none, is what tests/test_comfy_workflows.py
runs with.) The previews themselves are checked in tests/test_preview.py.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from tests.comfy_host import ComfyHost, require_comfy

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
FALLBACK = "TAESD previews need a model with Stable Diffusion 1.5's VAE"
FITTED = "MuseDance: latent2rgb previews (fitted map)"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    comfy = require_comfy()
    with ComfyHost(comfy, tmp_path_factory.mktemp("musedance-preview"),
                   extra_args=["--preview-method", "taesd"]) as server:
        yield server


def _dance(steps: int) -> dict:
    flow = copy.deepcopy(json.loads((ROOT / "example_workflows" / "api" / "musedance_dance.json").read_text()))
    for node in flow.values():
        if node["class_type"] == "MuseDanceAnimateImage":
            node["inputs"].update(steps=steps, width=64, height=64)
        if node["class_type"] == "TrimAudioDuration":
            node["inputs"]["duration"] = 1.0
    return flow


def test_taesd_request_falls_back_to_fitted_latent2rgb_previews(host):
    for seed, runs in ((1, 1), (2, 2)):  # a second run fits nothing again but warns again, once
        flow = _dance(steps=3)
        next(n for n in flow.values() if n["class_type"] == "MuseDanceAnimateImage")["inputs"]["seed"] = seed
        entry = host.run(flow, timeout=300)
        assert any(p.suffix == ".mp4" for p in host.output_files(entry))
        log = host.log_text()
        assert log.count(FALLBACK) == runs
        assert log.count(FITTED) == runs
    assert "previews are off for this run" not in host.log_text()
