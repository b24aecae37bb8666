"""Offline tokenizers for the tiny and full-size random-weight pipelines (T5/UMT5 and Llama-style).

The real vocabularies cannot be downloaded, and a benchmark needs only valid token ids, the
padding length the pipeline asks for and the special tokens it looks up. A ``tokenizers``
WordLevel model over a small word list, wrapped in ``PreTrainedTokenizerFast``, gives exactly
that; it is saved and loaded back so ``save_pretrained``/``from_pretrained`` round-trip."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Enough words for the study's prompt and the usual negative prompts; other words map to unk.
_WORDS = (
    "a an the person slowly turning head to right left camera video of and in on with is are low quality "
    "worst blurry static still bad frame frames motion moving fast high best detailed realistic image "
    "cat dog man woman sky sea walking running"
).split()


def build_word_level_tokenizer(
    directory: Path,
    special_tokens: Mapping[str, int],
    model_max_length: int,
    pad_token: str,
    eos_token: str | None,
    unk_token: str,
    bos_token: str | None = None,
    append_eos: bool = True,
    padding_side: str = "right",
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """A ``PreTrainedTokenizerFast`` saved under ``directory`` and loaded back.

    ``special_tokens``: token -> id (ids the model's config expects, e.g. T5's pad 0, eos 1, unk 2);
    the word list fills the ids around them. ``append_eos``: add ``eos_token`` after every text
    (T5 and UMT5 do; Llama prepends ``bos_token`` instead)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = dict(special_tokens)
    next_id = 0
    for word in _WORDS:
        while next_id in vocab.values():
            next_id += 1
        vocab.setdefault(word, next_id)
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk_token))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    single = "$A"
    pair = "$A $B"
    post_specials: list[tuple[str, int]] = []
    if bos_token is not None and not append_eos:
        single, pair = f"{bos_token} $A", f"{bos_token} $A $B"
        post_specials.append((bos_token, vocab[bos_token]))
    if eos_token is not None and append_eos:
        single, pair = f"$A {eos_token}", f"$A $B {eos_token}"
        post_specials.append((eos_token, vocab[eos_token]))
    tokenizer.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=post_specials
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        model_max_length=model_max_length,
        pad_token=pad_token,
        eos_token=eos_token,
        unk_token=unk_token,
        bos_token=bos_token,
        padding_side=padding_side,
        **dict(extra or {}),
    )
    directory.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(directory))
    return PreTrainedTokenizerFast.from_pretrained(str(directory), local_files_only=True)


def t5_tokenizer(directory: Path, model_max_length: int) -> Any:
    """T5/UMT5 conventions: pad 0, eos 1, unk 2, eos appended, right padding."""
    return build_word_level_tokenizer(
        directory,
        {"<pad>": 0, "</s>": 1, "<unk>": 2},
        model_max_length,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
    )
