"""The CLIP tokenizer shipped in ``musedance_core/models/clip_tokenizer`` (issue 22): an SD 1.5
single file needs no tokenizer folder, for ``inspect`` and ``animate`` alike.

Nothing is downloaded. The reference ids are those of OpenAI's own CLIP tokenizer
(``clip.tokenize("a photo of a cat")``); SD 1.5-layout files carry the real LDM names (the
ComfyUI oracle of ``tests/test_sd15_loading.py``).
"""

from __future__ import annotations

import json

import pytest
import torch

from musedance_core import cli
from musedance_core.models.config import SD15_MOTION, sd15_config
from musedance_core.models.text import BUILTIN_TOKENIZER, MAX_TOKENS, ClipTokenizer, tokenize
from musedance_core.notes import collect_notes
from tests.checkpoint_files import SD15_CHANNELS, SD15_LAYERS, Randoms, Scalars, animatediff_file, save
from tests.test_sd15_loading import Modules, build_modules, ldm_checkpoint, ldm_names, small_sd15

BUILTIN_LABEL = "tokenizer: built-in CLIP (musedance_core/models/clip_tokenizer)"
A_PHOTO_OF_A_CAT = [49406, 320, 1125, 539, 320, 2368, 49407]  # <|startoftext|> a photo of a cat <|endoftext|>


pytestmark = pytest.mark.usefixtures("no_network")  # tests/conftest.py


# -- the shipped files ---------------------------------------------------------------------------
def test_shipped_files_are_clip_vit_l14s():
    names = sorted(p.name for p in BUILTIN_TOKENIZER.iterdir())
    assert names == ["README.md", "merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json"]
    vocab = json.loads((BUILTIN_TOKENIZER / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 49408 and sorted(vocab.values()) == list(range(49408))
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407
    merges = (BUILTIN_TOKENIZER / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert merges[0] == "#version: 0.2" and len(merges) == 1 + 48894  # 49408 - 512 byte tokens - 2 special
    config = json.loads((BUILTIN_TOKENIZER / "tokenizer_config.json").read_text())
    assert config["model_max_length"] == MAX_TOKENS and config["pad_token"] == config["eos_token"] == "<|endoftext|>"
    readme = (BUILTIN_TOKENIZER / "README.md").read_text()
    assert "Copyright (c) 2021 OpenAI" in readme and "MIT" in readme


def test_shipped_tokenizer_encodes_the_reference_sentence():
    from transformers import CLIPTokenizer

    hf = CLIPTokenizer.from_pretrained(str(BUILTIN_TOKENIZER), local_files_only=True)
    assert hf("a photo of a cat")["input_ids"] == A_PHOTO_OF_A_CAT
    assert len(hf) == 49408 and hf.pad_token_id == hf.eos_token_id == 49407

    ids, cut = ClipTokenizer(BUILTIN_TOKENIZER)(["a photo of a cat", "A photo   of a CAT"])
    assert ids.shape == (2, MAX_TOKENS) and cut == [False, False]
    assert ids[0, :7].tolist() == A_PHOTO_OF_A_CAT and torch.equal(ids[0], ids[1])  # lower case, spaces folded
    assert (ids[:, 7:] == 49407).all()  # padded with <|endoftext|>, as SD 1.5 pipelines do


def test_long_prompt_is_cut_with_one_note(caplog):
    tokenizer = ClipTokenizer(BUILTIN_TOKENIZER)
    with collect_notes() as notes:
        ids = tokenize(tokenizer, ["spin " * 100])
    assert len(notes) == 1 and "longer than 77 tokens and was cut" in notes[0]
    assert ids.shape == (1, MAX_TOKENS) and ids[0, 0] == 49406 and ids[0, -1] == 49407
    assert caplog.text.count("longer than 77 tokens") == 1  # logged once
    assert "Token indices sequence length" not in caplog.text  # no second message from transformers


# -- an SD 1.5 single file with no tokenizer argument --------------------------------------------
@pytest.fixture(scope="module")
def sd15_files(tmp_path_factory):
    """A full-size SD 1.5 single file (real LDM names) and AnimateDiff v2 module, each tensor one
    fp16 number expanded to its shape: tiny on disk, never materialised by ``inspect``."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from musedance_core.models.text import build_text_encoder

    root = tmp_path_factory.mktemp("sd15")
    config = sd15_config()
    with torch.device("meta"):
        modules = Modules(UNet2DConditionModel(**config.unet), AutoencoderKL(**config.vae),
                          build_text_encoder(config.text_encoder, config.tokenizer))
    make = Scalars()
    state = {k: make(v.shape) if v.is_meta else v
             for k, v in ldm_checkpoint(modules, ldm_names(modules.vae.state_dict()), dtype=torch.float16).items()}
    base = save(state, root / "v1-5-pruned-emaonly.ckpt")
    motion = save(animatediff_file(SD15_CHANNELS, SD15_LAYERS, 32, True, Scalars()), root / "mm_sd_v15_v2.ckpt")
    assert base.stat().st_size < 3_000_000 and motion.stat().st_size < 2_000_000
    return base, motion


def test_cli_inspect_sd15_single_file_is_ready_without_a_tokenizer(sd15_files, capsys):
    base, motion = sd15_files
    code = cli.main(["inspect", "--base", str(base), "--motion", str(motion)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert BUILTIN_LABEL in out and "no CLIP tokenizer" not in out
    assert out.strip().endswith("ready to run")
    assert "denoising_unet    686/686   686 from v1-5-pruned-emaonly.ckpt" in out


def test_cli_inspect_with_a_wrong_tokenizer_folder_is_one_clear_error(sd15_files, tmp_path, capsys):
    base, motion = sd15_files
    empty = tmp_path / "my-tokenizer"
    empty.mkdir()
    (empty / "vocab.json").write_text("{}")
    code = cli.main(["inspect", "--base", str(base), "--motion", str(motion), "--tokenizer", str(empty)])
    captured = capsys.readouterr()
    assert code == 2  # an error (a wrong argument), not just "not loadable"
    assert captured.err.startswith(f"error: tokenizer folder '{empty}' has no vocab.json and merges.txt")
    assert "built-in CLIP tokenizer" in captured.err and "Traceback" not in captured.err


def test_cli_inspect_with_a_tokenizer_folder_names_it(sd15_files, capsys):
    base, motion = sd15_files
    code = cli.main(["inspect", "--base", str(base), "--motion", str(motion), "--tokenizer", str(BUILTIN_TOKENIZER)])
    out = capsys.readouterr().out
    assert code == 0 and BUILTIN_LABEL in out  # the same folder, named as such


def small_clip_sd15():
    """SD 1.5's structure with few channels, and CLIP's real vocabulary, token ids and width (768,
    the UNet's cross-attention), so that the shipped tokenizer's ids index the text encoder."""
    config = small_sd15()
    text = dict(config.text_encoder, vocab_size=49408, hidden_size=768, projection_dim=768, bos_token_id=49406,
                eos_token_id=49407, pad_token_id=49407)
    motion = dict(SD15_MOTION, block_out_channels=config.unet["block_out_channels"], motion_num_attention_heads=2,
                  motion_norm_num_groups=8)
    return config.with_changes(text_encoder=text, motion=motion, branch_hidden=32)


@pytest.mark.integration
def test_animate_with_an_sd15_single_file_and_no_tokenizer(groove_file, tmp_path, monkeypatch, capsys):
    """``animate --base FILE --motion MM`` with no --tokenizer: the model gets the shipped CLIP
    tokenizer and writes the video. SD 1.5's layout at small width (the full size is
    test_sd15_slow's), by giving the assembler a small SD 1.5 config."""
    from PIL import Image

    from musedance_core.checkpoints import assemble as assemble_module
    from musedance_core.video.reader import probe_video

    config = small_clip_sd15()
    modules = build_modules(config)
    base = save(ldm_checkpoint(modules, ldm_names(modules.vae.state_dict()), dtype=torch.float16),
                tmp_path / "my-sd15.safetensors")  # ~80 MB: CLIP's 49408 x 768 token embedding
    motion = save(animatediff_file(config.unet["block_out_channels"], 2, 32, True, Randoms(1)),
                  tmp_path / "mm_small_v2.safetensors")
    monkeypatch.setattr(assemble_module, "sd15_config", small_clip_sd15)
    seen = []  # what the model's tokenizer was asked and answered
    real_call = ClipTokenizer.__call__

    def spy(self, prompts):
        ids, cut = real_call(self, prompts)
        seen.append((list(prompts), ids))
        return ids, cut

    monkeypatch.setattr(ClipTokenizer, "__call__", spy)

    image = tmp_path / "me.png"
    Image.new("RGB", (48, 60), (200, 120, 40)).save(image)
    out = tmp_path / "dance.mp4"
    code = cli.main(["animate", "--image", str(image), "--music", str(groove_file), "--base", str(base),
                     "--motion", str(motion), "--prompt", "a photo of a cat", "--frames", "4",
                     "--width", "64", "--height", "64", "--steps", "1", "--device", "cpu", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert BUILTIN_LABEL in err and "ready to run" in err
    encoded = {prompt: ids[i] for prompts, ids in seen for i, prompt in enumerate(prompts)}
    assert encoded["a photo of a cat"][:7].tolist() == A_PHOTO_OF_A_CAT  # the prompt went through the shipped BPE
    assert probe_video(out).num_frames == 4
