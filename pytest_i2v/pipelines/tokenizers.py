"""Offline tokenizers for the tiny and full-size random-weight pipelines: a byte-level CLIP BPE
(I2VGen-XL, HunyuanVideo's CLIP) and T5/UMT5-style word-level ones (Wan, LTX-Video, CogVideoX).

The real vocabularies cannot be downloaded, and a benchmark needs only valid token ids, the
padding length the pipeline asks for and the special tokens it looks up. Each tokenizer is
written under a directory and loaded back, so ``save_pretrained``/``from_pretrained``
round-trip."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# tokenizers and transformers are imported inside the functions that build a tokenizer: the
# pipelines package is imported at collection, where neither may load.

_MERGES = ("t h", "th e</w>", "a n", "i n")
# Enough words for the study's prompt and the usual negative prompts; other words map to unk.
PROMPT_WORDS = (
    "a an the person slowly turning head to right left camera video of and in on with is are "
    "low quality worst blurry static still bad frame frames motion moving fast high best "
    "detailed realistic image cat dog man woman sky sea walking running"
).split()


# ---------------------------------------------------------------------------- byte-level CLIP BPE
def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP byte -> printable unicode table (the algorithm transformers' CLIP tokenizer
    uses)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def write_byte_level_clip_tokenizer(directory: Path) -> Path:
    """Write vocab.json + merges.txt (512 byte symbols, a few merges, two specials), which
    CLIPTokenizer.from_pretrained reads on transformers 4.x and 5.x. Token ids stay below CLIP's
    49408."""
    symbols = _bytes_to_unicode()
    vocab: dict[str, int] = {}
    for symbol in symbols:
        vocab[symbol] = len(vocab)
    for symbol in symbols:
        vocab[symbol + "</w>"] = len(vocab)
    for merge in _MERGES:
        vocab.setdefault(merge.replace(" ", ""), len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(_MERGES) + "\n", encoding="utf-8"
    )
    return directory


def load_byte_level_clip_tokenizer(directory: Path, model_max_length: int = 77) -> Any:
    """The byte-level CLIP tokenizer, written under ``directory`` and loaded back."""
    from transformers import CLIPTokenizer

    write_byte_level_clip_tokenizer(directory)
    with warnings.catch_warnings():
        # tokenizers >= 0.22 deprecates building BPE from vocab/merges files, which is what we ship.
        warnings.simplefilter("ignore", DeprecationWarning)
        return CLIPTokenizer.from_pretrained(
            str(directory), model_max_length=model_max_length, local_files_only=True
        )


# ---------------------------------------------------------------------------- word level
@dataclass(frozen=True)
class WordLevelConventions:
    """A model family's special tokens and how texts are framed and padded.

    ``special_tokens``: token -> id (ids the model's config expects, e.g. T5's pad 0, eos 1,
    unk 2); the word list fills the ids around them. ``append_eos``: add ``eos_token`` after every
    text (T5 and UMT5 do; Llama prepends ``bos_token`` instead). ``extra``: more keyword
    arguments for ``PreTrainedTokenizerFast``."""

    special_tokens: Mapping[str, int]
    pad_token: str
    eos_token: str | None
    unk_token: str
    bos_token: str | None = None
    append_eos: bool = True
    padding_side: str = "right"
    extra: Mapping[str, str | int | bool] = field(default_factory=dict)

    def templates(self, vocab: Mapping[str, int]) -> tuple[str, str, list[tuple[str, int]]]:
        """The post-processor's single and pair templates and the specials they name."""
        single, pair = "$A", "$A $B"
        specials: list[tuple[str, int]] = []
        if self.bos_token is not None and not self.append_eos:
            single, pair = f"{self.bos_token} $A", f"{self.bos_token} $A $B"
            specials.append((self.bos_token, vocab[self.bos_token]))
        if self.eos_token is not None and self.append_eos:
            single, pair = f"$A {self.eos_token}", f"$A $B {self.eos_token}"
            specials.append((self.eos_token, vocab[self.eos_token]))
        return single, pair, specials


T5_CONVENTIONS = WordLevelConventions(
    special_tokens={"<pad>": 0, "</s>": 1, "<unk>": 2},
    pad_token="<pad>",
    eos_token="</s>",
    unk_token="<unk>",
)


def _word_vocab(special_tokens: Mapping[str, int]) -> dict[str, int]:
    vocab: dict[str, int] = dict(special_tokens)
    next_id = 0
    for word in PROMPT_WORDS:
        while next_id in vocab.values():
            next_id += 1
        vocab.setdefault(word, next_id)
    return vocab


def build_word_level_tokenizer(
    directory: Path, conventions: WordLevelConventions, model_max_length: int
) -> Any:
    """A ``tokenizers`` WordLevel model over the prompt words, wrapped in
    ``PreTrainedTokenizerFast``, saved under ``directory`` and loaded back."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = _word_vocab(conventions.special_tokens)
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=conventions.unk_token))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    single, pair, post_specials = conventions.templates(vocab)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=post_specials
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        model_max_length=model_max_length,
        pad_token=conventions.pad_token,
        eos_token=conventions.eos_token,
        unk_token=conventions.unk_token,
        bos_token=conventions.bos_token,
        padding_side=conventions.padding_side,
        **dict(conventions.extra),
    )
    directory.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(directory))
    return PreTrainedTokenizerFast.from_pretrained(str(directory), local_files_only=True)


def t5_tokenizer(directory: Path, model_max_length: int) -> Any:
    """T5/UMT5 conventions: pad 0, eos 1, unk 2, eos appended, right padding."""
    return build_word_level_tokenizer(directory, T5_CONVENTIONS, model_max_length)
