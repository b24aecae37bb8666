"""The starter's files and next steps, planned from the checked flags; nothing is written here.

The files are rendered from the templates in ``pytest_i2v/starter_templates/``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.profiles import load_profiles
from pytest_i2v.starter.flags import DEFAULT_OWNER, CheckedFlags, InitOptions, check_flags

TEMPLATES = Path(__file__).parent.parent / "starter_templates"
# relative path written -> its template
FILES = {
    "conftest.py": "conftest.py.tmpl",
    "pytest.ini": "pytest.ini.tmpl",
    "tests/test_i2v.py": "test_i2v.py.tmpl",
    ".github/workflows/i2v.yml": "i2v.yml.tmpl",
}
GATE_WORKFLOW = ".github/workflows/i2v-gate.yml"
CPU_TORCH = "https://download.pytorch.org/whl/cpu"
CUDA_TORCH = "https://download.pytorch.org/whl/cu128"
# Config files whose pytest section a new pytest.ini would shadow (pytest reads the first it finds).
_OTHER_CONFIGS = {
    "pyproject.toml": "[tool.pytest.ini_options]",
    "tox.ini": "[pytest]",
    "setup.cfg": "[tool:pytest]",
}


@dataclass(frozen=True)
class Starter:
    directory: Path
    files: dict[str, str]  # relative path -> text
    notes: tuple[str, ...]  # what to do next, one line each
    profiles: tuple[str, ...]


def _render(template: str, values: dict[str, str]) -> str:
    text = (TEMPLATES / template).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    if "@@" in text:
        raise AssertionError(f"{template}: a placeholder left unfilled")
    return text


def _refuse_shadowed_config(directory: Path) -> None:
    for name, section in _OTHER_CONFIGS.items():
        config = directory / name
        if config.is_file() and section in config.read_text(encoding="utf-8", errors="replace"):
            raise I2VUsageError(
                f"{config} has a {section} section, which a new pytest.ini would shadow; move its "
                f"settings into pytest.ini, or run init with --dir in an empty directory"
            )


def _template_values(flags: CheckedFlags, options: InitOptions, cpu_only: bool) -> dict[str, str]:
    """Each template placeholder's text."""
    info, model = flags.info, flags.model
    budgets = "".join(
        f"@pytest.mark.{mark}({value:g})\n"
        for mark, value in (("vram_budget", flags.vram_budget), ("time_budget", flags.time_budget))
        if value is not None
    )
    model_line = (
        f"i2v_model = {model}"
        if model
        else f"# i2v_model = {info.hub_id}  (unset: each profile's: cpu's tiny, "
        f"the published checkpoint on GPUs)"
    )
    classes = (
        f"i2v_pipeline_class = {info.name}={options.pipeline_class}\n"
        if options.pipeline_class
        else ""
    )
    installable = any(
        (options.directory / f).is_file() for f in ("pyproject.toml", "setup.py", "setup.cfg")
    )
    plugin = f"git+https://github.com/{flags.owner}/{flags.repository}@{flags.ref}"
    return {
        "PIPELINE": info.name,
        "WIDTH": str(flags.width),
        "HEIGHT": str(flags.height),
        "FRAMES": str(flags.frames),
        "STEPS": str(flags.steps),
        "MEMORY": repr(flags.memory),
        "BUDGET_MARKS": budgets,
        "MODEL_LINE": model_line,
        "CLASS_LINES": classes,
        "WORKFLOW": f"{flags.owner}/{flags.repository}/{GATE_WORKFLOW}@{flags.ref}",
        "INSTALL": f". {plugin}" if installable else plugin,
        "PROFILES": json.dumps(list(flags.profiles)),
        "TORCH_INDEX_URL": options.torch_index_url or (CPU_TORCH if cpu_only else CUDA_TORCH),
        "RUNNER_LABELS": flags.labels,
        "MODEL_INPUT": f"      model: {json.dumps(model)}\n" if model else "",
    }


def _next_steps(flags: CheckedFlags, directory: Path, cpu_only: bool) -> tuple[str, ...]:
    """What to do after ``init``, one line each: measure, record baselines, fill in, commit."""
    profile = flags.profiles[0]
    notes = [f"cd {directory}"] if directory != Path(".") else []
    notes.append(f"python -m pytest tests/test_i2v.py --gpu-profile {profile}   # measure it")
    notes.append(
        f"python -m pytest tests/test_i2v.py --gpu-profile {profile} --i2v-update-baselines   "
        f"# on the runner: record baselines/, then commit them"
    )
    if flags.owner == DEFAULT_OWNER:
        notes.append(
            f"edit .github/workflows/i2v.yml: replace {DEFAULT_OWNER} with the owner of the "
            f"pytest-i2v repository (or rerun init with --workflow-ref OWNER/REPO@REF)"
        )
    if not cpu_only:
        notes.append(
            "GPU runners: self-hosted, labelled as runner_labels says, a CUDA torch build "
            "(torch_index_url): docs/ci-for-your-repository.md"
        )
    notes.append(
        "git add conftest.py pytest.ini tests/test_i2v.py .github/workflows/i2v.yml && git commit; "
        "the pull request runs the gate"
    )
    return tuple(notes)


def plan_starter(options: InitOptions) -> Starter:
    """Every file of the starter, after every check; writes nothing."""
    flags = check_flags(options)
    _refuse_shadowed_config(options.directory)
    cpu_only = all(load_profiles()[p].device == "cpu" for p in flags.profiles)
    values = _template_values(flags, options, cpu_only)
    files = {path: _render(template, values) for path, template in FILES.items()}
    notes = _next_steps(flags, options.directory, cpu_only)
    return Starter(options.directory, files, notes, flags.profiles)
