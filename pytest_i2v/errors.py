"""Errors raised by the pure modules; the plugin turns ``I2VUsageError`` into ``pytest.UsageError``."""

from __future__ import annotations


class I2VUsageError(ValueError):
    """Bad input from the user: one line naming the culprit and the fix (pytest exits with 4)."""


class ModelSourceError(RuntimeError):
    """A model source that cannot be loaded (missing directory, not in the offline cache...)."""


class OptionUnavailable(RuntimeError):
    """An option this machine cannot apply (an attention backend whose package is missing): the test
    is skipped with this reason, which names the pipeline."""
