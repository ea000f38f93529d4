"""Motion captions from a local vision-language model folder.

The paper captions its dance videos with a vision-language model shown sampled frames; the captions
name the motion, so the text branch learns the words for moves. Any folder transformers loads
natively through ``AutoModelForImageTextToText`` + ``AutoProcessor`` with a chat template works;
checked: ``idefics3`` (HuggingFaceTB/SmolVLM-256M-Instruct, -500M, SmolVLM-Instruct; Apache-2.0) and
``qwen2_vl`` (Qwen/Qwen2-VL-2B-Instruct, Apache-2.0); ``smolvlm`` (SmolVLM2) and ``qwen2_5_vl`` load
through the same classes. The folder is what ``save_pretrained`` writes or a copy of the Hub
repository: config.json, the weights, the processor config (``preprocessor_config.json`` or
``processor_config.json``), the tokenizer files and a chat template. Only local files are read; no
remote code is run.

A clip's frames (e.g. 4 spread over it) go as several images in one user message, followed by the
prompt (``motion_caption_prompt.txt`` beside this file, or the user's own via ``read_prompt``);
decoding is greedy. The answer is cut to its first sentence and to what the text encoder reads
(``fits_text_encoder``); an answer with no words left is "" and the caller uses a template caption.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import InputError
from ...models.text import fits_text_encoder
from .model_folders import ModelFolderError, check_weight_files, read_model_config
from .poses import load_checked

if TYPE_CHECKING:
    import torch

ROLE = "caption model (--caption-model)"
FIX = ("Give a vision-language model folder saved with save_pretrained or copied from the Hub, e.g. "
       "HuggingFaceTB/SmolVLM-256M-Instruct or Qwen/Qwen2-VL-2B-Instruct (config.json, model.safetensors, "
       "processor and tokenizer files).")
PROMPT_FILE = Path(__file__).resolve().parent / "motion_caption_prompt.txt"
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
CHECKED_TYPES = ("idefics3", "smolvlm", "qwen2_vl", "qwen2_5_vl")  # image-text-to-text models tested here
MAX_FRAMES = 16
NEUTRAL_SAMPLING = dict(temperature=1.0, top_p=1.0, top_k=50)  # unused when greedy; None would inherit the folder's
MIN_WORDS = 2  # an answer with fewer words of 2+ letters is not a caption
_LABEL = re.compile(r"^\s*(?:assistant|answer|caption|description|motion)\s*:\s*", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[^\W\d_]{2,}")
_QUOTES = "\"'`“”‘’«»"


@dataclass
class CaptionModel:
    """A vision-language model with its processor, on ``device`` in ``dtype``."""

    model: Any
    processor: Any
    device: Any
    dtype: Any
    name: str
    model_type: str

    def caption(self, frames: np.ndarray, prompt: str, max_new_tokens: int = 60) -> str:
        """One motion caption for a clip.

        Args:
            frames: uint8 [N, H, W, 3], a few frames of the clip in order (N <= 16).
            prompt: the instruction (``read_prompt()``).
        Returns:
            The cleaned answer (``clean_caption``); "" when the model gave nothing usable.
        """
        import torch
        from PIL import Image

        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not 1 <= len(frames) <= MAX_FRAMES:
            raise InputError(f"frames must be uint8 [N, H, W, 3] with 1 <= N <= {MAX_FRAMES}; "
                             f"got {frames.dtype} {frames.shape}.")
        if max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be >= 1; got {max_new_tokens}.")
        if not prompt.strip():
            raise InputError("the caption prompt is empty; give the instruction text (see read_prompt).")
        content = [{"type": "image"} for _ in frames] + [{"type": "text", "text": prompt.strip()}]
        text = self.processor.apply_chat_template([{"role": "user", "content": content}],
                                                  add_generation_prompt=True, tokenize=False)
        inputs = self.processor(text=[text], images=[Image.fromarray(f) for f in frames], return_tensors="pt")
        inputs = {k: (v.to(self.device, self.dtype) if torch.is_floating_point(v) else v.to(self.device))
                  for k, v in inputs.items() if isinstance(v, torch.Tensor)}
        generation = copy.deepcopy(self.model.generation_config)  # the folder's, made greedy
        generation.update(do_sample=False, num_beams=1, max_new_tokens=max_new_tokens, **NEUTRAL_SAMPLING)
        tokenizer = self.processor.tokenizer
        if generation.pad_token_id is None:  # else transformers says it uses eos_token_id, every call
            pad = tokenizer.pad_token_id
            generation.pad_token_id = pad if pad is not None else tokenizer.eos_token_id
        with torch.inference_mode():
            out = self.model.generate(**inputs, generation_config=generation)
        answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        return clean_caption(answer)


def load_caption_model(folder: str | Path, device: str | torch.device = "cpu",
                       dtype: torch.dtype | None = None) -> CaptionModel:
    """Load a vision-language model folder, checked first so a wrong folder is named with its fix.

    Args:
        device: torch device; ``dtype`` None picks bf16 on CUDA (fp16 where the GPU lacks bf16),
            fp16 on MPS, fp32 on the CPU.
    Raises:
        ModelFolderError: missing folder, not an image-text-to-text model, no processor or tokenizer
            files, no chat template, weights missing, damaged or not fitting config.json.
    """
    import torch

    folder = Path(folder)
    config = read_model_config(folder, ROLE, FIX)
    model_type = str(config.get("model_type", ""))
    if model_type not in _image_text_to_text_types():
        arch = ", ".join(map(str, config.get("architectures") or [])) or "no architectures listed"
        raise ModelFolderError(f"{ROLE}: '{folder}' holds a '{model_type or 'unknown'}' model ({arch}), not a "
                               f"vision-language model transformers loads as image-text-to-text (e.g. "
                               f"{', '.join(CHECKED_TYPES)}). {FIX}")
    check_weight_files(folder, ROLE, FIX)
    for files, what in ((PROCESSOR_FILES, "processor config (how images are prepared)"),
                        (TOKENIZER_FILES, "tokenizer files")):
        if not any((folder / f).is_file() for f in files):
            raise ModelFolderError(f"{ROLE}: '{folder}' has no {what}: expected one of {', '.join(files)}; copy "
                                   f"them from the model's repository. {FIX}")
    processor = _load_processor(folder)
    device = torch.device(device)
    if dtype is None:
        if device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = torch.float16 if device.type == "mps" else torch.float32
    from transformers import AutoModelForImageTextToText

    model = load_checked(AutoModelForImageTextToText, folder, ROLE, FIX, dtype=dtype)
    model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return CaptionModel(model, processor, device, dtype, folder.name, model_type)


def _image_text_to_text_types() -> set[str]:
    try:
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
        )
    except ImportError:  # older transformers: the families checked here
        return set(CHECKED_TYPES)
    return set(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)


def _load_processor(folder: Path):
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFolderError(f"{ROLE}: cannot load the processor and tokenizer in '{folder}' ({first}); copy the "
                               f"processor and tokenizer files again. {FIX}") from exc
    if getattr(processor, "image_processor", None) is None or getattr(processor, "tokenizer", None) is None:
        raise ModelFolderError(f"{ROLE}: '{folder}' gives a {type(processor).__name__}, not a processor with an image "
                               f"processor and a tokenizer; copy processor_config.json / preprocessor_config.json "
                               f"from the model's repository. {FIX}")
    if not (getattr(processor, "chat_template", None) or getattr(processor.tokenizer, "chat_template", None)):
        raise ModelFolderError(f"{ROLE}: '{folder}' has no chat template (chat_template.jinja, chat_template.json, "
                               f"or 'chat_template' in tokenizer_config.json); use an instruction-tuned model "
                               f"(…-Instruct) and copy all its files. {FIX}")
    return processor


# -- prompt and answer ------------------------------------------------------------------------------

def read_prompt(path: str | Path | None = None) -> str:
    """The caption instruction: the whole text of ``path`` (default ``PROMPT_FILE``), stripped."""
    path = PROMPT_FILE if path is None else Path(path)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the caption prompt file '{path}' ({exc}); give a UTF-8 text file with the "
                         f"instruction, e.g. a copy of '{PROMPT_FILE}'.") from exc
    if not text:
        raise InputError(f"the caption prompt file '{path}' is empty; write the instruction in it "
                         f"(see '{PROMPT_FILE}').")
    return text


def clean_caption(text: str) -> str:
    """The first sentence of a model's answer, without labels ("Assistant:"), quotes, control
    characters or a final full stop, cut at a clause or word so it ``fits_text_encoder``;
    "" when fewer than ``MIN_WORDS`` words are left."""
    text = "".join(c for c in text if c.isprintable() or c in "\n\t").replace("\ufffd", "")
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = _LABEL.sub("", " ".join(line.split()).lstrip("-*• ")).lstrip("-*• ")
    sentence = _SENTENCE_END.split(line, maxsplit=1)[0].strip().strip(_QUOTES).rstrip(". ").strip(_QUOTES)
    if not fits_text_encoder(sentence):
        words = sentence.split()
        n = max(k for k in range(len(words) + 1) if fits_text_encoder(" ".join(words[:k])))
        kept = " ".join(words[:n])
        clause = max(kept.rfind(","), kept.rfind(";"))
        if clause > 0 and len(_WORD.findall(kept[:clause])) >= MIN_WORDS:
            kept = kept[:clause]
        sentence = kept.rstrip(",;:- ")
    return sentence if len(_WORD.findall(sentence)) >= MIN_WORDS else ""
