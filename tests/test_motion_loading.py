"""AnimateDiff motion modules and Moore-AnimateAnyone weights: names, values, and the assembler.

Nothing is downloaded. The synthetic files carry the real names, written out here from the
original code rather than from the converter under test: AnimateDiff's ``motion_module.py``
(``VanillaTemporalModule.temporal_transformer`` -> ``transformer_blocks.k.{attention_blocks.{0,1},
norms.{0,1}, ff, ff_norm}``, a ``pos_encoder.pe`` per attention block), diffusers' own
``MotionAdapter`` and ``UNet2DConditionModel`` (whose names Moore-AnimateAnyone's UNets keep).
sd15-sized files stay tiny on disk: each tensor is one fp16 number expanded to its shape
(``torch.save`` keeps the one-element storage), and that number names the tensor, so every value
can be followed through the conversion without materialising a billion parameters.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from musedance_core.checkpoints.animate_anyone import SCHEDULER, load_animate_anyone
from musedance_core.checkpoints.assemble import ModelSources, assemble, empty_model, plan, read_layers
from musedance_core.checkpoints.bundle import COMPONENTS, component_state, save_bundle
from musedance_core.checkpoints.files import CheckpointError, read_state_dict
from musedance_core.checkpoints.motion import convert_motion_module, motion_config
from musedance_core.models.config import SD15_UNET, MuseDanceConfig, sd15_config, tiny_config
from tests.checkpoint_files import (SD15_CHANNELS, SD15_LAYERS, TINY_CHANNELS, TINY_LAYERS, VERSIONS, Randoms,
                                    Scalars, animatediff_file, save, sinusoid)

ROOT = Path(__file__).resolve().parents[1]
MOTION_PER_MODULE = 27  # diffusers names per motion module (28 in AnimateDiff's: two pe tables)


@functools.lru_cache(maxsize=None)
def model_names(config_json: str) -> dict[str, dict[str, torch.Tensor]]:
    """The model's tensors by component, on the meta device (cached: several tests share a config)."""
    return component_state(empty_model(MuseDanceConfig.from_json(config_json)))


def layers_and_plan(sources: ModelSources):
    """read_layers + plan against the model's names."""
    config, layers, tokenizer, notes = read_layers(sources)
    report, chosen = plan(config, layers, notes, tokenizer, model_names(config.to_json()))
    return config, {c.component: c for c in report.components}, chosen, report


def value(tensor: torch.Tensor) -> float:
    """The number a ``Scalars`` tensor holds (indexing: an expanded tensor is never materialised)."""
    return float(tensor[(0,) * tensor.ndim])


# one hand-written pair per renaming rule and block kind (AnimateDiff name -> model name)
def _pairs(down_last, up_last, mid):
    tt, tb = "temporal_transformer.", "temporal_transformer.transformer_blocks.0."
    pairs = [
        (f"down_blocks.0.motion_modules.0.{tt}norm.weight", "down_blocks.0.motion_modules.0.norm.weight"),
        (f"down_blocks.{down_last}.motion_modules.0.{tt}proj_in.bias",
         f"down_blocks.{down_last}.motion_modules.0.proj_in.bias"),
        (f"up_blocks.0.motion_modules.{up_last}.{tb}attention_blocks.1.to_out.0.weight",
         f"up_blocks.0.motion_modules.{up_last}.transformer_blocks.0.attn2.to_out.0.weight"),
        (f"up_blocks.1.motion_modules.0.{tb}attention_blocks.0.to_k.weight",
         "up_blocks.1.motion_modules.0.transformer_blocks.0.attn1.to_k.weight"),
        (f"down_blocks.1.motion_modules.0.{tb}norms.1.bias",
         "down_blocks.1.motion_modules.0.transformer_blocks.0.norm2.bias"),
        (f"down_blocks.0.motion_modules.0.{tb}norms.0.weight",
         "down_blocks.0.motion_modules.0.transformer_blocks.0.norm1.weight"),
        (f"up_blocks.1.motion_modules.{up_last}.{tb}ff_norm.weight",
         f"up_blocks.1.motion_modules.{up_last}.transformer_blocks.0.norm3.weight"),
        (f"up_blocks.0.motion_modules.0.{tb}ff.net.0.proj.weight",
         "up_blocks.0.motion_modules.0.transformer_blocks.0.ff.net.0.proj.weight"),
        (f"down_blocks.0.motion_modules.0.{tb}attention_blocks.0.pos_encoder.pe",
         "down_blocks.0.motion_modules.0.transformer_blocks.0.pos_embed.pe"),
        (f"up_blocks.1.motion_modules.0.{tt}proj_out.weight", "up_blocks.1.motion_modules.0.proj_out.weight"),
    ]
    if mid:
        pairs.append((f"mid_block.motion_modules.0.{tb}attention_blocks.1.to_q.weight",
                      "mid_block.motion_modules.0.transformer_blocks.0.attn2.to_q.weight"))
    return pairs


SD15_PAIRS = {mid: _pairs(3, 2, mid) for mid in (False, True)}
TINY_PAIRS = {mid: _pairs(1, 1, mid) for mid in (False, True)}


# -- AnimateDiff files at SD 1.5 size (v3 differs from v1 only in its length: tiny tests cover it) ----
@pytest.mark.parametrize("version", ["v1", "v2"])
def test_animatediff_sd15_file_lands_every_tensor_in_its_parameter(tmp_path, version):
    length, mid = VERSIONS[version]
    state = animatediff_file(SD15_CHANNELS, SD15_LAYERS, length, mid, Scalars())
    modules = 21 if mid else 20
    assert len(state) == 28 * modules  # 588 tensors in mm_sd_v15_v2.ckpt, 560 in mm_sd_v15.ckpt / v3_sd15_mm.ckpt
    path = save(state, tmp_path / f"mm_sd15_{version}.ckpt")
    assert path.stat().st_size < 2_000_000  # one number per tensor on disk

    config, reports, chosen, report = layers_and_plan(ModelSources(motion=path))

    assert config.motion["use_motion_mid_block"] is mid and config.motion["motion_max_seq_length"] == length
    motion = reports["motion"]
    assert motion.sources == {path.name: MOTION_PER_MODULE * modules} and motion.expected == MOTION_PER_MODULE * modules
    assert not motion.missing and not motion.unexpected and not motion.shape_errors
    for theirs, ours in SD15_PAIRS[mid]:
        assert chosen["motion"][ours].shape == state[theirs].shape, ours
        assert value(chosen["motion"][ours]) == value(state[theirs]), ours
    used = [value(t) for k, t in chosen["motion"].items() if not k.endswith("pos_embed.pe")]
    assert len(set(used)) == len(used) == 26 * modules  # each file tensor used once
    assert any(f"AnimateDiff motion module {version}" in n for n in report.notes)


def test_diffusers_motion_adapter_names_are_the_models_at_sd15_size():
    from diffusers import MotionAdapter

    config = sd15_config()
    with torch.device("meta"):
        adapter = MotionAdapter(**config.motion)
    weights = convert_motion_module(adapter.state_dict(), "diffusion_pytorch_model.safetensors")
    assert weights.layout == "diffusers" and weights.version == "v2" and weights.max_seq_length == 32
    expected = model_names(config.with_changes(motion=motion_config(weights, config.motion)).to_json())
    assert {k: tuple(v.shape) for k, v in weights.state.items()} == \
        {k: tuple(v.shape) for k, v in expected["motion"].items()}


# -- AnimateDiff files at tiny size, real values, both file formats ----------------------------------
@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    from musedance_core.models.musedance import MuseDanceModel

    torch.manual_seed(7)
    model = MuseDanceModel(tiny_config()).eval()
    path = tmp_path_factory.mktemp("bundle") / "tiny-no-motion.safetensors"
    save_bundle(model, path, parts=tuple(c for c in COMPONENTS if c != "motion"))
    return model, path


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_animatediff_tiny_file_by_value(tmp_path, tiny_bundle, version, suffix):
    length, mid = VERSIONS[version]
    state = animatediff_file(TINY_CHANNELS, TINY_LAYERS, length, mid, Randoms(seed=1))
    path = save(state, tmp_path / f"mm_{version}{suffix}")
    weights = convert_motion_module(read_state_dict(path), path.name)
    assert (weights.version, weights.use_mid_block, weights.max_seq_length, weights.layout) == \
        (version, mid, length, "animatediff")

    config, reports, chosen, _ = layers_and_plan(ModelSources(bundle=tiny_bundle[1], motion=path))

    modules = 7 if mid else 6
    assert reports["motion"].sources == {path.name: MOTION_PER_MODULE * modules}
    assert not reports["motion"].missing and not reports["motion"].unexpected
    for theirs, ours in TINY_PAIRS[mid]:
        assert torch.equal(chosen["motion"][ours], state[theirs]), ours
    assert config.max_context_frames == length


def test_wrapped_and_prefixed_checkpoint(tmp_path):
    """Trainer saves: {"state_dict": {"module.<name>": ...}} (DistributedDataParallel)."""
    state = animatediff_file(TINY_CHANNELS, TINY_LAYERS, 32, True, Randoms(seed=3))
    path = tmp_path / "trained.ckpt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "global_step": 10}, path)
    weights = convert_motion_module(read_state_dict(path), path.name)
    plain = convert_motion_module(state, "plain.ckpt")
    assert weights.state.keys() == plain.state.keys() and len(weights.state) == 7 * MOTION_PER_MODULE
    for theirs, ours in TINY_PAIRS[True]:
        assert torch.equal(weights.state[ours], state[theirs]), ours


def test_file_without_positional_tables_gets_animatelcm_length(tmp_path, tiny_bundle):
    state = animatediff_file(TINY_CHANNELS, TINY_LAYERS, 0, False, Randoms(seed=4), pe=False)
    path = save(state, tmp_path / "AnimateLCM_sd15_t2v.safetensors")
    config, reports, chosen, report = layers_and_plan(ModelSources(bundle=tiny_bundle[1], motion=path))
    assert config.motion["motion_max_seq_length"] == 64 and config.motion["use_motion_mid_block"] is False
    assert not reports["motion"].missing and not reports["motion"].shape_errors
    assert torch.allclose(chosen["motion"]["up_blocks.0.motion_modules.1.transformer_blocks.0.pos_embed.pe"],
                          sinusoid(64, 64))
    assert any("6 sinusoidal tables of 64 positions computed" in n for n in report.notes)


def test_unplaceable_tensors_are_reported_as_ignored(tmp_path, tiny_bundle):
    state = animatediff_file(TINY_CHANNELS, TINY_LAYERS, 32, True, Randoms(seed=5))
    state["down_blocks.0.motion_modules.0.temporal_transformer.extra_gate"] = torch.ones(32)
    state["conv_in_extra.weight"] = torch.ones(2)
    path = save(state, tmp_path / "odd.safetensors")
    _, reports, _, report = layers_and_plan(ModelSources(bundle=tiny_bundle[1], motion=path))
    assert reports["motion"].unexpected == {path.name: ["conv_in_extra.weight",
                                                        "down_blocks.0.motion_modules.0.extra_gate"]}
    assert "ignored 2 tensors of odd.safetensors" in report.format()


def test_diffusers_motion_adapter_file_by_value(tmp_path, tiny_bundle):
    from diffusers import MotionAdapter

    motion = dict(tiny_config().motion, use_motion_mid_block=False, motion_max_seq_length=24)  # a v1 adapter
    torch.manual_seed(6)
    adapter = MotionAdapter(**motion)
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(0, 0.1)
    adapter.save_pretrained(tmp_path / "adapter")
    path = tmp_path / "adapter" / "diffusion_pytorch_model.safetensors"
    config, reports, chosen, _ = layers_and_plan(ModelSources(bundle=tiny_bundle[1], motion=path))
    assert config.motion["use_motion_mid_block"] is False and config.motion["motion_max_seq_length"] == 24
    want = adapter.state_dict()
    assert chosen["motion"].keys() == want.keys() and reports["motion"].sources == {path.name: len(want)}
    for key, tensor in want.items():
        assert torch.equal(chosen["motion"][key], tensor), key


# -- a real assembly: tiny bundle without motion modules + an AnimateDiff file ------------------------
def test_assemble_tiny_bundle_with_animatediff_v1_file(tmp_path, tiny_bundle):
    source, bundle = tiny_bundle
    state = animatediff_file(TINY_CHANNELS, TINY_LAYERS, 24, False, Randoms(seed=8, dtype=torch.float16))
    path = save(state, tmp_path / "mm_tiny_v1.safetensors")

    model, report = assemble(ModelSources(bundle=bundle, motion=path))

    assert report.ok and model.config.motion["motion_max_seq_length"] == 24
    unet = model.denoising_unet
    assert not hasattr(unet.mid_block, "motion_modules")  # v1: no mid-block motion module
    block = unet.down_blocks[1].motion_modules[0].transformer_blocks[0]
    tb = "temporal_transformer.transformer_blocks.0."
    for param, theirs in (
            (block.attn1.to_v.weight, f"down_blocks.1.motion_modules.0.{tb}attention_blocks.0.to_v.weight"),
            (block.norm1.weight, f"down_blocks.1.motion_modules.0.{tb}norms.0.weight"),
            (block.norm3.bias, f"down_blocks.1.motion_modules.0.{tb}ff_norm.bias"),
            (block.pos_embed.pe, f"down_blocks.1.motion_modules.0.{tb}attention_blocks.0.pos_encoder.pe"),
            (unet.up_blocks[1].motion_modules[1].transformer_blocks[0].attn2.to_out[0].bias,
             f"up_blocks.1.motion_modules.1.{tb}attention_blocks.1.to_out.0.bias"),
            (unet.up_blocks[0].motion_modules[0].proj_out.weight,
             "up_blocks.0.motion_modules.0.temporal_transformer.proj_out.weight")):
        assert param.dtype == torch.float32 and torch.equal(param, state[theirs].float()), theirs
    assert block.pos_embed.pe.shape == (1, 24, 64)
    assert torch.equal(unet.conv_in.weight, source.denoising_unet.conv_in.weight)  # spatial layers: the bundle's
    assert torch.equal(model.reference_unet.conv_in.weight, source.reference_unet.conv_in.weight)
    counts = {c.component: c.sources for c in report.components}
    assert counts["motion"] == {path.name: 6 * MOTION_PER_MODULE}
    with torch.no_grad():  # the assembled model runs, with the file's (non-zero) motion output layers
        text = model.encode_prompt(["spins"])
        out = model.denoise(torch.randn(1, 4, 3, 8, 8, generator=torch.Generator().manual_seed(0)), 500, text)
    assert out.shape == (1, 4, 3, 8, 8) and torch.isfinite(out).all()


# -- Moore-AnimateAnyone -----------------------------------------------------------------------------
AA_TEMPORAL = ("down_blocks.0.attentions.0.transformer_blocks.0.attn_temp.to_q.weight",
               "down_blocks.0.attentions.0.transformer_blocks.0.norm_temp.weight")


def write_animate_anyone(folder: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Moore-AnimateAnyone's pretrained_weights/: UNet2DConditionModel names (which its UNet3D keeps),
    the reference net without its output head, an AnimateDiff v2 motion module, a pose guider."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = {k: tuple(v.shape) for k, v in UNet2DConditionModel(**SD15_UNET).state_dict().items()}
    reference_values, denoising_values = Scalars(), Scalars(start=1000)  # values tell the two files apart
    files = {"reference_unet.pth": {k: reference_values(s) for k, s in unet.items()
                                    if not k.startswith(("conv_norm_out.", "conv_out."))},
             "denoising_unet.pth": {k: denoising_values(s) for k, s in unet.items()},
             "motion_module.pth": animatediff_file(SD15_CHANNELS, SD15_LAYERS, 32, True, Scalars()),
             "pose_guider.pth": {"conv_in.weight": torch.zeros(16, 3, 3, 3)}}
    folder.mkdir()
    for name, state in files.items():
        torch.save(state, folder / name)
    return files


@pytest.fixture(scope="module")
def animate_anyone(tmp_path_factory):
    folder = tmp_path_factory.mktemp("aa") / "AnimateAnyone"
    return folder, write_animate_anyone(folder)


def test_animate_anyone_folder_lands_every_tensor(animate_anyone):
    folder, files = animate_anyone
    assert [len(files[n]) for n in ("reference_unet.pth", "denoising_unet.pth", "motion_module.pth")] == [682, 686, 588]

    config, reports, chosen, report = layers_and_plan(ModelSources(animate_anyone=folder))

    assert config.motion["use_motion_mid_block"] is True and config.motion["motion_max_seq_length"] == 32
    for part, name in (("denoising_unet", "denoising_unet.pth"), ("reference_unet", "reference_unet.pth")):
        assert not reports[part].missing and not reports[part].unexpected and not reports[part].shape_errors
        for key, tensor in files[name].items():
            assert value(chosen[part][key]) == value(tensor), key
    assert reports["denoising_unet"].sources == {folder.name: 686}
    assert reports["reference_unet"].sources == {folder.name: 686}  # 682 + the head taken from the denoiser
    assert value(chosen["reference_unet"]["conv_out.weight"]) == value(files["denoising_unet.pth"]["conv_out.weight"])
    assert reports["motion"].sources == {folder.name: 21 * MOTION_PER_MODULE}
    for theirs, ours in SD15_PAIRS[True]:
        assert value(chosen["motion"][ours]) == value(files["motion_module.pth"][theirs]), ours
    text = report.format()
    assert "v-prediction" in text and "pose_guider not used" in text and "CLIP image embeddings" in text
    assert {e.split(":")[0] for e in report.errors} == {"no file provides the vae", "no file provides the text_encoder",
                                                        "no CLIP tokenizer"}


def test_animate_anyone_scheduler_and_temporal_attention(animate_anyone, tmp_path):
    folder, files = animate_anyone
    variant = tmp_path / "aa-temporal"
    shutil.copytree(folder, variant)
    denoising = {**files["denoising_unet.pth"], AA_TEMPORAL[0]: torch.zeros(320, 320), AA_TEMPORAL[1]: torch.zeros(320)}
    torch.save(denoising, variant / "denoising_unet.pth")
    weights = load_animate_anyone(variant)
    assert weights.scheduler == SCHEDULER == {"prediction_type": "v_prediction", "rescale_betas_zero_snr": True,
                                              "timestep_spacing": "trailing"}
    assert set(AA_TEMPORAL) <= set(weights.denoising_unet)  # kept: the assembler reports them as ignored
    assert any("2 spatial temporal-attention tensors" in n for n in weights.notes)
    assert weights.motion.version == "v2" and len(weights.motion.state) == 21 * MOTION_PER_MODULE


def test_animate_anyone_missing_or_wrong_file(animate_anyone, tmp_path):
    folder, files = animate_anyone
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("reference_unet.pth", "denoising_unet.pth"):
        shutil.copy(folder / name, partial / name)
    with pytest.raises(CheckpointError, match=r"the Animate Anyone folder '.*partial' has no motion_module.pth "
                                              r"\(it holds denoising_unet.pth, reference_unet.pth\).*patrolli"):
        load_animate_anyone(partial)
    shutil.copy(folder / "motion_module.pth", partial / "reference_unet.pth")  # a motion module in the wrong place
    shutil.copy(folder / "motion_module.pth", partial / "motion_module.pth")
    with pytest.raises(CheckpointError, match=r"'reference_unet.pth' is an AnimateDiff motion module; MuseDance "
                                              r"needs Moore-AnimateAnyone's UNet weights .* as its Animate Anyone "
                                              r"reference UNet"):
        load_animate_anyone(partial)
    with pytest.raises(CheckpointError, match="Animate Anyone folder not found"):
        load_animate_anyone(tmp_path / "nowhere")


# -- the command line --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, tiny_bundle):
    """Three `inspect` runs, started together so that their interpreter start-ups overlap (not
    autouse: ``-m "not integration"`` starts none); ``cli_runs(name)`` waits for one and gives
    (exit code, stdout, stderr)."""
    _, bundle = tiny_bundle
    root = tmp_path_factory.mktemp("cli")
    motion = save(animatediff_file(TINY_CHANNELS, TINY_LAYERS, 32, True, Randoms(seed=9)),
                  root / "mm_tiny_v2.safetensors")
    lora = save(animatediff_file(SD15_CHANNELS, SD15_LAYERS, 32, True, Randoms(seed=10, dtype=torch.float16),
                                 lora=True), root / "v2_lora_ZoomIn.safetensors")
    sdxl = save(animatediff_file([320, 640, 1280], SD15_LAYERS, 32, False, Scalars()), root / "mm_sdxl_v10_beta.ckpt")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = {name: subprocess.Popen([sys.executable, "-m", "musedance_core", "inspect", "--bundle", str(bundle),
                                     "--motion", str(path)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
             for name, path in (("ok", motion), ("lora", lora), ("sdxl", sdxl))}
    results = {}

    def finish(name):
        if name not in results:
            out, err = procs[name].communicate(timeout=300)
            results[name] = (procs[name].returncode, out, err)
        return results[name]

    yield finish
    for proc in procs.values():  # only ours, and only if a test failed before waiting for it
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.integration
def test_cli_inspect_prints_the_sources(cli_runs):
    code, out, err = cli_runs("ok")
    assert code == 0, err
    n = 7 * MOTION_PER_MODULE
    assert f"motion            {n}/{n}   {n} from mm_tiny_v2.safetensors" in out
    assert "denoising_unet    208/208   208 from tiny-no-motion.safetensors" in out
    assert "AnimateDiff motion module v2" in out and out.strip().endswith("ready to run")


@pytest.mark.integration
@pytest.mark.parametrize("name, message", [
    ("lora", "error: 'v2_lora_ZoomIn.safetensors' is an AnimateDiff motion LoRA; MuseDance needs an AnimateDiff "
             "motion module for SD 1.5"),
    ("sdxl", "error: 'mm_sdxl_v10_beta.ckpt' is an AnimateDiff motion module for SDXL; MuseDance needs an "
             "AnimateDiff motion module for SD 1.5"),
])
def test_cli_inspect_names_a_wrong_motion_file(cli_runs, name, message):
    code, out, err = cli_runs(name)
    assert code == 2 and err.startswith(message) and "Traceback" not in err, err  # 2 = error (README), 1 = not loadable
    assert ("mm_sd_v15_v2.ckpt" if name == "lora" else "3 resolution levels") in err
