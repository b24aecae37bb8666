"""``python -m pytest_i2v init``: a starter for a user's own repository, as pure logic.

It writes ``conftest.py``, ``pytest.ini``, ``tests/test_i2v.py`` (one measured generation) and
``.github/workflows/i2v.yml`` (a caller of the reusable ``i2v-gate.yml``) from the templates in
``starter_templates/``. Every input is checked against the registry (pipelines, GPU profiles) and
the i2v mark's own validation before anything is written, and nothing that exists is overwritten:
all four files are written, or none. No torch and no pytest here.

``flags`` checks init's flags, ``plan`` renders the files and next steps, ``writing`` writes
them."""

from pytest_i2v.starter.flags import InitOptions
from pytest_i2v.starter.plan import Starter, plan_starter
from pytest_i2v.starter.writing import init_report, write_starter

__all__ = ["InitOptions", "Starter", "init_report", "plan_starter", "write_starter"]
