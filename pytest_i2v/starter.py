"""``python -m pytest_i2v init``: a starter for a user's own repository, as pure logic.

It writes ``conftest.py``, ``pytest.ini``, ``tests/test_i2v.py`` (one measured generation) and
``.github/workflows/i2v.yml`` (a caller of the reusable ``i2v-gate.yml``) from the templates in
``starter_templates/``. Every input is checked against the registry (pipelines, GPU profiles) and
the i2v mark's own validation before anything is written, and nothing that exists is overwritten:
all four files are written, or none. No torch and no pytest here."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pytest_i2v.errors import I2VUsageError
from pytest_i2v.generation.marks import i2v, time_budget, vram_budget
from pytest_i2v.pipelines import (
    BUILTIN_SOURCES,
    PIPELINES,
    PipelineInfo,
    pipeline_of_directory,
    pipeline_of_hub_id,
)
from pytest_i2v.profiles import load_profiles

TEMPLATES = Path(__file__).parent / "starter_templates"
# relative path written -> its template
FILES = {
    "conftest.py": "conftest.py.tmpl",
    "pytest.ini": "pytest.ini.tmpl",
    "tests/test_i2v.py": "test_i2v.py.tmpl",
    ".github/workflows/i2v.yml": "i2v.yml.tmpl",
}
GATE_WORKFLOW = ".github/workflows/i2v-gate.yml"
DEFAULT_OWNER = "OWNER"  # a placeholder the printed next steps ask to replace
CPU_TORCH = "https://download.pytorch.org/whl/cpu"
CUDA_TORCH = "https://download.pytorch.org/whl/cu128"
GPU_RUNNER = ["self-hosted", "linux", "gpu-{0}"]
# Config files whose pytest section a new pytest.ini would shadow (pytest reads the first it finds).
_OTHER_CONFIGS = {
    "pyproject.toml": "[tool.pytest.ini_options]",
    "tox.ini": "[pytest]",
    "setup.cfg": "[tool:pytest]",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_CLASS = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
_REF = re.compile(r"^([A-Za-z0-9][\w.-]*)/([A-Za-z0-9][\w.-]*)@([\w./-]+)$")
_MARK_FLAGS = (
    ("width=", "--size"),
    ("height=", "--size"),
    ("frames=", "--frames"),
    ("steps=", "--steps"),
    ("memory option", "--memory"),
)


@dataclass(frozen=True)
class InitOptions:
    """``init``'s flags as given (strings: each is parsed here, so a bad one is one usage error)."""

    pipeline: str | None
    model: str | None = None
    pipeline_class: str | None = None
    size: str | None = None
    frames: str | None = None
    steps: str | None = None
    memory: str | None = None
    profiles: str = "cpu"
    vram_budget: str | None = None
    time_budget: str | None = None
    directory: Path = Path(".")
    workflow_ref: str | None = None
    torch_index_url: str | None = None
    runner_labels: str | None = None


@dataclass(frozen=True)
class Starter:
    directory: Path
    files: dict[str, str]  # relative path -> text
    notes: tuple[str, ...]  # what to do next, one line each
    profiles: tuple[str, ...]


def _integer(flag: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise I2VUsageError(f"{flag} {text!r}: not an integer; e.g. {flag} 16") from None
    if value < 1:
        raise I2VUsageError(f"{flag} {text}: must be >= 1")
    return value


def _number(flag: str, text: str | None, check: Callable[[float], float]) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise I2VUsageError(f"{flag} {text!r}: not a number; e.g. {flag} 24") from None
    try:
        return check(value)
    except I2VUsageError as exc:
        raise I2VUsageError(f"{flag} {text}: {exc}") from None


def _pipeline(name: str | None) -> PipelineInfo:
    if name is None or name not in PIPELINES:
        given = "is required" if name is None else f"{name!r} is not a known pipeline"
        raise I2VUsageError(f"--pipeline {given}; use one of {', '.join(PIPELINES)}")
    return PIPELINES[name]


def _size(text: str | None, info: PipelineInfo) -> tuple[int, int]:
    if text is None:
        return info.native.width, info.native.height
    found = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not found:
        raise I2VUsageError(
            f"--size {text!r}: use WxH, e.g. --size {info.native.width}x{info.native.height} "
            f"({info.name}'s native size)"
        )
    return int(found.group(1)), int(found.group(2))


def _model(source: str | None, info: PipelineInfo) -> str | None:
    """The ``--model`` source as the plugin will read it (its rules, checked without torch)."""
    if source is None or source in BUILTIN_SOURCES:
        return source
    path = Path(source).expanduser()
    if source.startswith((".", "/", "~")) or path.exists():
        if not (path / "model_index.json").is_file():
            what = (
                "no such directory"
                if not path.is_dir()
                else "not a diffusers directory (no model_index.json)"
            )
            raise I2VUsageError(
                f"--model {source}: {what}; point it at the folder that holds model_index.json "
                f"(huggingface-cli download {info.hub_id} --local-dir DIR), or use tiny / random"
            )
        owner = pipeline_of_directory(path)
        if owner is not None and owner != info.name:
            raise I2VUsageError(
                f"--model {source}: its model_index.json is a {owner} checkpoint, not {info.name}; "
                f"pass --pipeline {owner} or another directory"
            )
        return source
    if not _HUB_ID.match(source):
        raise I2VUsageError(
            f"--model {source!r} is neither a local directory, a hub id (owner/name), "
            f"tiny nor random"
        )
    owner = pipeline_of_hub_id(source)
    if owner is not None and owner != info.name:
        raise I2VUsageError(
            f"--model {source}: that is {owner}'s checkpoint, not {info.name}'s; "
            f"pass --pipeline {owner}, or --model {info.hub_id}"
        )
    return source


def _profiles(text: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in text.split(","))
    known = load_profiles()
    for name in names:
        if name not in known:
            raise I2VUsageError(
                f"--profiles: {name!r} is not a GPU profile; use any of {', '.join(sorted(known))} "
                f"(comma-separated)"
            )
    return tuple(dict.fromkeys(names))


def _workflow(ref: str | None) -> tuple[str, str, str]:
    """(owner, repository, ref) of the pytest-i2v repository whose reusable workflow is called."""
    from pytest_i2v import __version__

    text = ref or f"{DEFAULT_OWNER}/pytest-i2v@v{__version__}"
    found = _REF.match(text)
    if not found:
        raise I2VUsageError(
            f"--workflow-ref {text!r}: use OWNER/REPO@REF, e.g. acme/pytest-i2v@v{__version__}"
        )
    return found.group(1), found.group(2), found.group(3)


def _labels(text: str | None, profiles: tuple[str, ...]) -> str:
    if text is None:
        return json.dumps(["ubuntu-latest"] if profiles == ("cpu",) else GPU_RUNNER)
    try:
        labels = json.loads(text)
    except ValueError:
        labels = None
    if (
        not isinstance(labels, list)
        or not labels
        or not all(isinstance(x, str) and x for x in labels)
    ):
        raise I2VUsageError(
            f"--runner-labels {text!r}: give a JSON list of labels, e.g. "
            f'\'["self-hosted", "gpu-{{0}}"]\' ({{0}} becomes the profile)'
        )
    return json.dumps(labels)


def _mark_error(exc: I2VUsageError, info: PipelineInfo) -> I2VUsageError:
    """The mark's own message, led by the flag that set the value it names."""
    message = str(exc)
    flag = next((f for token, f in _MARK_FLAGS if message.startswith(token)), "the i2v mark")
    return I2VUsageError(
        f"{flag}: {message} (native {info.name}: --size {info.native.width}x{info.native.height} "
        f"--frames {info.native.frames} --steps {info.native.steps})"
    )


def _render(template: str, values: dict[str, str]) -> str:
    text = (TEMPLATES / template).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    if "@@" in text:
        raise AssertionError(f"{template}: a placeholder left unfilled")
    return text


def plan_starter(options: InitOptions) -> Starter:
    """Every file of the starter, after every check; writes nothing."""
    info = _pipeline(options.pipeline)
    width, height = _size(options.size, info)
    frames = _integer("--frames", options.frames) or info.native.frames
    steps = _integer("--steps", options.steps) or info.native.steps
    memory = tuple(m.strip() for m in options.memory.split(",")) if options.memory else ()
    try:
        i2v(
            pipeline=info.name,
            width=width,
            height=height,
            frames=frames,
            steps=steps,
            memory=memory,
        )
    except I2VUsageError as exc:
        raise _mark_error(exc, info) from None
    model = _model(options.model, info)
    if options.pipeline_class is not None and not _CLASS.match(options.pipeline_class):
        raise I2VUsageError(
            f"--pipeline-class {options.pipeline_class!r}: use module:Class, "
            f"e.g. acme.pipelines:AcmeWanPipeline (importable where the tests run)"
        )
    vram = _number("--vram-budget", options.vram_budget, vram_budget)
    seconds = _number("--time-budget", options.time_budget, time_budget)
    profiles = _profiles(options.profiles)
    owner, repository, ref = _workflow(options.workflow_ref)
    labels = _labels(options.runner_labels, profiles)
    directory = options.directory
    for name, section in _OTHER_CONFIGS.items():
        config = directory / name
        if config.is_file() and section in config.read_text(encoding="utf-8", errors="replace"):
            raise I2VUsageError(
                f"{config} has a {section} section, which a new pytest.ini would shadow; move its "
                f"settings into pytest.ini, or run init with --dir in an empty directory"
            )

    budgets = "".join(
        f"@pytest.mark.{mark}({value:g})\n"
        for mark, value in (("vram_budget", vram), ("time_budget", seconds))
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
        (directory / f).is_file() for f in ("pyproject.toml", "setup.py", "setup.cfg")
    )
    plugin = f"git+https://github.com/{owner}/{repository}@{ref}"
    cpu_only = all(load_profiles()[p].device == "cpu" for p in profiles)
    values = {
        "PIPELINE": info.name,
        "WIDTH": str(width),
        "HEIGHT": str(height),
        "FRAMES": str(frames),
        "STEPS": str(steps),
        "MEMORY": repr(memory),
        "BUDGET_MARKS": budgets,
        "MODEL_LINE": model_line,
        "CLASS_LINES": classes,
        "WORKFLOW": f"{owner}/{repository}/{GATE_WORKFLOW}@{ref}",
        "INSTALL": f". {plugin}" if installable else plugin,
        "PROFILES": json.dumps(list(profiles)),
        "TORCH_INDEX_URL": options.torch_index_url or (CPU_TORCH if cpu_only else CUDA_TORCH),
        "RUNNER_LABELS": labels,
        "MODEL_INPUT": f"      model: {json.dumps(model)}\n" if model else "",
    }
    files = {path: _render(template, values) for path, template in FILES.items()}
    notes = [f"cd {directory}"] if directory != Path(".") else []
    notes.append(f"python -m pytest tests/test_i2v.py --gpu-profile {profiles[0]}   # measure it")
    notes.append(
        f"python -m pytest tests/test_i2v.py --gpu-profile {profiles[0]} --i2v-update-baselines   "
        f"# on the runner: record baselines/, then commit them"
    )
    if owner == DEFAULT_OWNER:
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
    return Starter(directory, files, tuple(notes), profiles)


def write_starter(starter: Starter) -> list[Path]:
    """Write every file or none: a file that exists (or appears meanwhile) is never overwritten."""
    targets = [starter.directory / path for path in starter.files]
    existing = [str(t) for t in targets if t.exists() or t.is_symlink()]
    if existing:
        raise I2VUsageError(
            f"refusing to overwrite {', '.join(existing)}; move them away (nothing was written), "
            f"or run init with --dir elsewhere"
        )
    written: list[Path] = []
    try:
        for target, text in zip(targets, starter.files.values(), strict=True):
            target.parent.mkdir(parents=True, exist_ok=True)
            _create_atomic(target, text)
            written.append(target)
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        raise I2VUsageError(
            f"could not write {exc.filename or 'the starter'}: {exc.strerror or exc}; "
            f"nothing was written"
        ) from None
    return written


def _create_atomic(target: Path, text: str) -> None:
    """A complete file at ``target`` or none: written aside, then linked in (which fails where the
    name exists, as a rename would not)."""
    descriptor, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.link(temporary, target)
    finally:
        os.unlink(temporary)


def init_report(starter: Starter, written: list[Path]) -> str:
    lines = [f"wrote {len(written)} files in {starter.directory}:"]
    lines += [f"  {path}" for path in starter.files]
    lines += ["next:"] + [f"  {note}" for note in starter.notes]
    return "\n".join(lines)
