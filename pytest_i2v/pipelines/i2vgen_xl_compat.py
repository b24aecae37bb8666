"""Guarded compatibility fixes between diffusers' I2VGen-XL pipeline and transformers."""

from __future__ import annotations

from typing import Any


def alias_clip_text_model(pipe: Any) -> bool:
    """transformers >= 5.6 flattened ``CLIPTextModel`` (no ``.text_model``), but
    ``I2VGenXLPipeline.encode_prompt`` reads ``text_encoder.text_model.final_layer_norm``
    (diffusers issue #14124). Alias the attribute only when it is missing; ``object.__setattr__``
    skips nn.Module registration so state_dict and save_pretrained are unchanged.
    Returns whether the alias was needed."""
    text_encoder = getattr(pipe, "text_encoder", None)
    if text_encoder is None or hasattr(text_encoder, "text_model"):
        return False
    if not hasattr(text_encoder, "final_layer_norm"):
        return False  # an unknown layout: leave it alone rather than guess
    object.__setattr__(text_encoder, "text_model", text_encoder)
    return True
