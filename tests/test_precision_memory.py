"""Precision and memory paths on the CPU: fp32/bf16/fp16 weights, SDPA attention everywhere, VAE
tiling, chunked decode and its fallbacks, and offloading between stages."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor

from musedance_core.audio.synth import Groove, render_groove
from musedance_core.devices import StageOffload, ensure_sdpa, missing_kernel, pick_dtype
from musedance_core.errors import InputError
from musedance_core.models.config import tiny_config
from musedance_core.models.musedance import MuseDanceModel
from musedance_core.notes import collect_notes
from musedance_core.pipeline import AnimateSettings, MuseDancePipeline
from tests.pipeline_inputs import groove_conditions

FPS = 12.0
SMALL = dict(width=64, height=64, steps=3, num_frames=4)
COMPUTE, PARKED = torch.device("cpu"), torch.device("cpu", 0)  # two names the offload test can tell apart


@pytest.fixture(scope="module")
def model() -> MuseDanceModel:
    torch.manual_seed(0)
    return MuseDanceModel(tiny_config()).eval()


@pytest.fixture(scope="module")
def song():
    return groove_conditions(1.0, FPS)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).random((70, 50, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def fp32_frames(model, song, image) -> torch.Tensor:
    return _run(MuseDancePipeline(model), song, image).frames


def _run(pipe: MuseDancePipeline, song, image, callback=None, **kwargs):
    music, beats = song
    return pipe(image, music, beats, "bounces on every beat", settings=AnimateSettings(**(SMALL | kwargs)),
                callback=callback)


def _in_dtype(model: MuseDanceModel, dtype: torch.dtype) -> MuseDanceModel:
    return copy.deepcopy(model).to(dtype)


# -- precision ---------------------------------------------------------------------------------

def test_auto_precision_per_device():
    assert pick_dtype("auto", torch.device("cpu")) == torch.float32
    assert pick_dtype("auto", torch.device("cuda")) == torch.float16
    assert pick_dtype("auto", torch.device("mps")) == torch.float16
    assert pick_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(InputError, match="precision must be one of"):
        pick_dtype("fp8", torch.device("cpu"))


def test_bf16_weights_run_on_cpu_close_to_fp32(model, song, image, fp32_frames):
    """bf16 keeps ~3 significant digits: frames (0..1) within 0.1 everywhere, 0.01 on average
    (measured: 0.02 max, 0.002 mean). Latents stay fp32; the UNet really computes in bf16."""
    half = _in_dtype(model, torch.bfloat16)
    seen = []
    hook = half.denoising_unet.conv_in.register_forward_pre_hook(lambda m, a: seen.append(a[0].dtype))
    latents = []
    try:
        frames = _run(MuseDancePipeline(half), song, image, callback=lambda p: latents.append(p.latents.dtype)).frames
    finally:
        hook.remove()
    assert seen and set(seen) == {torch.bfloat16}
    assert set(latents) == {torch.float32}
    assert frames.dtype == torch.float32 and torch.isfinite(frames).all()
    diff = (frames - fp32_frames).abs()
    assert float(diff.max()) < 0.1 and float(diff.mean()) < 0.01


def test_fp16_on_cpu_runs_when_this_torch_has_the_kernels(model, song, image, fp32_frames):
    """torch 2.14 has CPU fp16 kernels for every op the model uses (measured: frames within 0.003
    of fp32, but 12x slower than fp32); a torch without them gets a clear refusal instead of a
    crash mid-run. The VAE decodes in fp32 (upcast_vae) and is fp16 again afterwards."""
    missing = missing_kernel(torch.float16, torch.device("cpu"))
    if missing is not None:
        with pytest.raises(InputError, match="fp16 does not run on the CPU"):
            pick_dtype("fp16", torch.device("cpu"))
        return
    with collect_notes() as notes:
        assert pick_dtype("fp16", torch.device("cpu")) == torch.float16
    assert len(notes) == 1 and "fp16 on the CPU runs but is many times slower" in notes[0]
    half = _in_dtype(model, torch.float16)
    vae_dtypes = []
    hook = half.vae.decoder.register_forward_pre_hook(lambda m, a: vae_dtypes.append((a[0].dtype, m.conv_in.weight.dtype)))
    try:
        frames = _run(MuseDancePipeline(half), song, image).frames
    finally:
        hook.remove()
    assert vae_dtypes and set(vae_dtypes) == {(torch.float32, torch.float32)}  # upcast to decode ...
    assert {p.dtype for p in half.vae.parameters()} == {torch.float16}  # ... and back afterwards
    diff = (frames - fp32_frames).abs()
    assert torch.isfinite(frames).all() and float(diff.max()) < 0.05 and float(diff.mean()) < 0.005


def test_fp16_refused_with_a_clear_message_when_a_kernel_is_missing(monkeypatch):
    from musedance_core import devices

    monkeypatch.setattr(devices, "missing_kernel", lambda dtype, device: "conv2d: not implemented for 'Half'")
    with pytest.raises(InputError, match=r"fp16 does not run on the CPU .*conv2d.*use fp32, or bf16"):
        devices.pick_dtype("fp16", torch.device("cpu"))


def _overflowing_vae(model: MuseDanceModel) -> MuseDanceModel:
    """A copy whose decoder activations reach ~1e5: fine in fp32 and bf16, inf in fp16 (max 65504)."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        for layer in (out.vae.post_quant_conv, out.vae.decoder.conv_in):
            layer.weight.mul_(300.0)
            layer.bias.mul_(300.0)
    return out


def test_fp16_vae_overflow_is_upcast_or_retried_in_fp32(model):
    if missing_kernel(torch.float16, torch.device("cpu")) is not None:
        pytest.skip("this torch has no CPU fp16 kernels")
    loud = _overflowing_vae(model)
    latents = torch.randn(1, 4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    reference = MuseDancePipeline(loud).decode(latents)
    half = loud.to(torch.float16)
    with torch.no_grad():
        raw = half.decode_latents(latents[0].permute(1, 0, 2, 3))
    assert not torch.isfinite(raw).all()  # the failure the pipeline must guard against
    pipe = MuseDancePipeline(half)
    with collect_notes() as notes:
        upcast = pipe.decode(latents)
    assert notes == []  # upcast (the default): no retry, no note
    with collect_notes() as notes:
        retried = pipe.decode(latents, upcast=False)
    assert len(notes) == 1 and "fp16 VAE overflowed" in notes[0]
    for frames in (upcast, retried):
        assert torch.isfinite(frames).all() and float((frames - reference).abs().max()) < 0.01
    assert {p.dtype for p in half.vae.parameters()} == {torch.float16}


# -- attention ---------------------------------------------------------------------------------

def _attention_without_sdpa(model: MuseDanceModel, run) -> tuple[set[str], set[str]]:
    """Run ``run()`` and return (attention modules that ran, those of them that never called
    ``F.scaled_dot_product_attention``). Attention = diffusers ``Attention`` and CLIP's."""
    from transformers.models.clip.modeling_clip import CLIPAttention

    real = torch.nn.functional.scaled_dot_product_attention
    stack: list[str] = []
    ran: set[str] = set()
    used: set[str] = set()

    def counting(*args, **kwargs):
        if stack:
            used.add(stack[-1])
        return real(*args, **kwargs)

    def enter(name: str) -> None:
        stack.append(name)
        ran.add(name)

    def leave(*_) -> None:
        stack.pop()

    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, (Attention, CLIPAttention)):
            hooks.append(module.register_forward_pre_hook(lambda m, a, name=name: enter(name)))
            hooks.append(module.register_forward_hook(leave))
    torch.nn.functional.scaled_dot_product_attention = counting
    try:
        run()
    finally:
        torch.nn.functional.scaled_dot_product_attention = real
        for hook in hooks:
            hook.remove()
    return ran, ran - used


def test_every_attention_uses_sdpa(model, song, image):
    from transformers.models.clip.modeling_clip import CLIPAttention

    legacy = copy.deepcopy(model)  # attention processors as an old diffusers / transformers setup leaves them
    for name, module in legacy.named_modules():
        if isinstance(module, Attention) and (name.startswith("vae.") or ".motion_modules." in name):
            module.set_processor(AttnProcessor())
    legacy.text_encoder.set_attn_implementation("eager")

    # the check can fail: the classic processors and eager CLIP attention are caught
    with torch.no_grad():
        ran, slow = _attention_without_sdpa(legacy, lambda: (legacy.encode_prompt(["x"]),
                                                             legacy.decode_latents(torch.randn(1, 4, 8, 8))))
    assert any(name.startswith("vae.decoder.") for name in slow) and any(name.startswith("text_encoder.") for name in slow)

    pipe = MuseDancePipeline(legacy)  # switches them to SDPA
    everything = {name for name, m in legacy.named_modules() if isinstance(m, (Attention, CLIPAttention))}
    ran, slow = _attention_without_sdpa(legacy, lambda: _run(pipe, song, image, steps=1, num_frames=2))
    assert ran == everything  # text encoder, VAE, ReferenceNet, UNet spatial and motion attention all ran ...
    assert slow == set()  # ... and all of them through F.scaled_dot_product_attention
    assert ensure_sdpa(legacy) == []  # nothing left to switch


# -- VAE: tiling and chunks --------------------------------------------------------------------

def _decoder_inputs(model: MuseDanceModel, run) -> list[tuple[int, ...]]:
    shapes = []
    hook = model.vae.decoder.register_forward_pre_hook(lambda m, a: shapes.append(tuple(a[0].shape)))
    try:
        run()
    finally:
        hook.remove()
    return shapes


def test_tiled_decode_is_close_to_untiled(model):
    """160x192 frames with the tiny VAE's 128 px tiles (32 latent, overlap 1/4): 2x2 tiles.
    Tiles normalise on their own, so the result is close, not equal: PSNR > 25 dB and
    correlation > 0.97 (measured 31-33 dB and 0.99 for random latents)."""
    pipe = MuseDancePipeline(model)
    latents = torch.randn(1, 4, 2, 40, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = pipe.decode(latents)
        shapes = _decoder_inputs(model, lambda: pipe.__setattr__("tiled", pipe.decode(latents, tiling=True)))
    tiled = pipe.tiled
    assert len(shapes) == 4 and all(s[-2] <= 32 and s[-1] <= 32 for s in shapes)
    assert model.vae.use_tiling is False  # put back after the call
    assert tiled.shape == whole.shape == (2, 160, 192, 3)
    psnr = 10 * torch.log10(1.0 / ((tiled - whole) ** 2).mean())
    corr = torch.corrcoef(torch.stack([tiled.flatten(), whole.flatten()]))[0, 1]
    assert float(psnr) > 25 and float(corr) > 0.97


def test_pipeline_with_vae_tiling_above_the_tile_size(model, song, image):
    pipe = MuseDancePipeline(model)
    shapes = _decoder_inputs(model, lambda: pipe.__setattr__(
        "result", _run(pipe, song, image, width=192, height=160, steps=1, num_frames=2, vae_tiling=True)))
    assert pipe.result.frames.shape == (2, 160, 192, 3) and torch.isfinite(pipe.result.frames).all()
    assert len(shapes) == 4 and all(s[-2] <= 32 and s[-1] <= 32 for s in shapes)


def test_chunked_decode_equals_one_call(model):
    """Chunks only split the batch: equal to one call up to the CPU kernels' batch-size-dependent
    rounding (measured 3e-6), and the sink sees the chunks in order."""
    pipe = MuseDancePipeline(model)
    latents = torch.randn(1, 4, 7, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = pipe.decode(latents, chunk=7)
        assert _decoder_inputs(model, lambda: pipe.decode(latents, chunk=3)) == [(3, 4, 16, 16)] * 2 + [(1, 4, 16, 16)]
        chunks = []
        assert pipe.decode(latents, chunk=3, frame_sink=chunks.append) is None
    assert [c.shape[0] for c in chunks] == [3, 3, 1]
    torch.testing.assert_close(torch.cat(chunks), whole, atol=1e-5, rtol=0)
    torch.testing.assert_close(pipe.decode(latents, chunk=1), whole, atol=1e-5, rtol=0)


def test_out_of_memory_in_decode_retries_one_frame_at_a_time_in_tiles(model):
    def fail_on_batches(module, args):
        if args[0].shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. (simulated)")

    pipe = MuseDancePipeline(model)
    latents = torch.randn(1, 4, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = pipe.decode(latents, chunk=1, tiling=True)
        hook = model.vae.decoder.register_forward_pre_hook(fail_on_batches)
        try:
            with collect_notes() as notes:
                frames = pipe.decode(latents, chunk=8)
            assert len(notes) == 1 and "out of memory while decoding 3 frame" in notes[0]
        finally:
            hook.remove()
    assert torch.equal(frames, expected)
    assert model.vae.use_tiling is False


# -- offload between stages --------------------------------------------------------------------

BIG_PARTS = ("text_encoder", "vae.encoder", "vae.decoder", "reference_unet", "denoising_unet", "music", "beat")


class MoveRecorder:
    """Records every ``.to(device)`` of the modules the offloader moves (the real ``.to`` still
    runs) and, at each forward of a big part, where each part is: "device" or "parked"."""

    def __init__(self, model: MuseDanceModel, pipe: MuseDancePipeline, monkeypatch):
        self.model = model
        paths = {name for name, _ in model.named_children()} | set(BIG_PARTS)
        paths |= set(pipe.encode_parts() + pipe.denoise_parts() + pipe.decode_parts())
        self.where = {path: "unknown" for path in paths}
        self.moves: list[tuple[str, str]] = []
        self.calls: list[tuple[str, str, frozenset]] = []  # (part, its place, big parts on the device)
        self.hooks = []
        for path in paths:
            module = model.get_submodule(path)
            monkeypatch.setattr(module, "to", self._recording(path, module.to))
            if path in BIG_PARTS or path.endswith(("attn1.to_k", "attn1.to_v")):
                self.hooks.append(module.register_forward_pre_hook(lambda m, a, path=path: self._called(path)))

    def _recording(self, path: str, real_to):
        def to(*args, **kwargs):
            target = kwargs.get("device", args[0] if args and not isinstance(args[0], torch.dtype) else None)
            if target is not None:
                place = "device" if torch.device(target) == COMPUTE else "parked"
                self.moves.append((path, place))
                for other in self.where:
                    if other == path or other.startswith(path + "."):
                        self.where[other] = place
            return real_to(*args, **kwargs)
        return to

    def _called(self, path: str) -> None:
        loaded = frozenset(p for p in BIG_PARTS if self.where[p] == "device")
        self.calls.append((path, self.where[path], loaded))

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()


def test_offload_moves_one_stage_at_a_time_and_changes_nothing(model, song, image, monkeypatch):
    local = copy.deepcopy(model)
    pipe = MuseDancePipeline(local, device=COMPUTE, offload_device=PARKED)
    plain = _run(pipe, song, image, cfg=2.5).frames
    recorder = MoveRecorder(local, pipe, monkeypatch)
    try:
        offloaded = _run(pipe, song, image, cfg=2.5, offload="stages").frames
    finally:
        recorder.remove()
    assert torch.equal(offloaded, plain)

    assert recorder.calls and all(place == "device" for _, place, _ in recorder.calls)  # each part runs on the device
    encode = frozenset({"text_encoder", "vae.encoder", "reference_unet"})
    expected = {"text_encoder": encode, "vae.encoder": encode, "reference_unet": encode,
                "denoising_unet": frozenset({"denoising_unet", "music", "beat"}),
                "vae.decoder": frozenset({"vae.decoder"})}
    for part, _, loaded in recorder.calls:
        if part in expected:
            assert loaded == expected[part], part  # only its own stage is on the device
    order = [part for part, _, _ in recorder.calls if part in expected]
    first = {part: order.index(part) for part in expected}
    last = {part: len(order) - 1 - order[::-1].index(part) for part in expected}
    assert max(last["text_encoder"], last["vae.encoder"], last["reference_unet"]) < first["denoising_unet"]
    assert last["denoising_unet"] < first["vae.decoder"]
    projections = [place for part, place, loaded in recorder.calls if part.endswith("attn1.to_k") and loaded == encode]
    assert projections and set(projections) == {"device"}  # the reference bank's projections visit with ReferenceNet
    assert set(recorder.where.values()) == {"parked"}  # everything waits off the device afterwards
    assert ("denoising_unet", "device") in recorder.moves and ("vae.decoder", "device") in recorder.moves


def test_offload_with_reference_every_step(model, song, image):
    """MagicAnimate's mode reruns ReferenceNet in the loop, so it joins the UNet's stage."""
    local = copy.deepcopy(model)
    pipe = MuseDancePipeline(local, device=COMPUTE, offload_device=PARKED)
    assert "reference_unet" in pipe.denoise_parts(reference_every_step=True)
    plain = _run(pipe, song, image, steps=2, num_frames=2, reference_every_step=True).frames
    offloaded = _run(pipe, song, image, steps=2, num_frames=2, reference_every_step=True, offload="stages").frames
    assert torch.equal(offloaded, plain)


def test_offload_parks_everything_when_sampling_is_cancelled(model, song, image, monkeypatch):
    local = copy.deepcopy(model)
    pipe = MuseDancePipeline(local, device=COMPUTE, offload_device=PARKED)
    recorder = MoveRecorder(local, pipe, monkeypatch)

    class Stop(Exception):
        pass

    def cancel(progress):
        raise Stop

    try:
        with pytest.raises(Stop):
            _run(pipe, song, image, offload="stages", callback=cancel)
    finally:
        recorder.remove()
    assert recorder.where["denoising_unet"] == "parked" and set(recorder.where.values()) == {"parked"}


def test_offload_off_moves_nothing_and_bad_modes_are_refused(model, song, image, monkeypatch):
    local = copy.deepcopy(model)
    pipe = MuseDancePipeline(local, device=COMPUTE, offload_device=PARKED)
    recorder = MoveRecorder(local, pipe, monkeypatch)
    try:
        _run(pipe, song, image, steps=1, num_frames=2)
    finally:
        recorder.remove()
    assert recorder.moves == []
    with pytest.raises(InputError, match="offload must be one of none, stages; got 'sequential'"):
        _run(pipe, song, image, offload="sequential")
    with pytest.raises(AttributeError):
        StageOffload(local, COMPUTE).stage(["vae.no_such_part"])


# -- command line ------------------------------------------------------------------------------

@pytest.mark.integration
def test_cli_flags_reach_the_pipeline(tmp_path, capsys):
    import soundfile
    from PIL import Image

    from musedance_core.animate import animate_files
    from musedance_core.cli import build_parser, options_from_args
    from musedance_core.video.reader import probe_video

    track = render_groove(Groove(bpm=120.0, seconds=1.5), seed=1)
    soundfile.write(tmp_path / "song.wav", track.samples, track.sample_rate)
    Image.fromarray((np.random.default_rng(0).random((48, 40, 3)) * 255).astype(np.uint8)).save(tmp_path / "me.png")
    args = build_parser().parse_args([
        "animate", "--image", str(tmp_path / "me.png"), "--music", str(tmp_path / "song.wav"), "--fps", "8",
        "--width", "64", "--height", "64", "--steps", "1", "--device", "cpu", "--precision", "bf16",
        "--offload", "stages", "--decode-chunk", "3", "--vae-tiling", "--no-upcast-vae", "--out", str(tmp_path / "o.mp4")])
    assert (args.offload, args.decode_chunk, args.vae_tiling, args.upcast_vae) == ("stages", 3, True, False)
    defaults = build_parser().parse_args(["animate", "--image", "a", "--music", "b"])
    assert (defaults.offload, defaults.decode_chunk, defaults.vae_tiling, defaults.upcast_vae) == ("none", 8, False, True)
    out = animate_files(args.image, args.music, args.out, options_from_args(args))
    assert "(bfloat16, offload: stages)" in capsys.readouterr().err
    assert probe_video(out).num_frames == 12
