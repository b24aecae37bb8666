"""The memory options a mark may name: the three kinds, the combinations that are problems, and
the options that cannot change anything for a given pipeline, and why.

A measured "saving" for an option without effect is run-to-run noise; the record carries a note
saying so, and the report shows "no effect for this pipeline" instead of a saving. Pure data (no
torch)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pytest_i2v.pipelines.registry import LOAD_OPTIONS, OFFLOAD_OPTIONS, TOGGLE_OPTIONS

# Toggles applied to a loaded pipeline per test and undone afterwards.
TOGGLE_MEMORY_OPTIONS = TOGGLE_OPTIONS
# Offload changes where weights live, so an offloaded pipeline is a separate cached pipeline.
OFFLOAD_MEMORY_OPTIONS = OFFLOAD_OPTIONS
# Recast or compiled weights cannot be undone: also a separate cached pipeline.
LOAD_MEMORY_OPTIONS = LOAD_OPTIONS
# Options that change the output by design (fp8 weights): a test with one is held to the
# profile's lossy fidelity bar.
LOSSY_MEMORY_OPTIONS = frozenset({"layerwise_fp8"})
MEMORY_OPTIONS = OFFLOAD_MEMORY_OPTIONS + LOAD_MEMORY_OPTIONS + TOGGLE_MEMORY_OPTIONS
# Offloads whose hooks live inside the denoiser's blocks (diffusers marks group offload's onload
# with torch.compiler.disable, accelerate's hooks likewise): compiled blocks around them cannot be
# traced.
COMPILE_EXCLUDES = frozenset({"sequential_cpu_offload", "group_offload"})

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


def memory_options_of(memory: Any) -> tuple[Any, ...]:
    """A mark's ``memory=``: one option name or a list of them, as a tuple."""
    return (memory,) if isinstance(memory, str) else tuple(memory)


def memory_problems(memory: Any) -> list[str]:
    """Unknown options, two offloads, and compile with an offload whose hooks it cannot trace."""
    if not isinstance(memory, (str, list, tuple)):
        return [f"memory={memory!r} must be an option name or a list of them, e.g. ['vae_tiling']"]
    options = memory_options_of(memory)
    problems = [
        f"memory option {option!r} is unknown; use any of {', '.join(MEMORY_OPTIONS)}"
        for option in options
        if option not in MEMORY_OPTIONS
    ]
    offloads = [o for o in options if o in OFFLOAD_MEMORY_OPTIONS]
    if len(offloads) > 1:
        problems.append(f"memory options {' and '.join(offloads)} exclude each other; pick one")
    hooked = [o for o in offloads if o in COMPILE_EXCLUDES]
    if "torch_compile" in options and hooked:
        problems.append(
            f"memory options torch_compile and {hooked[0]} cannot be combined: "
            f"{hooked[0]}'s hooks run inside the compiled blocks, where Dynamo cannot "
            f"follow them; measure them in separate tests, or pair torch_compile with "
            f"model_cpu_offload"
        )
    return problems


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
