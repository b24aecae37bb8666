"""Errors raised by the pure modules; the plugin turns ``I2VUsageError`` into
``pytest.UsageError``."""

from __future__ import annotations

from collections.abc import Sequence


class I2VUsageError(ValueError):
    """Bad input from the user: one line naming the culprit and the fix (pytest exits with 4)."""

    @property
    def problems(self) -> tuple[str, ...]:
        """Each problem on its own line (one here; ``I2VUsageProblems`` holds several)."""
        return (str(self),)


class I2VUsageProblems(I2VUsageError):
    """Several problems of one input found together (a mark's bad size and bad frames), so one run
    names them all; as text they join with "; ", and the plugin prints one line each."""

    def __init__(self, problems: Sequence[str]):
        self._problems = tuple(problems)
        super().__init__("; ".join(self._problems))

    @property
    def problems(self) -> tuple[str, ...]:
        return self._problems

    def __reduce__(self) -> tuple[type[I2VUsageProblems], tuple[tuple[str, ...]]]:
        return type(self), (self._problems,)  # pickled whole (its args are the joined text)


class ModelSourceError(RuntimeError):
    """A model source that cannot be loaded (missing directory, not in the offline cache...)."""


class OptionUnavailable(RuntimeError):
    """An option this machine cannot apply (an attention backend whose package is missing): the test
    is skipped with this reason, which names the pipeline."""
