"""An offline byte-level CLIP BPE tokenizer: 512 byte symbols, a few merges, two specials.

Neither the tiny model nor the full-size random-weights model can download the real CLIP
vocabulary; a benchmark only needs valid token ids (< 49408) and a 77-token context."""

from __future__ import annotations

import json
from pathlib import Path

_MERGES = ("t h", "th e</w>", "a n", "i n")


def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP byte -> printable unicode table (the algorithm transformers' CLIP tokenizer uses)."""
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
    """Write vocab.json + merges.txt, which CLIPTokenizer.from_pretrained reads on transformers 4.x and 5.x."""
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


def load_byte_level_clip_tokenizer(directory: Path, model_max_length: int = 77):  # type: ignore[no-untyped-def]
    import warnings

    from transformers import CLIPTokenizer

    write_byte_level_clip_tokenizer(directory)
    with warnings.catch_warnings():
        # tokenizers >= 0.22 deprecates building BPE from vocab/merges files, which is what we ship.
        warnings.simplefilter("ignore", DeprecationWarning)
        return CLIPTokenizer.from_pretrained(
            str(directory), model_max_length=model_max_length, local_files_only=True
        )
