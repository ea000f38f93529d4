"""Prompt tokenizers and the CLIP text encoder.

Two tokenizers behind one interface (``PromptTokenizer``: prompts -> ids [B, 77] + which were
cut):
- ``ByteTokenizer``: the project's own byte-level vocabulary for tiny models. Every byte is a
  token, the last byte of a word has its own "word end" id (as CLIP marks ``</w>``), plus
  start/end tokens. Made in code, so nothing is downloaded or shipped.
- ``ClipTokenizer``: the real CLIP BPE tokenizer read from a local folder holding
  ``vocab.json`` and ``merges.txt``: a diffusers ``tokenizer/`` folder, or the copy shipped in
  ``clip_tokenizer/`` beside this file (``BUILTIN_TOKENIZER``: OpenAI's CLIP ViT-L/14 files, MIT
  licence, see its README.md), so an SD 1.5 single file needs no tokenizer folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol

import torch

from ..errors import InputError
from ..notes import note

MAX_TOKENS = 77  # CLIP's context length, start and end tokens included
BUILTIN_TOKENIZER = Path(__file__).resolve().parent / "clip_tokenizer"  # OpenAI CLIP ViT-L/14 BPE, shipped
BYTE_BOS, BYTE_EOS = 512, 513  # ids of the start/end tokens of ByteTokenizer
BYTE_VOCAB_SIZE = 514
_WORDS = re.compile(r"[^\W\d_]+|\d|[^\s\w]+", re.UNICODE)  # letters runs, single digits, punctuation runs


class PromptTokenizer(Protocol):
    def __call__(self, prompts: list[str]) -> tuple[torch.Tensor, list[bool]]:
        """Token ids [B, MAX_TOKENS] (long) and, per prompt, whether it was truncated."""
        ...


class ByteTokenizer:
    """Byte-level tokenizer with CLIP's conventions (lower case, word-end marks, 77 tokens)."""

    bos_token_id, eos_token_id, pad_token_id = BYTE_BOS, BYTE_EOS, BYTE_EOS
    vocab_size = BYTE_VOCAB_SIZE

    def encode(self, prompt: str) -> list[int]:
        ids: list[int] = []
        for word in _WORDS.findall(" ".join(prompt.lower().split())):
            data = word.encode("utf-8")
            ids.extend(data[:-1])
            ids.append(256 + data[-1])
        return ids

    def __call__(self, prompts: list[str]) -> tuple[torch.Tensor, list[bool]]:
        out = torch.full((len(prompts), MAX_TOKENS), self.pad_token_id, dtype=torch.long)
        cut = []
        for i, prompt in enumerate(prompts):
            ids = self.encode(prompt)
            cut.append(len(ids) > MAX_TOKENS - 2)
            ids = [self.bos_token_id] + ids[: MAX_TOKENS - 2] + [self.eos_token_id]
            out[i, : len(ids)] = torch.tensor(ids)
        return out, cut


class ClipTokenizer:
    """CLIP BPE tokenizer from a local folder (``vocab.json`` + ``merges.txt``)."""

    def __init__(self, folder: str | Path):
        from transformers import CLIPTokenizer

        folder = Path(folder)
        missing = [n for n in ("vocab.json", "merges.txt") if not (folder / n).is_file()]
        if missing:
            raise InputError(f"CLIP tokenizer folder '{folder}' lacks {', '.join(missing)}. Point it at a "
                             f"diffusers 'tokenizer/' folder, or at the built-in copy '{BUILTIN_TOKENIZER}'.")
        self._tok = CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)

    def __call__(self, prompts: list[str]) -> tuple[torch.Tensor, list[bool]]:
        # verbose=False: no transformers log line for a long prompt; tokenize() makes a note of it instead
        full = self._tok(prompts, truncation=False, verbose=False)["input_ids"]
        cut = [len(ids) > MAX_TOKENS for ids in full]
        ids = self._tok(prompts, padding="max_length", max_length=MAX_TOKENS, truncation=True,
                        return_tensors="pt")["input_ids"]
        return ids, cut


def fits_text_encoder(caption: str) -> bool:
    """Whether every word of a training caption reaches the text encoder: the tiny models' byte
    tokenizer needs at least as many tokens as CLIP's BPE, so a caption it keeps whole fits both
    (MAX_TOKENS with the start and end tokens). Generated captions are kept within it, so the
    words naming the dance are never the ones cut off."""
    return len(ByteTokenizer().encode(caption)) <= MAX_TOKENS - 2


def tokenize(tokenizer: PromptTokenizer, prompts: list[str]) -> torch.Tensor:
    """Token ids [B, 77]; a note for each prompt that was longer than the tokenizer's limit."""
    ids, cut = tokenizer(prompts)
    for prompt, was_cut in zip(prompts, cut):
        if was_cut:
            note(f"prompt is longer than {MAX_TOKENS} tokens and was cut: "
                 f"'{prompt[:60]}...'. Shorten it to keep its end.")
    return ids


def build_text_encoder(config: dict, tokenizer_kind: str) -> torch.nn.Module:
    """A ``transformers.CLIPTextModel`` from its config dict (random weights)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    kwargs = dict(config)
    if tokenizer_kind == "byte-bpe":
        kwargs.update(bos_token_id=BYTE_BOS, eos_token_id=BYTE_EOS, pad_token_id=BYTE_EOS)
        if kwargs.get("vocab_size", 0) < BYTE_VOCAB_SIZE:
            raise InputError(f"text_encoder.vocab_size must be >= {BYTE_VOCAB_SIZE} for the byte tokenizer.")
    return CLIPTextModel(CLIPTextConfig(**kwargs))
