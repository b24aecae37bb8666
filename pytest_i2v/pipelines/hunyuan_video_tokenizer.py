"""HunyuanVideo-I2V's offline Llama-3 tokenizer (the real one cannot be downloaded).

A word-level tokenizer that reproduces what the pipeline's default prompt template relies on:
``<|begin_of_text|>`` first, the header and ``<|eot_id|>`` specials, ``"\\n\\n"`` as one token
(so ``<image>`` sits at index 5, the template's ``image_emb_start``), ``<image>`` at the text
encoder's ``image_token_index`` and padding with its ``pad_token_id``. Sequence lengths then match
the real model's: 256 + crop_start padded tokens, 576 image-feature positions, 252 + 144 text
tokens into the transformer."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_i2v.pipelines.tokenizers import PROMPT_WORDS

# diffusers, tokenizers and transformers are imported inside the functions that need them: the
# adapter module imports this one, and building no tokenizer should load them.

# The pipeline pads the Llama prompt to max_sequence_length (256, its default) + the template's
# crop_start.
LLAMA_MAX_LENGTH = 256 + 103


@dataclass(frozen=True)
class LlamaTokenIds:
    """Where the template's special tokens sit in the Llama vocabulary."""

    begin_of_text: int
    end_of_text: int
    unknown: int
    start_header: int
    end_header: int
    eot: int
    double_newline: int
    newline: int
    image: int
    pad: int

    def specials(self) -> dict[str, int]:
        return {
            "<|begin_of_text|>": self.begin_of_text,
            "<|end_of_text|>": self.end_of_text,
            "<unk>": self.unknown,
            "<|start_header_id|>": self.start_header,
            "<|end_header_id|>": self.end_header,
            "<|eot_id|>": self.eot,
            "\n\n": self.double_newline,
            "\n": self.newline,
            "<image>": self.image,
            "<pad>": self.pad,
        }


def fullsize_token_ids(text_encoder_config: Mapping[str, Any]) -> LlamaTokenIds:
    """Llama 3's ids (begin/end of text from the config; the header, eot and newline ids are Llama
    3's own, 128002 is a reserved id standing in for unk, which Llama 3 lacks); <image> and pad from
    the Llava config, which the pipeline reads them from."""
    text = text_encoder_config["text_config"]
    return LlamaTokenIds(
        begin_of_text=text["bos_token_id"],
        end_of_text=text["eos_token_id"],
        unknown=128002,
        start_header=128006,
        end_header=128007,
        eot=128009,
        double_newline=271,
        newline=198,
        image=text_encoder_config["image_token_index"],
        pad=text_encoder_config["pad_token_id"],
    )


# The tiny Llava's vocabulary is 1000 ids: words from 0, specials at the top.
TINY_LLAMA_VOCAB = 1000
TINY_TOKEN_IDS = LlamaTokenIds(
    begin_of_text=990,
    end_of_text=991,
    unknown=992,
    start_header=993,
    end_header=994,
    eot=995,
    double_newline=996,
    newline=997,
    image=998,
    pad=999,
)


def _template_words() -> list[str]:
    """The words of the pipeline's default template and of the usual prompts (others map to unk)."""
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video_image2video import (
        DEFAULT_PROMPT_TEMPLATE,
    )

    text = re.sub(r"<\|[a-z_]+\|>|<image>", " ", str(DEFAULT_PROMPT_TEMPLATE["template"]).lower())
    found = re.findall(r"\w+|[^\w\s]+", text) + list(PROMPT_WORDS)
    return list(dict.fromkeys(found))


def build_llama_tokenizer(
    directory: Path, ids: LlamaTokenIds, vocab_size: int, model_max_length: int
) -> Any:
    """A Llama-3-style fast tokenizer (saved under ``directory`` and loaded back).

    The vocabulary is dense up to the largest special id (reserved fillers in the gaps, as Llama 3
    has), so that saving it does not warn about holes; every id stays below ``vocab_size``."""
    from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ids.specials()
    if max(specials.values()) >= vocab_size:
        raise ValueError(
            f"special token ids {specials} must stay below the text encoder's vocab_size "
            f"{vocab_size}"
        )
    taken = set(specials.values())
    free_ids = (i for i in range(vocab_size) if i not in taken)
    vocab = dict(specials)
    for word in _template_words():
        vocab[word] = next(free_ids)
    # Dense: every id up to the largest special has a token.
    present = set(vocab.values())
    for filler_id in range(max(present) + 1):
        if filler_id not in present:
            vocab[f"<|reserved_{filler_id}|>"] = filler_id

    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    # Specials are matched before pre-tokenization (longest first, so "\n\n" wins over "\n").
    tokenizer.add_special_tokens([AddedToken(token, normalized=False) for token in specials])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A",
        pair="<|begin_of_text|> $A $B",
        special_tokens=[("<|begin_of_text|>", ids.begin_of_text)],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        model_max_length=model_max_length,
        bos_token="<|begin_of_text|>",
        eos_token="<|end_of_text|>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="right",
    )
    directory.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(directory))
    return PreTrainedTokenizerFast.from_pretrained(str(directory), local_files_only=True)
