"""Sampling: determinism, ReferenceNet once per video, windows, guidance, and input rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musedance_core.audio.beats import track_beats
from musedance_core.audio.synth import Groove, render_groove
from musedance_core.errors import InputError
from musedance_core.images import fit_image
from musedance_core.models.config import tiny_config
from musedance_core.models.musedance import MuseDanceModel
from musedance_core.notes import collect_notes
from musedance_core.pipeline import AnimateSettings, MuseDancePipeline
from musedance_core.schedulers import context_windows, make_scheduler
from tests.pipeline_inputs import groove_conditions

FPS = 12.0
SMALL = dict(width=64, height=64, steps=2)


@pytest.fixture(scope="module")
def model() -> MuseDanceModel:
    torch.manual_seed(0)
    return MuseDanceModel(tiny_config()).eval()


@pytest.fixture(scope="module")
def song():
    return groove_conditions(3.0, FPS)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((70, 50, 3)).astype(np.float32)


def _run(model, song, image, **kwargs):
    music, beats = song
    return MuseDancePipeline(model)(image, music, beats, "bounces on every beat", settings=AnimateSettings(**(SMALL | kwargs)))


def test_frames_shape_dtype_and_range(model, song, image):
    result = _run(model, song, image, num_frames=5)
    assert result.frames.shape == (5, 64, 64, 3)
    assert result.frames.dtype == torch.float32
    assert 0.0 <= float(result.frames.min()) and float(result.frames.max()) <= 1.0
    assert result.fps == FPS


def test_zero_frames_means_as_long_as_the_music(model, song, image):
    result = _run(model, song, image, num_frames=0, steps=1, context_length=16)
    assert result.num_frames == song[0].num_frames == 36


def test_too_many_frames_are_clamped_to_the_music(model, song, image):
    with collect_notes() as notes:
        result = _run(model, song, image, num_frames=500, steps=1)
    assert result.num_frames == 36
    said = "frames=500 is longer than the music (36 frames at 12 fps); making 36 frames."
    assert result.notes == notes == [said]  # returned with the result, and said once


def test_deterministic_for_a_seed(model, song, image):
    a = _run(model, song, image, num_frames=4, seed=5).frames
    b = _run(model, song, image, num_frames=4, seed=5).frames
    c = _run(model, song, image, num_frames=4, seed=6).frames
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("steps, length, cfg, prompt_guidance", [(2, 4, 3.5, 0.0), (3, 16, 1.0, 0.0), (1, 3, 7.0, 0.0),
                                                                 (2, 4, 3.5, 2.0), (2, 16, 1.0, 2.0)])
def test_reference_net_runs_once_per_video(model, song, image, steps, length, cfg, prompt_guidance):
    calls = []
    hook = model.reference_unet.register_forward_hook(lambda *a: calls.append(1))
    try:
        _run(model, song, image, num_frames=10, steps=steps, context_length=length, context_overlap=1, cfg=cfg,
             prompt_guidance=prompt_guidance)
    finally:
        hook.remove()
    assert len(calls) == 1


def test_reference_every_step_mode_reruns_it(model, song, image):
    calls = []
    hook = model.reference_unet.register_forward_hook(lambda *a: calls.append(1))
    try:
        _run(model, song, image, num_frames=4, steps=3, reference_every_step=True)
    finally:
        hook.remove()
    assert len(calls) == 1 + 3


def test_one_window_equals_a_plain_single_pass_loop(model, song, image):
    """With window >= video, the windowed sampler equals a hand-written loop without windows."""
    music, beats = song
    frames, steps, cfg = 6, 3, 2.5
    result = _run(model, song, image, num_frames=frames, steps=steps, cfg=cfg, context_length=8, seed=11)

    with torch.no_grad():
        text = model.encode_prompt(["", "bounces on every beat"])
        ref = model.encode_images(fit_image(image, 64, 64))
        bank = model.encode_reference(ref, text[1:])
        cond = model.frame_conditions(torch.as_tensor(music.features[None, :frames]),
                                      torch.as_tensor(beats.frame_features[None, :frames]))
        scheduler = make_scheduler("ddim", model.config.scheduler)
        scheduler.set_timesteps(steps)
        latents = torch.randn((1, 4, frames, 16, 16), generator=torch.Generator().manual_seed(11))
        latents = latents * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            out = model.denoise(latents.expand(2, -1, -1, -1, -1), t, text, reference=bank, conditions=cond,
                                cond=slice(1, 2))
            uncond, full = out.chunk(2)
            latents = scheduler.step(uncond + cfg * (full - uncond), t, latents).prev_sample
        expected = MuseDancePipeline(model).decode(latents)
    assert torch.equal(result.frames, expected)


@pytest.mark.parametrize("cfg", [2.5, 1.0])
def test_prompt_guidance_is_the_two_scale_formula(model, song, image, cfg):
    """Prompt guidance adds g * (full - same conditions under the empty prompt), on top of cfg."""
    music, beats = song
    frames, steps, g = 5, 2, 1.5
    result = _run(model, song, image, num_frames=frames, steps=steps, cfg=cfg, prompt_guidance=g, context_length=8, seed=3)
    plain = _run(model, song, image, num_frames=frames, steps=steps, cfg=cfg, context_length=8, seed=3)
    assert not torch.equal(result.frames, plain.frames)

    with torch.no_grad():
        prompts = ([""] if cfg > 1 else []) + ["", "bounces on every beat"]  # negative, empty, prompt
        text = model.encode_prompt(prompts)
        start = 1 if cfg > 1 else 0
        ref = model.encode_images(fit_image(image, 64, 64)).expand(2, -1, -1, -1)
        bank = model.encode_reference(ref, text[start:])
        cond = model.frame_conditions(torch.as_tensor(music.features[None, :frames]).expand(2, -1, -1),
                                      torch.as_tensor(beats.frame_features[None, :frames]).expand(2, -1, -1))
        scheduler = make_scheduler("ddim", model.config.scheduler)
        scheduler.set_timesteps(steps)
        latents = torch.randn((1, 4, frames, 16, 16), generator=torch.Generator().manual_seed(3))
        latents = latents * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            out = model.denoise(latents.expand(len(prompts), -1, -1, -1, -1), t, text, reference=bank,
                                conditions=cond, cond=slice(start, len(prompts)))
            full, no_prompt = out[-1:], out[-2:-1]
            guided = out[:1] + cfg * (full - out[:1]) if cfg > 1 else full
            latents = scheduler.step(guided + g * (full - no_prompt), t, latents).prev_sample
        expected = MuseDancePipeline(model).decode(latents)
    assert torch.equal(result.frames, expected)


def test_long_video_in_windows_stays_finite_and_bounded(model, song, image):
    result = _run(model, song, image, num_frames=30, steps=2, context_length=8, context_overlap=3)
    assert result.frames.shape[0] == 30 and torch.isfinite(result.frames).all()


def test_context_windows_cover_every_frame_with_unit_weight():
    for frames, length, overlap in [(40, 16, 4), (17, 16, 15), (100, 24, 0), (5, 16, 4)]:
        total = torch.zeros(frames)
        for w in context_windows(frames, length, overlap):
            assert w.stop - w.start == min(length, frames)
            total[w.frames] += w.weights
        # weights of overlapping windows ramp, but every frame is fully covered
        assert total.min() > 0.99 and total.max() < 1.01 + 1e-6


@pytest.mark.parametrize("scheduler", ["ddim", "euler", "dpmpp_2m"])
def test_schedulers_run(model, song, image, scheduler):
    result = _run(model, song, image, num_frames=3, steps=2, scheduler=scheduler)
    assert torch.isfinite(result.frames).all()


def test_v_prediction_zero_snr_config(song, image):
    cfg = tiny_config()
    cfg = cfg.with_changes(scheduler=cfg.scheduler | {"prediction_type": "v_prediction", "timestep_spacing": "trailing",
                                                      "rescale_betas_zero_snr": True})
    torch.manual_seed(0)
    model = MuseDanceModel(cfg).eval()
    for name in ("ddim", "euler", "dpmpp_2m"):
        result = _run(model, song, image, num_frames=3, steps=3, scheduler=name)
        assert torch.isfinite(result.frames).all(), name


def test_progress_callback_and_cancellation(model, song, image):
    seen = []
    pipe = MuseDancePipeline(model)
    music, beats = song
    pipe(image, music, beats, "x", settings=AnimateSettings(**(SMALL | dict(num_frames=10, context_length=4, context_overlap=1))),
         callback=lambda p: seen.append((p.done, p.total)))
    assert seen[-1][0] == seen[-1][1] == 2 * len(context_windows(10, 4, 1))

    class Stop(Exception):
        pass

    def cancel(p):
        if p.done == 2:
            raise Stop

    with pytest.raises(Stop):
        pipe(image, music, beats, "x", settings=AnimateSettings(**(SMALL | dict(num_frames=10))), callback=cancel)


def test_frame_sink_streams_chunks(model, song, image):
    chunks = []
    music, beats = song
    result = MuseDancePipeline(model)(image, music, beats, "x",
                                      settings=AnimateSettings(**(SMALL | dict(num_frames=7, decode_chunk=3))),
                                      frame_sink=chunks.append)
    assert result.frames is None
    assert [c.shape[0] for c in chunks] == [3, 3, 1]


# -- input rules -----------------------------------------------------------------------------

def test_alpha_is_composited_over_white():
    rgba = np.zeros((32, 32, 4), np.float32)
    rgba[..., 0] = 1.0  # red, fully transparent
    tensor = fit_image(rgba, 64, 64)
    assert torch.allclose(tensor, torch.ones_like(tensor), atol=1e-2)  # white in [-1, 1]


def test_grayscale_and_pil_modes():
    from PIL import Image

    gray = Image.new("L", (40, 30), 128)
    palette = Image.new("P", (40, 30))
    for img in (gray, palette, np.full((30, 40), 0.5, np.float32), torch.rand(1, 30, 40, 3)):
        assert fit_image(img, 64, 64).shape == (1, 3, 64, 64)


def test_cover_resize_then_centre_crop_keeps_aspect():
    wide = np.zeros((20, 80, 3), np.float32)
    wide[:, 38:42] = 1.0  # a vertical white stripe in the middle
    tensor = fit_image(wide, 64, 64)
    column = tensor[0, 0].mean(dim=0)
    assert column[30:34].mean() > 0.5 and column[:10].mean() < -0.9  # stripe stays central, not stretched


def test_tiny_and_huge_images():
    with pytest.raises(InputError, match="1x1 pixels"):
        fit_image(np.zeros((1, 1, 3), np.float32), 64, 64)
    huge = np.zeros((3000, 2000, 3), np.uint8)
    assert fit_image(huge, 64, 96).shape == (1, 3, 96, 64)


@pytest.mark.parametrize("kwargs, message", [
    (dict(width=100), None),  # rounded down to 96 with a note
    (dict(width=32), "width must be between 64 and 2048"),
    (dict(steps=0), "steps must be 1..200"),
    (dict(cfg=-1.0), "cfg must be between"),
    (dict(prompt_guidance=-0.5), "prompt_guidance must be between"),
    (dict(music_strength=9.0), "music_strength must be between"),
    (dict(scheduler="plms"), "scheduler must be one of"),
    (dict(context_overlap=16), "context_overlap must be between"),
    (dict(num_frames=-2), "frames must be 0"),
])
def test_settings_are_checked(model, song, image, kwargs, message):
    if message is None:
        result = _run(model, song, image, num_frames=2, steps=1, **kwargs)
        assert result.width == 96 and result.notes == ["width 100 is not a multiple of 8; using 96."]
    else:
        with pytest.raises(InputError, match=message):
            _run(model, song, image, **(dict(num_frames=2) | kwargs))


def test_music_and_beats_must_match(model, song, image):
    music, beats = song
    other = render_groove(Groove(bpm=100.0, seconds=2.0))
    short_beats = track_beats(other.samples, other.sample_rate, FPS)
    with pytest.raises(InputError, match="do not match"):
        MuseDancePipeline(model)(image, music, short_beats, "x", settings=AnimateSettings(**SMALL))
