"""What users import is re-exported from ``pytest_i2v``, loads on first use, and the docs' Public
API page lists it."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_i2v

PUBLIC_API_PAGE = Path(__file__).parent.parent / "docs" / "project" / "public-api.md"


def test_every_public_name_is_the_object_its_module_defines() -> None:
    assert set(pytest_i2v.__all__) == {*pytest_i2v._PUBLIC, "__version__"}
    for name, module in pytest_i2v._PUBLIC.items():
        defined = importlib.import_module(module)
        assert getattr(pytest_i2v, name) is (
            defined if name == "hookspecs" else getattr(defined, name)
        ), name
    with pytest.raises(AttributeError, match="no attribute 'gate_loop_internals'"):
        pytest_i2v.gate_loop_internals  # noqa: B018


def test_importing_the_package_loads_no_torch_and_no_public_module_until_asked() -> None:
    code = (
        "import sys, pytest_i2v; "
        "heavy = ('torch', 'matplotlib', 'pytest_i2v.study', 'pytest_i2v.record.record'); "
        "print(sorted(m for m in heavy if m in sys.modules)); pytest_i2v.Study; "
        "print('pytest_i2v.study' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[:2] == ["[]", "True"]


def test_the_docs_list_the_public_api() -> None:
    section = PUBLIC_API_PAGE.read_text(encoding="utf-8")
    listed = set(re.findall(r"^- `([A-Za-z_0-9]+)`", section, re.M))
    assert listed == set(pytest_i2v._PUBLIC)
