"""Memory options that cannot change anything for a given pipeline, and why.

A measured "saving" for such an option is run-to-run noise; the record carries a note saying so,
and the report shows "no effect for this pipeline" instead of a saving. Pure data (no torch)."""

from __future__ import annotations

from collections.abc import Iterable

NO_EFFECT_MARK = "no effect for this pipeline"

# (pipeline, memory option) -> why the option changes nothing. Checked against the installed
# diffusers by tests/test_vae_slicing_note.py.
NO_EFFECT: dict[tuple[str, str], str] = {
    # VAE slicing decodes a batch one latent at a time; I2VGenXLPipeline.decode_latents already
    # hands the VAE one frame per call (its decode_chunk_size defaults to 1), and its only encode
    # is the single conditioning image.
    (
        "i2vgen-xl",
        "vae_slicing",
    ): f"{NO_EFFECT_MARK}: I2VGen-XL already decodes one frame at a time (decode_chunk_size=1)",
}


def no_effect_notes(pipeline: str, memory_options: tuple[str, ...]) -> list[str]:
    """One record note per option that does nothing for ``pipeline``: "OPTION: reason"."""
    key = pipeline.lower()
    return [
        f"{option}: {NO_EFFECT[(key, option)]}"
        for option in memory_options
        if (key, option) in NO_EFFECT
    ]


def no_effect_reasons(notes: Iterable[str]) -> dict[str, str]:
    """Option -> reason, for the options a record's notes (from ``no_effect_notes``) declare without
    effect."""
    found: dict[str, str] = {}
    for note in notes:
        option, _, reason = note.partition(": ")
        if option and reason.startswith(NO_EFFECT_MARK):
            found[option] = reason
    return found


def no_effect_options(notes: Iterable[str]) -> list[str]:
    """The options a record's notes declare without effect, in note order."""
    return list(no_effect_reasons(notes))
