"""The docs' options page (docs/options.md) agrees with
``pytest_i2v.session.options.OPTIONS``: one row per option, the same flag, metavar, ini key
and default, and no row for an option that does not exist.

The table sits between ``<!-- options:start -->`` and ``<!-- options:end -->`` in docs/options.md.
Its option, ini key and literal defaults are generated from ``OPTIONS``; the prose (the meaning
column, and the words for a default that is ``None``, i.e. decided at run time) is the page's own
and is kept. After adding, removing or changing an option, regenerate the table and review the diff:

    I2V_REGOLD=1 python -m pytest tests/test_options_doc.py

(a new option gets its help text as its meaning; a removed one loses its row;
rows keep their order).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pytest_i2v.session.options import OPTIONS, OptionSpec

OPTIONS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "options.md"
START, END = "<!-- options:start -->", "<!-- options:end -->"
HEADER = "| option | ini key | default | meaning |\n|---|---|---|---|"


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|")


def _cells(line: str) -> list[str]:
    """A Markdown table row's cells, unescaping ``\\|`` (which does not split a cell)."""
    parts = re.split(r"(?<!\\)\|", line.strip())
    return [p.strip().replace("\\|", "|") for p in parts[1:-1]]


def literal_default(spec: OptionSpec) -> str | None:
    """The table's rendering of a fixed default; None when the default is decided at run time."""
    value = spec.default
    if value is None:
        return None
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (int, float)):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "`" + ",".join(f"{v:g}" for v in value) + "`"
    return f"`{value}`"


def option_cell(spec: OptionSpec) -> str:
    if spec.is_flag:
        return f"`{spec.flag}`"
    if spec.const is not None:
        return f"`{spec.flag}[={spec.metavar}]`"
    return f"`{spec.flag} {spec.metavar}`"


def _help_default(spec: OptionSpec) -> str | None:
    """What the help text says the default is, in its own words: ``(default: X)``
    or ``default: X``."""
    match = re.search(r"default: ([^)]*)", spec.help)
    return match.group(1).strip() if match else None


def page_table(text: str) -> tuple[int, int, dict[str, list[str]]]:
    """Where the table's body lies in ``text`` and its rows by flag."""
    start, end = text.find(START), text.find(END)
    assert 0 <= start < end, (
        f"docs/options.md needs the markers {START} ... {END} around the options table"
    )
    body = text[start + len(START) : end].strip()
    assert body.startswith(HEADER), "the options table's header changed"
    rows: dict[str, list[str]] = {}
    for line in body[len(HEADER) :].strip().splitlines():
        cells = _cells(line)
        assert len(cells) == 4, f"not a 4-column row: {line}"
        match = re.match(r"`(--[\w-]+)", cells[0])
        assert match, f"no --flag in the option cell: {line}"
        assert match.group(1) not in rows, f"two rows for {match.group(1)}"
        rows[match.group(1)] = cells
    return start + len(START), end, rows


def generate_table(existing: dict[str, list[str]]) -> str:
    """The table from OPTIONS, keeping the page's meaning and run-time-default words per flag."""
    specs = {spec.flag: spec for spec in OPTIONS}
    order = [flag for flag in existing if flag in specs] + [
        spec.flag for spec in OPTIONS if spec.flag not in existing
    ]
    lines = [HEADER]
    for flag in order:
        spec = specs[flag]
        old = existing.get(flag)
        default = literal_default(spec)
        if default is None:
            default = old[2] if old else (_help_default(spec) or "none")
        meaning = old[3] if old else spec.help
        cells = [option_cell(spec), f"`{spec.ini}`", default, meaning]
        lines.append("| " + " | ".join(_escape(c) for c in cells) + " |")
    return "\n".join(lines)


def test_readme_options_table_matches_the_registered_options() -> None:
    text = OPTIONS_PAGE.read_text(encoding="utf-8")
    body_start, body_end, rows = page_table(text)
    expected = generate_table(rows)
    if os.environ.get("I2V_REGOLD") == "1":
        OPTIONS_PAGE.write_text(
            f"{text[:body_start]}\n{expected}\n{text[body_end:]}", encoding="utf-8"
        )
        rows = page_table(OPTIONS_PAGE.read_text(encoding="utf-8"))[2]
    specs = {spec.flag: spec for spec in OPTIONS}
    assert sorted(set(rows) - set(specs)) == [], "docs/options.md lists options that do not exist"
    assert sorted(set(specs) - set(rows)) == [], (
        "docs/options.md misses options (regenerate: see this module's docstring)"
    )
    for flag, cells in rows.items():
        spec = specs[flag]
        assert cells[0] == option_cell(spec), flag
        assert cells[1] == f"`{spec.ini}`", flag
        literal = literal_default(spec)
        if literal is not None:
            assert cells[2] == literal, (
                f"{flag}: docs default {cells[2]!r}, OptionSpec.default {spec.default!r}"
            )
        else:
            # Decided at run time: the page says how, in words, and must not claim a fixed value.
            assert not re.fullmatch(r"`?[\w.,/-]+`?", cells[2]) or cells[2] in ("none", "off"), (
                f"{flag}: OptionSpec.default is None (decided at run time) "
                f"but the page says {cells[2]!r}"
            )
    assert page_table(OPTIONS_PAGE.read_text(encoding="utf-8"))[2] == rows


@pytest.mark.parametrize(
    "spec", [s for s in OPTIONS if s.default is not None and not s.is_flag], ids=lambda s: s.flag
)
def test_help_text_names_the_fixed_default(spec: OptionSpec) -> None:
    """``--help`` says "(default: ...)" in words; for a fixed default it must be
    OptionSpec.default."""
    said = _help_default(spec)
    literal = (literal_default(spec) or "").strip("`")
    assert said is not None and re.match(rf"{re.escape(literal)}\b", said), (
        f"{spec.flag}: help says default {said!r}, OptionSpec.default is {spec.default!r}"
    )


@pytest.mark.parametrize("spec", [s for s in OPTIONS if s.default is None], ids=lambda s: s.flag)
def test_help_text_claims_no_fixed_default_for_a_run_time_one(spec: OptionSpec) -> None:
    """A None default is decided at run time (profile, GPU, ini file): the help says so,
    not a bare value."""
    said = _help_default(spec)
    assert (
        said is None
        or not re.fullmatch(r"[\w.,/-]+", said.split(",")[0].split(";")[0].strip())
        or said.startswith(("off", "none"))
    ), f"{spec.flag}: help says default {said!r}, OptionSpec.default is None"
