"""SD 1.5 base weights offline: LDM single files, diffusers folders, the CLIP tokenizer, and what
family a weight file is.

Nothing is downloaded. The synthetic single-file checkpoints carry the REAL LDM names, taken from
an independent oracle: the ComfyUI install (``COMFYUI_PATH`` else ``.cache/comfyui``), whose
``comfy.utils.unet_to_diffusers`` maps diffusers UNet names to LDM names and whose
``comfy.diffusers_convert.convert_vae_state_dict`` turns a diffusers VAE into LDM form. ComfyUI runs
in a subprocess, so its import-time side effects (it widens torch's ``weights_only`` allow-list)
never reach this test process. Shapes are tiny but keep SD 1.5's structure: 4 UNet levels, 2
layers per block, cross-attention 768, a 4-level VAE, a CLIP text tower.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch

from musedance_core.checkpoints import sd15
from musedance_core.checkpoints.files import CheckpointError, read_state_dict
from musedance_core.checkpoints.identify import ACCEPTED, REJECTED, FileKind, identify, require
from musedance_core.models.config import SD15_TEXT, SD15_UNET, SD15_VAE, sd15_config, tiny_config
from musedance_core.models.text import BUILTIN_TOKENIZER, build_text_encoder
from tests.comfy_host import INSTALL_HINT, comfy_path, skip_or_fail

# ComfyUI's description of an SD 1.5 UNet: 2 res blocks per level, transformers in the first 3
# levels (down) / last 3 (up, popped from the end), one in the middle.
COMFY_SD15_UNET = {"num_res_blocks": [2] * 4, "channel_mult": [1, 2, 4, 4],
                   "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
                   "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
                   "transformer_depth_middle": 1}

_ORACLE = r"""
import json, sys
import torch
import comfy.utils, comfy.diffusers_convert
request = json.load(sys.stdin)
unet = comfy.utils.unet_to_diffusers(request["unet_config"])
vae = {}
for name, shape in request["vae_shapes"].items():
    (ldm, tensor), = comfy.diffusers_convert.convert_vae_state_dict({name: torch.empty(shape, device="meta")}).items()
    vae[name] = [ldm, list(tensor.shape)]
print("ORACLE " + json.dumps({"unet": unet, "vae": vae}))
"""


def small_sd15():
    """SD 1.5's structure and key set (channels 1:2:4:4) with few channels; cross-attention stays 768."""
    unet = dict(SD15_UNET, sample_size=8, block_out_channels=[16, 32, 64, 64], attention_head_dim=2,
                norm_num_groups=8)
    vae = dict(SD15_VAE, block_out_channels=[8, 16, 32, 32], norm_num_groups=4, sample_size=32)
    text = dict(SD15_TEXT, vocab_size=128, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                num_attention_heads=2, projection_dim=32, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    return sd15_config().with_changes(name="small-sd15", unet=unet, vae=vae, text_encoder=text)


@dataclass
class Modules:
    unet: torch.nn.Module
    vae: torch.nn.Module
    text: torch.nn.Module


def build_modules(config, seed=0) -> Modules:
    """diffusers / transformers modules of ``config`` with every tensor random (so values identify it)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(seed)
    modules = Modules(UNet2DConditionModel(**config.unet).eval(), AutoencoderKL(**config.vae).eval(),
                      build_text_encoder(config.text_encoder, config.tokenizer).eval())
    with torch.no_grad():
        for module in (modules.unet, modules.vae, modules.text):
            for p in module.parameters():
                p.normal_(0, 0.1)
    return modules


def comfy_folder():
    folder = comfy_path()
    if folder is None:
        skip_or_fail(f"no ComfyUI to serve as the LDM-name oracle: {INSTALL_HINT}")
    return folder


def ldm_names(vae_state: dict[str, torch.Tensor], unet_config=COMFY_SD15_UNET) -> dict:
    """ComfyUI's diffusers->LDM maps: {"unet": {diffusers: ldm}, "vae": {diffusers: [ldm, shape]}}."""
    folder = comfy_folder()
    request = {"unet_config": unet_config, "vae_shapes": {k: list(v.shape) for k, v in vae_state.items()}}
    env = dict(os.environ, PYTHONPATH=str(folder), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", _ORACLE], input=json.dumps(request), capture_output=True,
                          text=True, cwd=folder, env=env, timeout=300, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("ORACLE ")), None)
    assert done.returncode == 0 and line, done.stderr[-2000:]
    return json.loads(line[len("ORACLE "):])


def ldm_checkpoint(modules: Modules, names: dict, *, ema=False, legacy_text=False,
                   dtype=torch.float32) -> dict[str, torch.Tensor]:
    """The single-file checkpoint of ``modules`` in LDM names, as SD 1.5 files hold them."""
    unet_map = names["unet"]
    unet_state = modules.unet.state_dict()
    ldm_unet = [unet_map[k] for k in unet_state]  # KeyError = ComfyUI has no LDM name for a diffusers key
    assert len(set(ldm_unet)) == len(ldm_unet)
    state = {f"model.diffusion_model.{unet_map[k]}": v for k, v in unet_state.items()}
    for key, tensor in modules.vae.state_dict().items():
        ldm, shape = names["vae"][key]
        state[f"first_stage_model.{ldm}"] = tensor.reshape(shape)  # mid-block attention: linear -> 1x1 conv
    text_prefix = "cond_stage_model.transformer." + ("" if legacy_text else "text_model.")
    for key, tensor in modules.text.state_dict().items():
        state[text_prefix + key] = tensor
    state[text_prefix + "embeddings.position_ids"] = torch.arange(77).unsqueeze(0)  # older files carry it
    state["alphas_cumprod"] = torch.linspace(0.99, 0.01, 1000)  # DDPM schedule buffers ride along
    state["betas"] = torch.linspace(1e-4, 2e-2, 1000)
    if ema:  # EMA copy: flattened names, different values, as in v1-5-pruned.ckpt
        for key in [k for k in state if k.startswith("model.diffusion_model.")]:
            state["model_ema." + "".join(key.split(".")[1:])] = state[key] + 1.0
        state["model_ema.decay"] = torch.tensor(0.9999)
        state["model_ema.num_updates"] = torch.tensor(1000, dtype=torch.int32)
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


pytestmark = pytest.mark.usefixtures("no_network")  # tests/conftest.py


@pytest.fixture(scope="module")
def small():
    config = small_sd15()
    modules = build_modules(config)
    return config, modules, ldm_names(modules.vae.state_dict())


def fresh(config) -> Modules:
    from diffusers import AutoencoderKL, UNet2DConditionModel

    return Modules(UNet2DConditionModel(**config.unet), AutoencoderKL(**config.vae),
                   build_text_encoder(config.text_encoder, config.tokenizer))


def assert_same_weights(weights: sd15.Sd15Weights, modules: Modules, dtype=torch.float32):
    for got, module in ((weights.unet, modules.unet), (weights.vae, modules.vae), (weights.text_encoder, modules.text)):
        want = module.state_dict()
        assert set(got) == set(want)
        for key, tensor in want.items():
            assert got[key].dtype == dtype, key
            assert torch.equal(got[key], tensor.to(dtype)), key


# -- single LDM files ----------------------------------------------------------------------------
def test_ldm_single_file_lands_every_tensor_in_its_parameter(small):
    config, modules, names = small
    state = ldm_checkpoint(modules, names)
    counts = [len(m.state_dict()) for m in (modules.unet, modules.vae, modules.text)]
    assert counts[:2] == [686, 248]  # exactly SD 1.5's UNet and VAE key sets (its text tower has 12 layers, 196)
    kind = require(identify(state), {"sd15"}, "small.safetensors", "base checkpoint")
    assert kind.details["ema"] is False and kind.details["components"] == ["unet", "vae", "text_encoder"]

    weights = sd15.from_single_file(state, "small.safetensors", config)

    assert_same_weights(weights, modules)
    ldm = "model.diffusion_model."
    # chosen tensors, by value, against the LDM name they were stored under
    for ours, theirs in (
            ("down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight",
             "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight"),
            ("up_blocks.3.resnets.2.conv1.weight", "output_blocks.11.0.in_layers.2.weight"),
            ("up_blocks.0.upsamplers.0.conv.weight", "output_blocks.2.1.conv.weight"),  # no attention at level 0
            ("mid_block.resnets.1.time_emb_proj.weight", "middle_block.2.emb_layers.1.weight")):
        assert torch.equal(weights.unet[ours], state[ldm + theirs]), ours
    conv_q = state["first_stage_model.decoder.mid.attn_1.q.weight"]
    assert conv_q.ndim == 4 and conv_q.shape[2:] == (1, 1)  # LDM stores the VAE attention as 1x1 convs
    assert torch.equal(weights.vae["decoder.mid_block.attentions.0.to_q.weight"], conv_q[:, :, 0, 0])
    assert torch.equal(weights.vae["encoder.mid_block.attentions.0.to_out.0.weight"],
                       state["first_stage_model.encoder.mid.attn_1.proj_out.weight"][:, :, 0, 0])
    assert torch.equal(weights.text_encoder["final_layer_norm.weight"],
                       state["cond_stage_model.transformer.text_model.final_layer_norm.weight"])
    assert "embeddings.position_ids" not in weights.text_encoder
    assert any("alphas_cumprod" in n for n in weights.notes)

    # loads strictly, and computes what the original modules compute
    target = fresh(config)
    target.unet.load_state_dict(weights.unet, strict=True)
    target.vae.load_state_dict(weights.vae, strict=True)
    target.text.load_state_dict(weights.text_encoder, strict=True)
    ids = torch.tensor([[0, 5, 17, 1] + [1] * 73])
    latents = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(target.text.eval()(ids).last_hidden_state, modules.text(ids).last_hidden_state)
        assert torch.allclose(target.vae.eval().decode(latents).sample, modules.vae.decode(latents).sample)


def test_ema_weights_are_ignored_and_counted(small):
    config, modules, names = small
    state = ldm_checkpoint(modules, names, ema=True)
    kind = identify(state)
    assert kind.family == "sd15" and "with EMA weights" in kind.label and kind.details["ema_tensors"] == 688
    weights = sd15.from_single_file(state, "ema.ckpt", config)
    assert_same_weights(weights, modules)  # model.diffusion_model values, not the EMA (+1) ones
    assert any("688 EMA tensors" in n for n in weights.notes)


def test_fp16_file_keeps_its_dtype_and_round_trips_through_safetensors(small, tmp_path):
    from safetensors.torch import save_file

    config, modules, names = small
    path = tmp_path / "small-fp16.safetensors"
    save_file(ldm_checkpoint(modules, names, dtype=torch.float16), str(path))
    state = read_state_dict(path)
    kind = identify(state)
    assert kind.family == "sd15" and kind.label.endswith("fp16)") and kind.details["dtype"] == "fp16"
    assert_same_weights(sd15.from_single_file(state, path.name, config), modules, torch.float16)


def test_pickled_checkpoint_and_legacy_text_names(small, tmp_path):
    config, modules, names = small
    path = tmp_path / "old.ckpt"
    torch.save({"state_dict": ldm_checkpoint(modules, names, legacy_text=True, ema=True)}, path)
    state = read_state_dict(path)  # unwraps {"state_dict": ...}, weights_only=True
    kind = identify(state)
    assert kind.family == "sd15" and kind.details["text_encoder_names"] == "legacy (no text_model.)"
    assert_same_weights(sd15.from_single_file(state, path.name, config), modules)


def test_missing_component_is_a_note_but_missing_tensors_are_an_error(small):
    config, modules, names = small
    state = ldm_checkpoint(modules, names)
    no_vae = {k: v for k, v in state.items() if not k.startswith("first_stage_model.")}
    kind = identify(no_vae)
    assert kind.family == "sd15" and "no VAE" in kind.label
    weights = sd15.from_single_file(no_vae, "novae.safetensors", config)
    assert weights.vae == {} and any("no VAE" in n for n in weights.notes)

    broken = dict(state)
    del broken["model.diffusion_model.output_blocks.5.1.transformer_blocks.0.attn1.to_q.weight"]
    with pytest.raises(CheckpointError, match=r"'broken.safetensors'.*UNet.*1 of its \d+ tensors are missing.*"
                                              r"up_blocks.1.attentions.2.transformer_blocks.0.attn1.to_q.weight"):
        sd15.from_single_file(broken, "broken.safetensors", config)


def test_tiny_file_does_not_fit_the_sd15_model(small):
    _, modules, names = small
    with pytest.raises(CheckpointError, match=r"'small.safetensors': the UNet does not fit MuseDance's 'sd15' UNet.*"
                                              r"another shape"):
        sd15.from_single_file(ldm_checkpoint(modules, names), "small.safetensors", sd15_config())


def test_corrupt_files_give_checkpoint_errors(tmp_path, small):
    from safetensors.torch import save_file

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01not a safetensors file at all")
    with pytest.raises(CheckpointError, match="garbage.safetensors"):
        read_state_dict(garbage)
    _, modules, names = small
    whole = tmp_path / "whole.safetensors"
    save_file(ldm_checkpoint(modules, names), str(whole))
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # an interrupted download
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        read_state_dict(cut)
    bad_pickle = tmp_path / "bad.ckpt"
    bad_pickle.write_bytes(b"PK\x03\x04 broken zip")
    with pytest.raises(CheckpointError, match="bad.ckpt"):
        read_state_dict(bad_pickle)


# -- diffusers folders ---------------------------------------------------------------------------
def write_diffusers_folder(root, modules: Modules, *, variant=None, bin_vae=False, old_text_names=False,
                           tokenizer=True):
    root.mkdir(parents=True, exist_ok=True)
    (root / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    unet = copy.deepcopy(modules.unet).half() if variant == "fp16" else modules.unet  # never alter the fixture
    unet.save_pretrained(root / "unet", variant=variant)
    modules.vae.save_pretrained(root / "vae", safe_serialization=not bin_vae)
    if old_text_names:  # transformers 4.x files: text_model. prefix and the position_ids buffer
        from safetensors.torch import save_file

        (root / "text_encoder").mkdir()
        modules.text.config.to_json_file(str(root / "text_encoder" / "config.json"))
        state = {f"text_model.{k}": v.contiguous() for k, v in modules.text.state_dict().items()}
        state["text_model.embeddings.position_ids"] = torch.arange(77).unsqueeze(0)
        save_file(state, str(root / "text_encoder" / "model.safetensors"))
    else:
        modules.text.save_pretrained(root / "text_encoder")
    if tokenizer:
        (root / "tokenizer").mkdir()
        (root / "tokenizer" / "vocab.json").write_text("{}")
        (root / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")
    return root


def test_diffusers_folder_loads_strictly_with_its_tokenizer(small, tmp_path):
    config, modules, _ = small
    folder = write_diffusers_folder(tmp_path / "sd15-diffusers", modules)
    weights = sd15.from_diffusers_folder(folder, config)
    assert_same_weights(weights, modules)
    assert weights.tokenizer_dir == folder / "tokenizer" and weights.source == "sd15-diffusers"
    target = fresh(config)
    target.unet.load_state_dict(weights.unet, strict=True)
    target.vae.load_state_dict(weights.vae, strict=True)
    target.text.load_state_dict(weights.text_encoder, strict=True)


def test_diffusers_folder_fp16_variant_bin_vae_and_old_names(small, tmp_path):
    config, modules, _ = small
    folder = write_diffusers_folder(tmp_path / "variant", modules, variant="fp16", bin_vae=True,
                                    old_text_names=True, tokenizer=False)
    assert (folder / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    assert (folder / "vae" / "diffusion_pytorch_model.bin").is_file()
    weights = sd15.from_diffusers_folder(folder, config)
    assert weights.unet["conv_in.weight"].dtype == torch.float16
    assert torch.equal(weights.unet["conv_in.weight"], modules.unet.conv_in.weight.half())
    assert torch.equal(weights.vae["decoder.mid_block.attentions.0.to_q.weight"],
                       modules.vae.decoder.mid_block.attentions[0].to_q.weight)
    assert torch.equal(weights.text_encoder["final_layer_norm.weight"], modules.text.final_layer_norm.weight)
    assert weights.tokenizer_dir is None
    assert any("fp16 variant" in n for n in weights.notes) and any("no tokenizer/" in n for n in weights.notes)


def test_diffusers_folder_with_deprecated_vae_attention_names(small, tmp_path):
    from safetensors.torch import load_file, save_file

    config, modules, _ = small
    folder = write_diffusers_folder(tmp_path / "old-vae", modules)
    path = folder / "vae" / "diffusion_pytorch_model.safetensors"
    old = {}
    for key, tensor in load_file(str(path)).items():
        for new, dep in ((".to_q.", ".query."), (".to_k.", ".key."), (".to_v.", ".value."),
                         (".to_out.0.", ".proj_attn.")):
            key = key.replace(new, dep)
        old[key] = tensor
    save_file(old, str(path))
    weights = sd15.from_diffusers_folder(folder, config)
    assert torch.equal(weights.vae["encoder.mid_block.attentions.0.to_v.weight"],
                       modules.vae.encoder.mid_block.attentions[0].to_v.weight)


def _config_only_folder(root, unet=None, index=None, transformer=None):
    root.mkdir()
    if index:
        (root / "model_index.json").write_text(json.dumps({"_class_name": index}))
    if unet is not None:
        (root / "unet").mkdir()
        (root / "unet" / "config.json").write_text(json.dumps(unet))
    if transformer:
        (root / "transformer").mkdir()
        (root / "transformer" / "config.json").write_text(json.dumps({"_class_name": transformer}))
    return root


@pytest.mark.parametrize("name, unet, index, transformer, message", [
    ("sdxl", dict(SD15_UNET, cross_attention_dim=2048, addition_embed_type="text_time"),
     "StableDiffusionXLPipeline", None,
     r"'sdxl' is an SDXL checkpoint; .*models/checkpoints.*different model families"),
    ("sd21", dict(SD15_UNET, cross_attention_dim=1024, use_linear_projection=True), "StableDiffusionPipeline", None,
     r"'sd21' is a Stable Diffusion 2.x checkpoint"),
    ("inpaint", dict(SD15_UNET, in_channels=9), "StableDiffusionInpaintPipeline", None,
     r"'inpaint' is an SD 1.5 inpainting checkpoint.*9 input channels"),
    ("flux", None, "FluxPipeline", "FluxTransformer2DModel", r"'flux' is a Flux checkpoint"),
    ("sd3", None, "StableDiffusion3Pipeline", "SD3Transformer2DModel", r"'sd3' is a Stable Diffusion 3 checkpoint"),
    ("empty", None, None, None, r"'empty' is a folder without unet/config.json.*unet/, vae/, text_encoder/"),
    ("odd", dict(SD15_UNET, layers_per_block=1), "StableDiffusionPipeline", None,
     r"'odd/unet/config.json' does not describe an SD 1.5 unet: layers_per_block=1"),
])
def test_diffusers_folders_of_other_families_are_named(tmp_path, name, unet, index, transformer, message):
    folder = _config_only_folder(tmp_path / name, unet, index, transformer)
    with pytest.raises(CheckpointError, match=message):
        sd15.from_diffusers_folder(folder)


def test_diffusers_folder_without_weights_says_which_file(small, tmp_path):
    config, modules, _ = small
    folder = write_diffusers_folder(tmp_path / "noweights", modules)
    (folder / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"'noweights/vae' has no weights: expected one of "
                                              r"diffusion_pytorch_model.safetensors"):
        sd15.from_diffusers_folder(folder, config)


# -- the CLIP tokenizer --------------------------------------------------------------------------
def _tokenizer_dir(path):
    path.mkdir(parents=True)
    (path / "vocab.json").write_text("{}")
    (path / "merges.txt").write_text("#version: 0.2\n")
    return path


def test_tokenizer_explicit_then_diffusers_folder_then_built_in(tmp_path):
    explicit = _tokenizer_dir(tmp_path / "clip")
    base = tmp_path / "sd15-diffusers"
    _tokenizer_dir(base / "tokenizer")
    assert sd15.find_tokenizer(explicit, base) == explicit
    assert sd15.find_tokenizer(base) == base / "tokenizer"  # a diffusers root given explicitly
    assert sd15.find_tokenizer(None, base) == base / "tokenizer"
    assert sd15.find_tokenizer(None, base / "tokenizer") == base / "tokenizer"
    assert sd15.find_tokenizer() == BUILTIN_TOKENIZER  # a single file as the base: the shipped copy
    assert sd15.find_tokenizer(None, tmp_path / "no-tokenizer-here") == BUILTIN_TOKENIZER
    with pytest.raises(CheckpointError, match=r"tokenizer folder '.*nowhere' has no vocab.json and merges.txt"):
        sd15.find_tokenizer(tmp_path / "nowhere", base)  # a wrong explicit path is never silently replaced


def test_explicit_tokenizer_folder_without_its_files_is_a_clear_error(tmp_path):
    half = tmp_path / "half"
    half.mkdir()
    (half / "vocab.json").write_text("{}")  # merges.txt missing
    with pytest.raises(CheckpointError) as error:
        sd15.find_tokenizer(half)
    text = str(error.value)
    assert f"tokenizer folder '{half}' has no vocab.json and merges.txt" in text
    assert "leave it out to use MuseDance's built-in CLIP tokenizer" in text


def test_comfyui_is_no_longer_searched(tmp_path, monkeypatch):
    """ComfyUI's comfy/sd1_tokenizer holds the same files as the shipped copy, which wins."""
    comfyui = tmp_path / "ComfyUI"
    _tokenizer_dir(comfyui / "comfy" / "sd1_tokenizer")
    monkeypatch.setenv("COMFYUI_PATH", str(comfyui))
    monkeypatch.syspath_prepend(str(comfyui))
    assert sd15.find_tokenizer() == BUILTIN_TOKENIZER


def test_missing_built_in_tokenizer_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(sd15, "BUILTIN_TOKENIZER", tmp_path / "clip_tokenizer")  # an install that lost it
    with pytest.raises(CheckpointError) as error:
        sd15.find_tokenizer(None, tmp_path)
    text = str(error.value)
    assert "built-in CLIP tokenizer is missing" in text and "reinstall" in text
    assert "tokenizer folder explicitly" in text and "diffusers SD 1.5 folder" in text


def test_comfyui_tokenizer_is_the_shipped_one_and_still_reads_when_given():
    """The shipped files are ComfyUI's comfy/sd1_tokenizer byte for byte (vocab and merges), and
    that folder still works as an explicit tokenizer."""
    from musedance_core.models.text import ClipTokenizer

    comfy = comfy_folder() / "comfy" / "sd1_tokenizer"
    for name in ("vocab.json", "merges.txt", "special_tokens_map.json"):
        assert (comfy / name).read_bytes() == (BUILTIN_TOKENIZER / name).read_bytes(), name
    found = sd15.find_tokenizer(comfy)
    assert found == comfy
    ids, cut = ClipTokenizer(found)(["a dancer spins"])
    assert ids.shape == (1, 77) and ids[0, 0] == 49406 and not cut[0]  # CLIP's start token
    assert torch.equal(ids, ClipTokenizer(BUILTIN_TOKENIZER)(["a dancer spins"])[0])


# -- file families -------------------------------------------------------------------------------
def meta(*shape):
    return torch.empty(*shape, device="meta")


def motion_module(levels, channels, length, mid, layout="animatediff", lora=False):
    """A motion-module state dict with the real key names, one tensor per layer kind (meta tensors)."""
    state = {}
    slots = [(f"down_blocks.{i}", 2, channels[i]) for i in range(levels)] + \
            [(f"up_blocks.{i}", 3, channels[::-1][i]) for i in range(levels)]
    if mid:
        slots.append(("mid_block", 1, channels[-1]))
    for block, count, c in slots:
        for j in range(count):
            if layout == "animatediff":
                p = f"{block}.motion_modules.{j}.temporal_transformer."
                if lora:
                    state[p + "transformer_blocks.0.attention_blocks.0.processor.to_q_lora.down.weight"] = meta(4, c)
                    state[p + "transformer_blocks.0.attention_blocks.0.processor.to_q_lora.up.weight"] = meta(c, 4)
                    continue
                state[p + "norm.weight"] = meta(c)
                state[p + "proj_in.weight"] = meta(c, c)
                for a in (0, 1):
                    state[p + f"transformer_blocks.0.attention_blocks.{a}.to_q.weight"] = meta(c, c)
                    state[p + f"transformer_blocks.0.attention_blocks.{a}.pos_encoder.pe"] = meta(1, length, c)
                    state[p + f"transformer_blocks.0.norms.{a}.weight"] = meta(c)
                state[p + "transformer_blocks.0.ff_norm.weight"] = meta(c)
            else:
                p = f"{block}.motion_modules.{j}."
                state[p + "norm.weight"] = meta(c)
                state[p + "transformer_blocks.0.attn1.to_q.weight"] = meta(c, c)
                state[p + "transformer_blocks.0.pos_embed.pe"] = meta(1, length, c)
            state[p + "proj_out.weight"] = meta(c, c)
    return state


SD15_MOTION_CHANNELS = [320, 640, 1280, 1280]


@pytest.mark.parametrize("length, mid, version", [(24, False, "v1"), (32, True, "v2"), (32, False, "v3")])
def test_animatediff_versions(length, mid, version):
    kind = identify(motion_module(4, SD15_MOTION_CHANNELS, length, mid))
    assert kind.family == "animatediff_motion" and kind.accepted
    assert kind.details["version"] == version and kind.details["has_mid_block"] is mid
    assert kind.details["max_seq_length"] == length and kind.details["levels"] == 4
    assert kind.label.startswith(f"AnimateDiff motion module {version} (4 levels")


def test_diffusers_motion_adapter_from_a_real_adapter():
    from diffusers import MotionAdapter

    with torch.device("meta"):
        adapter = MotionAdapter(**dict(sd15_config().motion))
    kind = identify(adapter.state_dict())
    assert kind.family == "diffusers_motion_adapter"
    assert kind.details["version"] == "v2" and kind.details["max_seq_length"] == 32
    assert identify(motion_module(4, SD15_MOTION_CHANNELS, 32, False, layout="diffusers")).details["version"] == "v3"


def test_bundles_and_bare_diffusers_unets_are_recognised(small):
    _, modules, _ = small
    by_meta = identify({"music.proj.weight": meta(4, 4)}, {"format": "musedance", "format_version": "1"})
    by_keys = identify({"denoising_unet.conv_in.weight": meta(4, 4, 3, 3), "vae.encoder.conv_in.weight": meta(1)})
    assert by_meta.family == by_keys.family == "musedance_bundle"
    assert by_keys.details["parts"] == ["vae", "denoising_unet"]
    unet = modules.unet.state_dict()
    assert identify(unet).family == "sd15_diffusers_unet"
    reference = {k: v for k, v in unet.items() if not k.startswith(("conv_out.", "conv_norm_out."))}
    kind = identify(reference)  # Moore-AnimateAnyone's reference_unet.pth drops the unused output head
    assert kind.family == "sd15_diffusers_unet" and "reference net" in kind.label
    tiny = tiny_config()  # cross-attention 64: no SD family
    assert identify({f"model.diffusion_model.{k}": v for k, v in {
        "input_blocks.0.0.weight": meta(32, 4, 3, 3),
        "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": meta(32, tiny.cross_attention_dim)}.items()}
    ).family == "unknown"


LDM = "model.diffusion_model."
REJECTED_FILES = {  # family -> a small state dict with the real names (and the real shapes where they decide)
    "sd15_inpaint": {LDM + "input_blocks.0.0.weight": meta(320, 9, 3, 3),
                     LDM + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": meta(320, 768),
                     "first_stage_model.decoder.conv_in.weight": meta(512, 4, 3, 3)},
    "sd2": {LDM + "input_blocks.0.0.weight": meta(320, 4, 3, 3),
            LDM + "input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight": meta(320, 1024),
            LDM + "input_blocks.1.1.proj_in.weight": meta(320, 320),
            "cond_stage_model.model.token_embedding.weight": meta(49408, 1024)},
    "sdxl": {LDM + "input_blocks.0.0.weight": meta(320, 4, 3, 3),
             LDM + "input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": meta(640, 2048),
             LDM + "label_emb.0.0.weight": meta(1280, 2816),
             "conditioner.embedders.1.model.positional_embedding": meta(77, 1280)},
    "sd3": {LDM + "joint_blocks.0.context_block.adaLN_modulation.1.bias": meta(9216),
            LDM + "x_embedder.proj.weight": meta(1536, 16, 2, 2)},
    "flux": {"double_blocks.0.img_attn.norm.key_norm.scale": meta(128), "img_in.weight": meta(3072, 64)},
    "lora": {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": meta(4, 320, 1, 1),
             "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": meta(320, 4, 1, 1),
             "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": meta(())},
    "motion_lora": motion_module(4, SD15_MOTION_CHANNELS, 32, True, lora=True),
    "vae": {"encoder.conv_in.weight": meta(128, 3, 3, 3), "encoder.down.0.block.0.conv1.weight": meta(128, 128, 3, 3),
            "decoder.conv_in.weight": meta(512, 4, 3, 3), "quant_conv.weight": meta(8, 8, 1, 1),
            "post_quant_conv.weight": meta(4, 4, 1, 1)},
    "animatediff_sdxl": motion_module(3, [320, 640, 1280], 32, False),
    "unknown": {"net.0.weight": meta(8, 8), "net.2.weight": meta(8, 8)},
}


@pytest.mark.parametrize("family", sorted(REJECTED_FILES))
def test_rejected_families_are_identified(family):
    kind = identify(REJECTED_FILES[family])
    assert kind.family == family and not kind.accepted


def test_more_layouts_of_rejected_families():
    peft = {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight": meta(4, 320),
            "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_B.weight": meta(320, 4)}
    assert identify(peft).family == "lora" and identify(peft).details["style"] == "PEFT"
    assert identify({f"first_stage_model.{k}": v for k, v in REJECTED_FILES["vae"].items()}).family == "vae"
    assert identify({LDM + "double_blocks.0.img_attn.qkv.weight": meta(9216, 3072)}).family == "flux"
    assert identify({"joint_blocks.0.x_block.attn.qkv.weight": meta(4608, 1536)}).family == "sd3"
    hotshot = {"down_blocks.0.temporal_attentions.0.transformer_blocks.0.attention_blocks.0.pos_encoder."
               "positional_encoding": meta(1, 24, 320)}
    assert identify(hotshot).family == "animatediff_sdxl"
    sdxl_unet = {"conv_in.weight": meta(320, 4, 3, 3),
                 "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight": meta(640, 2048),
                 "add_embedding.linear_1.weight": meta(1280, 2816)}
    assert identify(sdxl_unet).family == "sdxl"


def test_every_rejected_family_has_its_own_clear_message():
    assert set(REJECTED_FILES) == set(REJECTED)
    messages = {}
    for family, state in REJECTED_FILES.items():
        with pytest.raises(CheckpointError) as error:
            require(identify(state), {"sd15"}, f"models/checkpoints/{family}.safetensors", "base checkpoint")
        messages[family] = str(error.value)
        assert messages[family].startswith(f"'{family}.safetensors' is ")
        assert "MuseDance needs a Stable Diffusion 1.5 checkpoint" in messages[family]
        assert "in models/checkpoints as its base checkpoint" in messages[family]
    assert len(set(messages.values())) == len(REJECTED)
    assert messages["sdxl"] == (
        "'sdxl.safetensors' is an SDXL checkpoint; MuseDance needs a Stable Diffusion 1.5 checkpoint in "
        "models/checkpoints as its base checkpoint (SD 2.x, SDXL, SD3 and Flux are different model families).")
    assert "9 input channels" in messages["sd15_inpaint"] and "non-inpainting" in messages["sd15_inpaint"]
    assert "does not apply LoRAs" in messages["lora"]
    assert "motion LoRA" in messages["motion_lora"] and "mm_sd_v15_v2.ckpt" in messages["motion_lora"]
    assert "a VAE alone" in messages["vae"]
    assert "3 resolution levels" in messages["animatediff_sdxl"]
    assert "first tensor names: net.0.weight" in messages["unknown"]


def test_require_for_a_motion_module_points_files_to_their_folder(small):
    _, modules, names = small
    motion_role = {"animatediff_motion", "diffusers_motion_adapter"}
    with pytest.raises(CheckpointError, match=r"'base.safetensors' is a Stable Diffusion 1.5 checkpoint; MuseDance "
                                              r"needs an AnimateDiff motion module for SD 1.5 .* in "
                                              r"models/animatediff_models as its motion module \(it is a base model"):
        require(identify(ldm_checkpoint(modules, names)), motion_role, "base.safetensors", "motion module")
    with pytest.raises(CheckpointError, match=r"is an AnimateDiff motion module for SDXL; .*models/animatediff_models"):
        require(identify(REJECTED_FILES["animatediff_sdxl"]), motion_role, "mm_sdxl_v10_beta.ckpt", "motion module")
    with pytest.raises(CheckpointError, match=r"is an AnimateDiff motion module; MuseDance needs a Stable Diffusion "
                                              r"1.5 checkpoint .*put it in models/animatediff_models"):
        require(identify(motion_module(4, SD15_MOTION_CHANNELS, 32, True)), {"sd15"}, "mm.ckpt", "base checkpoint")
    kind = identify(motion_module(4, SD15_MOTION_CHANNELS, 32, True))
    assert require(kind, motion_role, "mm_sd_v15_v2.ckpt", "motion module") is kind
    assert isinstance(kind, FileKind) and kind.family in ACCEPTED


# -- the full SD 1.5 layout ----------------------------------------------------------------------
@pytest.mark.slow
def test_full_sd15_single_file_matches_the_sd15_modules_exactly():
    """Every SD 1.5 LDM name and shape (meta tensors: no memory) converts to exactly the tensors
    MuseDance's sd15 modules have, and loads strictly."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    config = sd15_config()
    with torch.device("meta"):
        modules = Modules(UNet2DConditionModel(**config.unet), AutoencoderKL(**config.vae),
                          build_text_encoder(config.text_encoder, config.tokenizer))
    state = ldm_checkpoint(modules, ldm_names(modules.vae.state_dict()), ema=True, dtype=torch.float16)
    counts = {p: sum(1 for k in state if k.startswith(p))
              for p in ("model.diffusion_model.", "first_stage_model.", "cond_stage_model.")}
    assert counts == {"model.diffusion_model.": 686, "first_stage_model.": 248, "cond_stage_model.": 197}
    kind = identify(state)
    assert kind.family == "sd15" and kind.details["model_channels"] == 320 and kind.details["context_dim"] == 768

    weights = sd15.from_single_file(state, "v1-5-pruned.safetensors", config)

    expected = sd15.expected_shapes(config)
    for part, got in (("unet", weights.unet), ("vae", weights.vae), ("text_encoder", weights.text_encoder)):
        assert {k: tuple(v.shape) for k, v in got.items()} == expected[part], part
    modules.unet.load_state_dict(weights.unet, strict=True, assign=True)
    modules.vae.load_state_dict(weights.vae, strict=True, assign=True)
    modules.text.load_state_dict(weights.text_encoder, strict=True, assign=True)
    assert weights.unet["conv_in.weight"].dtype == torch.float16
