"""Whether a test's VRAM budget fits the profile at all (so nothing is run into an
out-of-memory). The budgets themselves are checked with the decision, in ``verdict.budget``."""

from __future__ import annotations


def fits_profile(vram_gb: float, profile_memory_gb: float, margin_gb: float) -> str | None:
    """None if the budget fits; else the skip reason (run nothing into an OOM)."""
    if vram_gb > profile_memory_gb - margin_gb:
        return (
            f"VRAM budget {vram_gb:g} GB does not fit this profile's {profile_memory_gb:g} GB "
            f"minus the {margin_gb:g} GB safety margin"
        )
    return None
