"""What the plugin keeps on pytest's objects (its stash keys) and which tests wake it.

Read by ``plugin`` (the dormant hooks) and ``runtime`` (the run at work), so that neither imports
the other at module level."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pytest_i2v.generation.fidelity_mark import FidelityRequest
from pytest_i2v.generation.marks import Budget, GenerationSpec
from pytest_i2v.session.settings import Settings

# Named in the keys' quoted types only: importing them would wake torch and the gate.
if TYPE_CHECKING:
    from pytest_i2v.record.record import GenerationRecord  # noqa: F401

SETTINGS_KEY = pytest.StashKey[Settings]()
SPEC_KEY = pytest.StashKey[GenerationSpec]()
BUDGET_KEY = pytest.StashKey[Budget]()
FIDELITY_KEY = pytest.StashKey[FidelityRequest]()
RECORD_KEY = pytest.StashKey["GenerationRecord"]()
I2V_FIXTURES = frozenset({"i2v_run", "i2v_pipeline", "i2v_spec", "i2v_input_image", "i2v_profile"})


def uses_i2v(item: pytest.Item) -> bool:
    """A test wakes the plugin when it carries an i2v mark or asks for an i2v fixture."""
    return any(item.get_closest_marker(m) for m in ("i2v", "vram_budget", "time_budget")) or bool(
        I2V_FIXTURES & set(getattr(item, "fixturenames", ()))
    )
