"""Sampling previews (issue 22): the fitted latent -> RGB map, the preview-method chooser, the
denoised estimate the pipeline hands to its callback, and the ComfyUI glue (nodes/preview.py,
host.Progress) run against the real ComfyUI modules in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from musedance_core.checkpoints.bundle import load_bundle
from musedance_core.models.config import tiny_config
from musedance_core.models.musedance import MuseDanceModel
from musedance_core.pipeline import AnimateSettings, MuseDancePipeline
from musedance_core.preview import (PREVIEW_METHODS, SD15_LATENT_RGB, choose_preview, denoised_estimate,
                                    fit_latent_rgb, fitting_images, is_sd15_vae, latent_rgb_map)
from musedance_core.schedulers import SCHEDULERS, context_windows
from tests.pipeline_inputs import groove_conditions

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "demo" / "musedance-demo-tiny.safetensors"
ROBOT = ROOT / "assets" / "demo" / "robot.png"


@pytest.fixture(scope="module")
def demo() -> MuseDanceModel:
    return load_bundle(DEMO).eval()


def _sd15_like(**changes):
    """A stand-in model whose VAE config is Stable Diffusion 1.5's (only the config is read)."""
    cfg = dict(latent_channels=4, block_out_channels=[128, 256, 512, 512], scaling_factor=0.18215, shift_factor=None)
    return SimpleNamespace(vae=SimpleNamespace(config=SimpleNamespace(**(cfg | changes))))


def _preview_error(model, rgb, images: torch.Tensor) -> float:
    """Mean abs error (0..1) of the map's preview against the images average-pooled to latent size."""
    with torch.no_grad():
        latents = model.encode_images(images * 2 - 1)
    preview = rgb.image(latents[0]).float() / 255
    target = F.avg_pool2d(images, model.vae_scale_factor)[0].permute(1, 2, 0)
    return float((preview - target).abs().mean())


# -- the latent -> RGB map ----------------------------------------------------------------------
def test_fitted_map_reproduces_held_out_images_on_the_demo_model(demo):
    rgb = latent_rgb_map(demo)
    assert rgb.source == "fitted" and rgb.weight.shape == (4, 3) and rgb.bias.shape == (3,)
    robot = torch.from_numpy(np.asarray(Image.open(ROBOT).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
    assert _preview_error(demo, rgb, robot[None]) < 0.1  # about 0.04, the VAE's own reconstruction error
    g = torch.Generator().manual_seed(99)  # a smooth colour field the fit never saw
    field = F.interpolate(torch.rand(1, 3, 5, 5, generator=g), size=(96, 96), mode="bicubic",
                          align_corners=True).clamp(0, 1)
    assert _preview_error(demo, rgb, field) < 0.1
    for colour in ([1.0, 0.5, 0.0], [0.2, 0.3, 0.9]):  # solid colours come out as that colour
        solid = torch.tensor(colour)[None, :, None, None].expand(1, 3, 64, 64)
        assert _preview_error(demo, rgb, solid) < 0.1


def test_the_fit_runs_once_per_loaded_model(demo):
    first = latent_rgb_map(demo)
    calls = []
    hook = demo.vae.encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        assert latent_rgb_map(demo) is first
    finally:
        hook.remove()
    assert calls == []
    other = load_bundle(DEMO).eval()  # another load is another model: fitted again, same result
    again = latent_rgb_map(other)
    assert again is not first and torch.allclose(again.weight, first.weight, atol=1e-4)


def test_fitting_images_are_fixed_and_cover_the_colour_cube():
    a, b = fitting_images(), fitting_images()
    assert torch.equal(a, b)
    assert a.shape[1:] == (3, 128, 128) and 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    means = a.mean(dim=(2, 3))
    for corner in ([0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]):
        assert ((means - torch.tensor(corner, dtype=torch.float32)).abs().max(dim=1).values < 1e-6).any()


def test_a_fit_recovers_a_known_linear_encoder():
    weight = torch.tensor([[0.5, -1.0, 0.2, 0.3], [0.1, 0.4, -0.6, 0.2], [-0.3, 0.2, 0.5, 0.9]])  # [C=4, RGB]^T

    def encode(pixels):  # pool by 2, then a fixed invertible mix of RGB into 4 channels + an offset
        pooled = F.avg_pool2d(pixels, 2)
        return torch.einsum("rc,nrhw->nchw", weight, pooled) + 0.25

    rgb = fit_latent_rgb(encode, 2)
    images = fitting_images()[:4]
    back = rgb(encode(images * 2 - 1))
    assert torch.allclose(back, F.avg_pool2d(images * 2 - 1, 2).movedim(1, -1), atol=1e-3)


def test_sd15_vaes_use_comfyuis_factors_and_others_do_not():
    assert is_sd15_vae(_sd15_like().vae)
    rgb = latent_rgb_map(_sd15_like())
    assert rgb.source == "sd15" and torch.equal(rgb.weight, torch.tensor(SD15_LATENT_RGB)) and not rgb.bias.any()
    assert not is_sd15_vae(_sd15_like(scaling_factor=1.0).vae)
    assert not is_sd15_vae(_sd15_like(latent_channels=16).vae)
    assert not is_sd15_vae(_sd15_like(block_out_channels=[16, 32, 32]).vae)
    assert not is_sd15_vae(_sd15_like(shift_factor=0.1159).vae)


# -- the preview-method chooser ------------------------------------------------------------------
@pytest.mark.parametrize("method, sd15, files, kind, note", [
    ("none", True, ["taesd_decoder.pth"], "none", None),
    ("none", False, [], "none", None),
    ("auto", True, ["taesd_decoder.pth"], "latent2rgb", None),
    ("auto", False, [], "latent2rgb", None),
    ("latent2rgb", True, ["taesd_decoder.pth"], "latent2rgb", None),
    ("latent2rgb", False, [], "latent2rgb", None),
    ("taesd", True, ["taesd_decoder.pth"], "taesd", None),
    ("taesd", True, ["taesd_decoder.safetensors", "taesdxl_decoder.pth"], "taesd", None),
    ("taesd", True, [], "latent2rgb", "no taesd_decoder"),
    ("taesd", True, ["taesdxl_decoder.pth", "taesd_encoder.pth"], "latent2rgb", "no taesd_decoder"),
    ("taesd", False, ["taesd_decoder.pth"], "latent2rgb", "Stable Diffusion 1.5's VAE"),
    ("taesd", False, [], "latent2rgb", "Stable Diffusion 1.5's VAE"),
    ("something-new", True, [], "latent2rgb", "unknown preview method"),
])
def test_chooser_follows_comfyuis_rules(method, sd15, files, kind, note):
    choice = choose_preview(method, sd15, files)
    assert choice.kind == kind
    assert (choice.note is None) if note is None else (note in choice.note)


def test_every_comfyui_method_is_known():
    assert set(PREVIEW_METHODS) == {"none", "auto", "latent2rgb", "taesd"}
    assert all(choose_preview(m, False).note is None for m in PREVIEW_METHODS if m != "taesd")


# -- the denoised estimate in the pipeline's progress ---------------------------------------------
@pytest.fixture(scope="module")
def tiny() -> MuseDanceModel:
    torch.manual_seed(0)
    return MuseDanceModel(tiny_config()).eval()


@pytest.fixture(scope="module")
def song():
    return groove_conditions(1.0, 12.0)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_progress_carries_the_denoised_estimate_on_each_steps_last_window(tiny, song, scheduler):
    music, beats = song
    seen = []
    pipe = MuseDancePipeline(tiny)
    final = {}
    decode = pipe.decode
    pipe.decode = lambda latents, *a, **k: (final.setdefault("latents", latents.clone()), decode(latents, *a, **k))[1]
    settings = AnimateSettings(width=64, height=64, steps=3, num_frames=6, context_length=4, context_overlap=2,
                               scheduler=scheduler)
    pipe(np.full((64, 64, 3), 0.5, np.float32), music, beats, "x", settings=settings, callback=seen.append)
    windows = len(context_windows(6, 4, 2))
    assert windows == 2 and [p.done for p in seen] == list(range(1, 3 * windows + 1))
    for p in seen:
        if p.window == p.windows - 1:
            assert p.denoised is not None and p.denoised.shape == p.latents.shape
            assert torch.isfinite(p.denoised).all()
        else:
            assert p.denoised is None
    # the last step's estimate is (about) what gets decoded: Euler and DPM-Solver++ end on it exactly
    atol = 1e-5 if scheduler != "ddim" else 0.25  # DDIM stops at alphas_cumprod[0], a hair short of t = 0
    assert torch.allclose(seen[-1].denoised, final["latents"], atol=atol)


def test_denoised_estimate_is_none_for_a_scheduler_without_one():
    assert denoised_estimate(SimpleNamespace(config=SimpleNamespace()), SimpleNamespace(prev_sample=1)) is None
    x0 = torch.ones(2)
    assert denoised_estimate(None, SimpleNamespace(prev_sample=1, pred_original_sample=x0)) is x0


# -- the ComfyUI glue against the real ComfyUI modules --------------------------------------------
_GLUE = r"""
import importlib, json, logging, sys, types
from pathlib import Path
repo, tmp = sys.argv[1:3]  # ComfyUI's folder is on PYTHONPATH
from comfy.cli_args import args, LatentPreviewMethod
args.cpu = True
import comfy.utils, comfy.model_management as mm, comfy.latent_formats, folder_paths
for name, path in (("mdpack", repo), ("mdpack.nodes", repo + "/nodes")):  # the pack without its __init__s
    module = types.ModuleType(name); module.__path__ = [path]; sys.modules[name] = module
host = importlib.import_module("mdpack.nodes.host")
core_preview = importlib.import_module("mdpack.musedance_core.preview")
Progress = importlib.import_module("mdpack.musedance_core.pipeline").Progress
load_bundle = importlib.import_module("mdpack.musedance_core.checkpoints.bundle").load_bundle
import torch

messages = []
class Catch(logging.Handler):
    def emit(self, record):
        if record.levelno >= logging.WARNING:
            messages.append(record.getMessage())
logging.getLogger().addHandler(Catch()); logging.getLogger().setLevel(logging.INFO)
events = []
comfy.utils.set_progress_bar_global_hook(lambda v, t, p, node_id=None: events.append((v, t, p)))

sd15_factors = [list(row) for row in core_preview.SD15_LATENT_RGB]
out = {"methods": sorted(m.value for m in LatentPreviewMethod),
       "sd15_factors": comfy.latent_formats.SD15().latent_rgb_factors == sd15_factors}
demo = load_bundle(repo + "/assets/demo/musedance-demo-tiny.safetensors").eval()
orange = torch.tensor([1.0, 0.5, 0.0])[None, :, None, None].expand(1, 3, 64, 64) * 2 - 1
with torch.no_grad():
    z = demo.encode_images(orange)  # [1, 4, 16, 16]
latents = z[:, :, None].expand(1, 4, 5, 16, 16).contiguous()
sd = types.SimpleNamespace(vae=types.SimpleNamespace(config=types.SimpleNamespace(
    latent_channels=4, block_out_channels=[128, 256, 512, 512], scaling_factor=0.18215, shift_factor=None)))

def run(method, model, denoised=None, size=512):
    args.preview_method = LatentPreviewMethod(method); args.preview_size = size
    events.clear(); messages.clear()
    bar = host.Progress(model, "7")
    for step in range(2):
        for window in range(2):
            last = window == 1
            bar(Progress(step, 2, window, 2, latents if denoised is None else torch.zeros_like(latents),
                         denoised if last else None))
    previews = []
    for v, t, p in events:
        if p is None:
            previews.append(None)
        else:
            fmt, image, limit = p
            previews.append({"format": fmt, "size": list(image.size), "limit": limit,
                             "mean": [float(c) / 255 for c in image.resize((1, 1), 4).getpixel((0, 0))]})
    return {"done": [[v, t] for v, t, _ in events], "previews": previews,
            "warnings": [m for m in messages if "MuseDance" in m]}

out["none"] = run("none", demo)
out["latent2rgb"] = run("latent2rgb", demo, size=256)
out["auto"] = run("auto", demo, denoised=latents)
out["taesd_demo"] = run("taesd", demo)
sd_latents = torch.zeros(1, 4, 5, 8, 8)
latents = sd_latents
out["taesd_sd_no_file"] = run("taesd", sd)
from comfy.taesd.taesd import Decoder
import safetensors.torch
approx = Path(tmp) / "vae_approx"; approx.mkdir()
safetensors.torch.save_file(Decoder(4).state_dict(), str(approx / "taesd_decoder.safetensors"))
folder_paths.add_model_folder_path("vae_approx", str(approx))
out["taesd_sd"] = run("taesd", sd)
args.preview_method = LatentPreviewMethod("none")
mm.interrupt_current_processing(True)
try:
    host.Progress(demo)(Progress(0, 1, 0, 1, latents))
    out["interrupted"] = False
except mm.InterruptProcessingException:
    out["interrupted"] = True
print("RESULT" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def glue(tmp_path_factory):
    from tests.comfy_host import require_comfy

    comfy = require_comfy()
    tmp = tmp_path_factory.mktemp("glue")
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(comfy), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-c", _GLUE, str(ROOT), str(tmp)], cwd=tmp, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    line = next(line for line in run.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line.removeprefix("RESULT"))


@pytest.mark.integration
def test_glue_knows_comfyuis_methods_and_sd15_factors(glue):
    assert glue["methods"] == sorted(PREVIEW_METHODS)
    assert glue["sd15_factors"]


@pytest.mark.integration
def test_glue_method_none_moves_the_bar_without_previews(glue):
    assert glue["none"]["done"] == [[1, 4], [2, 4], [3, 4], [4, 4]]
    assert glue["none"]["previews"] == [None, None, None, None]
    assert glue["none"]["warnings"] == []


@pytest.mark.integration
@pytest.mark.parametrize("method", ["latent2rgb", "auto"])
def test_glue_latent2rgb_previews_the_middle_frame_once_per_step(glue, method):
    result = glue[method]
    previews = result["previews"]
    assert previews[0] is None and previews[2] is None  # windows before a step's last: no preview
    for p in (previews[1], previews[3]):
        assert p["format"] == "JPEG" and p["size"] == [16, 16]  # latent resolution of a 64 px frame
        assert p["limit"] == (256 if method == "latent2rgb" else 512)  # --preview-size
        assert np.allclose(p["mean"], [1.0, 0.5, 0.0], atol=0.1)  # the orange frame looks orange
    assert result["warnings"] == []


@pytest.mark.integration
def test_glue_taesd_falls_back_to_latent2rgb_with_one_warning(glue):
    demo = glue["taesd_demo"]
    assert [p is not None for p in demo["previews"]] == [False, True, False, True]
    assert demo["previews"][1]["size"] == [16, 16]
    assert len(demo["warnings"]) == 1 and "TAESD previews need" in demo["warnings"][0]
    sd = glue["taesd_sd_no_file"]
    assert sd["previews"][1]["size"] == [8, 8]  # SD 1.5's factors on 8x8 latents
    assert len(sd["warnings"]) == 1 and "no taesd_decoder" in sd["warnings"][0]


@pytest.mark.integration
def test_glue_taesd_uses_comfyuis_previewer_when_it_can(glue):
    sd = glue["taesd_sd"]
    assert [p is not None for p in sd["previews"]] == [False, True, False, True]
    assert sd["previews"][1]["size"] == [64, 64]  # TAESD decodes 8x8 latents to 64x64 pixels
    assert sd["warnings"] == []


@pytest.mark.integration
def test_glue_checks_interruption_even_without_previews(glue):
    assert glue["interrupted"]
