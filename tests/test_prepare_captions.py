"""Motion captions from a local vision-language model folder: tiny random SmolVLM (Idefics3) and
Qwen2-VL models made here with their own BPE tokenizers, chat templates and image processors, saved as
a user's folder would be (nothing is downloaded); the answer cleaning on stubbed model outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from musedance_core.errors import InputError
from musedance_core.training.prepare.captions import (
    PROMPT_FILE,
    clean_caption,
    fits_text_encoder,
    load_caption_model,
    read_prompt,
)
from musedance_core.training.prepare.model_folders import ModelFolderError

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

CORPUS = ["User: describe how the dancer moves in one sentence.",
          "Assistant: the dancer spins on the downbeats, small bounces on every beat, arms swinging overhead."]
# SmolVLM-256M-Instruct's chat template, and Qwen2-VL-2B-Instruct's without system prompt or video.
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] "
    "== 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == "
    "'text' %}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")
QWEN2VL_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == "
    "'text' %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
TINY_TEXT = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                 num_key_value_heads=1, max_position_embeddings=512)


def bpe_tokenizer(special: list[str], **tokens) -> "transformers.PreTrainedTokenizerFast":
    """A byte-level BPE (any text encodes) learnt from two sentences, with the model's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=special, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 4, trainer)
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, **tokens)


def make_smolvlm(folder: Path, seed: int = 0) -> Path:
    """A folder like HuggingFaceTB/SmolVLM-256M-Instruct (model_type idefics3): 32 px images in 8 px
    patches, 4 image tokens per frame after the pixel shuffle."""
    special = (["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>",
                "<global-img>"] + [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)])
    tok = bpe_tokenizer(special, bos_token="<|im_start|>", eos_token="<end_of_utterance>",
                        pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    images = transformers.Idefics3ImageProcessor(size={"longest_edge": 32}, max_image_size={"longest_edge": 32},
                                                 do_image_splitting=False)
    processor = transformers.Idefics3Processor(image_processor=images, tokenizer=tok, image_seq_len=4,
                                               chat_template=SMOLVLM_TEMPLATE)
    config = transformers.Idefics3Config(
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        text_config=dict(model_type="llama", vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **TINY_TEXT),
        image_token_id=tok.convert_tokens_to_ids("<image>"), scale_factor=2, pad_token_id=tok.pad_token_id)
    return _save(transformers.Idefics3ForConditionalGeneration, config, processor, tok, folder, seed)


def make_qwen2vl(folder: Path, seed: int = 0) -> Path:
    """A folder like Qwen/Qwen2-VL-2B-Instruct: every frame resized to 56 x 56, 4 image tokens after merging."""
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
               "<|image_pad|>", "<|video_pad|>"]
    tok = bpe_tokenizer(special, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    pixels = dict(min_pixels=56 * 56, max_pixels=56 * 56, patch_size=14, merge_size=2, temporal_patch_size=2)
    processor = transformers.Qwen2VLProcessor(image_processor=transformers.Qwen2VLImageProcessor(**pixels),
                                              video_processor=transformers.Qwen2VLVideoProcessor(**pixels),
                                              tokenizer=tok, chat_template=QWEN2VL_TEMPLATE)
    ids = tok.convert_tokens_to_ids
    config = transformers.Qwen2VLConfig(
        vision_config=dict(depth=1, embed_dim=16, hidden_size=16, num_heads=2, mlp_ratio=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2),
        text_config=dict(vocab_size=len(tok), bos_token_id=None, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, **TINY_TEXT,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]}),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"))
    return _save(transformers.Qwen2VLForConditionalGeneration, config, processor, tok, folder, seed)


def _save(cls, config, processor, tok, folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = cls(config).eval()
    model.generation_config.update(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                                   do_sample=True, temperature=0.7)  # sampling settings caption() must override
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


MAKERS = {"idefics3": make_smolvlm, "qwen2_vl": make_qwen2vl}


@pytest.fixture(scope="module")
def vlm_folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {kind: make(root / f"{kind}-tiny") for kind, make in MAKERS.items()}


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (4, 64, 48, 3), dtype=np.uint8)


def copy_of(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


# -- the models -------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(MAKERS))
def test_tiny_model_captions_four_frames_greedily(vlm_folders, frames, kind, no_network):
    model = load_caption_model(vlm_folders[kind])
    assert model.model_type == kind and model.dtype == torch.float32
    caption = model.caption(frames, read_prompt(), max_new_tokens=12)
    assert isinstance(caption, str) and caption == caption.strip()
    assert caption == "" or fits_text_encoder(caption)
    assert model.caption(frames, read_prompt(), max_new_tokens=12) == caption  # greedy: the same answer


@pytest.mark.parametrize("kind", list(MAKERS))
def test_answer_is_the_generated_tokens_cleaned(vlm_folders, frames, kind, monkeypatch):
    """generate() stubbed to answer a known text after the prompt: only the new tokens are decoded,
    special tokens dropped, and the answer cleaned."""
    model = load_caption_model(vlm_folders[kind])
    tok = model.processor.tokenizer
    answer = tok("Assistant: spins on the downbeats, small bounces on every beat. Then bows.\nMore text")["input_ids"]
    seen = {}

    def generate(input_ids, generation_config, **inputs):
        seen.update(inputs, config=generation_config)
        return torch.cat([input_ids, torch.tensor([answer + [tok.eos_token_id]])], dim=1)

    monkeypatch.setattr(model.model, "generate", generate)
    assert model.caption(frames, "Describe the motion.", max_new_tokens=30) == \
        "spins on the downbeats, small bounces on every beat"
    assert "pixel_values" in seen and seen["pixel_values"].dtype == torch.float32
    config = seen["config"]
    assert config.do_sample is False and config.num_beams == 1 and config.max_new_tokens == 30
    assert config.temperature == 1.0  # not the folder's 0.7 (transformers would warn that greedy ignores it)


def test_hub_layout_with_separate_preprocessor_config_and_chat_template_json(vlm_folders, frames, tmp_path):
    """The files as the Hub holds SmolVLM-256M-Instruct: preprocessor_config.json for the images,
    processor_config.json with only the processor's own settings, chat_template.json."""
    folder = copy_of(vlm_folders["idefics3"], tmp_path)
    processor = json.loads((folder / "processor_config.json").read_text())
    images = processor.pop("image_processor")
    (folder / "preprocessor_config.json").write_text(json.dumps(images | {"processor_class": "Idefics3Processor"}))
    (folder / "processor_config.json").write_text(json.dumps(processor))
    template = (folder / "chat_template.jinja").read_text()
    (folder / "chat_template.jinja").unlink()
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    model = load_caption_model(folder)
    assert model.processor.image_seq_len == 4
    assert isinstance(model.caption(frames, read_prompt(), max_new_tokens=4), str)


def test_frames_and_prompt_are_checked(vlm_folders, frames):
    model = load_caption_model(vlm_folders["idefics3"])
    with pytest.raises(InputError, match=r"uint8 \[N, H, W, 3\]"):
        model.caption(frames.astype(np.float32), "Describe.")
    with pytest.raises(InputError, match=r"1 <= N <= 16"):
        model.caption(np.zeros((20, 8, 8, 3), np.uint8), "Describe.")
    with pytest.raises(InputError, match="prompt is empty"):
        model.caption(frames, "  ")


# -- cleaning ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, clean", [
    ("  Spins on the downbeats, small bounces on every beat.  ", "Spins on the downbeats, small bounces on every beat"),
    ("Assistant: The dancer steps left. Then right.", "The dancer steps left"),
    ('"hops forward on each beat"\nThe background is a wall.', "hops forward on each beat"),
    ("\n\n- Caption: sways side to side!", "sways side to side!"),
    ("", ""),
    ("   \n  ", ""),
    ("\x1cԸ\x12q\ufffd", ""),  # random-weight bytes: nothing usable
    ("ok", ""),  # one word is not a caption
    ("42 17 99.", ""),
])
def test_clean_caption(raw, clean):
    assert clean_caption(raw) == clean


def test_long_answers_are_cut_at_a_clause_to_fit_the_text_encoder():
    long = ("spins slowly on the downbeats with both arms raised high overhead, then bounces lightly on every "
            "beat while stepping from side to side across the floor, finishing with a deep bow")
    assert not fits_text_encoder(long)
    cut = clean_caption(long)
    assert fits_text_encoder(cut) and long.startswith(cut)
    assert cut == "spins slowly on the downbeats with both arms raised high overhead"
    no_commas = " ".join(["bounce"] * 30)
    assert fits_text_encoder(clean_caption(no_commas)) and clean_caption(no_commas).startswith("bounce bounce")


# -- prompt file --------------------------------------------------------------------------------------

def test_default_prompt_ships_with_the_package():
    prompt = read_prompt()
    assert prompt == PROMPT_FILE.read_text(encoding="utf-8").strip()
    assert "one short sentence" in prompt and "clothing" in prompt
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"musedance_core.training.prepare" = ["*.txt"]' in pyproject


def test_own_prompt_file_and_its_errors(tmp_path):
    own = tmp_path / "prompt.txt"
    own.write_text("  Say how the dancer moves.\n", encoding="utf-8")
    assert read_prompt(own) == "Say how the dancer moves."
    with pytest.raises(InputError, match=r"cannot read the caption prompt file .*nowhere.txt"):
        read_prompt(tmp_path / "nowhere.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(InputError, match="is empty"):
        read_prompt(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("d\xe9crire".encode("latin-1"))
    with pytest.raises(InputError, match="UTF-8"):
        read_prompt(tmp_path / "latin1.txt")


# -- folder errors ----------------------------------------------------------------------------------

def test_missing_folder(tmp_path):
    with pytest.raises(ModelFolderError, match=r"caption model.*not found.*SmolVLM-256M-Instruct"):
        load_caption_model(tmp_path / "nowhere")


def test_a_model_that_is_not_image_text_to_text_is_named(tmp_path):
    folder = tmp_path / "vitpose"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "vitpose",
                                                    "architectures": ["VitPoseForPoseEstimation"]}))
    with pytest.raises(ModelFolderError, match=r"'vitpose' model \(VitPoseForPoseEstimation\), not a vision-language"):
        load_caption_model(folder)


@pytest.mark.parametrize("remove, message", [
    (["model.safetensors"], r"no weights"),
    (["processor_config.json", "preprocessor_config.json"], r"no processor config.*processor_config.json"),
    (["tokenizer.json", "tokenizer_config.json"], r"no tokenizer files"),
    (["chat_template.jinja", "chat_template.json"], r"no chat template.*Instruct"),
])
def test_missing_files_are_named(vlm_folders, tmp_path, remove, message):
    folder = copy_of(vlm_folders["idefics3"], tmp_path)
    for name in remove:
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(ModelFolderError, match=message):
        load_caption_model(folder)


def test_corrupt_weights(vlm_folders, tmp_path):
    folder = copy_of(vlm_folders["qwen2_vl"], tmp_path)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:100] + b"\0" * 50)
    with pytest.raises(ModelFolderError, match=r"cannot load the model in .*qwen2_vl-tiny.*damaged"):
        load_caption_model(folder)


def test_damaged_tokenizer(vlm_folders, tmp_path):
    folder = copy_of(vlm_folders["idefics3"], tmp_path)
    (folder / "tokenizer.json").write_text("{not json")
    with pytest.raises(ModelFolderError, match=r"cannot load the processor and tokenizer"):
        load_caption_model(folder)
