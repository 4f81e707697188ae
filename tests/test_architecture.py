"""The shape of the code: no import circle anywhere, and one set of job steps for the run and the dry run."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import job.steps
from helpers.data import hyperparameters, write_job
from helpers.jobs import ROOT

PACKAGES = (
    "contracts", "hyperparams", "processing", "models", "training", "export", "evaluation", "inference", "serving",
    "job",
)


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    modules = {"pytorch_training": root / "pytorch_training.py"}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports, anywhere in its source (a function-level import
    counts), including the packages whose ``__init__`` an import runs on the way."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                if node.level:
                    raise AssertionError(f"{path}: relative import; name the module in full")
                targets.add(node.module)
                targets.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {
            prefix
            for target in targets
            for prefix in (".".join(target.split(".")[:i]) for i in range(1, target.count(".") + 2))
            if prefix in modules and prefix != name
        }
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def test_no_module_or_package_imports_itself_through_others():
    assert circles(import_graph(project_modules())) == []


def test_the_circle_check_finds_a_lazy_import_and_a_package_init(tmp_path):
    """A lazy import inside a method, and a package __init__ that imports its own submodule,
    both close a circle the check must see."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "pytorch_training.py").write_text("")
    (tmp_path / "processing" / "steps.py").write_text(
        "def compose():\n    from processing.pipeline import Pipeline\n    return Pipeline\n"
    )
    (tmp_path / "processing" / "pipeline.py").write_text("from processing.steps import compose\n")
    assert circles(import_graph(project_modules(tmp_path))) == [["processing.pipeline", "processing.steps"]]
    (tmp_path / "processing" / "steps.py").write_text("")
    (tmp_path / "models" / "__init__.py").write_text("from models.parts import Part\n")
    (tmp_path / "models" / "parts.py").write_text("from models.base import Base\n")
    (tmp_path / "models" / "base.py").write_text("Base = object\n")
    assert circles(import_graph(project_modules(tmp_path))) == [["models", "models.parts"]]


def test_layers_import_only_downwards():
    """contracts -> hyperparams -> processing -> models -> training -> export -> inference -> evaluation
    -> job: inference (scoring a saved model) and serving (the endpoint) never load the training
    machinery, and no library package imports the job or the server."""
    above = ("hyperparams", "processing", "models", "training", "export", "evaluation", "inference", "serving", "job")
    forbidden = {
        "contracts": above,
        "hyperparams": above[1:],
        "processing": above[2:],
        "models": above[3:],
        "inference": ("training", "evaluation", "serving", "job"),
        "serving": ("training", "evaluation", "job"),
        "training": ("export", "evaluation", "inference", "serving", "job"),
        "export": ("evaluation", "inference", "serving", "job"),
        "evaluation": ("serving", "job"),
    }
    graph = import_graph(project_modules())
    wrong = [
        f"{module} imports {other}"
        for module, imports in graph.items()
        for other in imports
        if other.split(".")[0] in forbidden.get(module.split(".")[0], ())
    ]
    assert wrong == []


STEPS = ("configure", "check_folders", "load_pretrained", "load_parent_model", "read_data", "find_checkpoint",
         "preprocess", "build", "train", "global_rank_zero_outputs", "export", "evaluate", "record", "track")


@pytest.fixture
def step_calls(monkeypatch):
    """Every step of job.steps, wrapped to note its name when called."""
    calls: list[str] = []
    for name in STEPS:
        original = getattr(job.steps, name)

        def noted(*args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(job.steps, name, noted)
    return calls


def test_the_run_and_the_dry_run_call_the_same_steps_in_the_same_order(tmp_path, tiny_bert, run_main, step_calls):
    base = write_job(tmp_path / "job", hyperparameters(tiny_bert, max_epochs=1), rows=(40, 12, 12))
    assert run_main(base) == 0
    real = list(step_calls)
    step_calls.clear()
    dry = write_job(tmp_path / "dry", hyperparameters(tiny_bert, max_epochs=1), rows=(40, 12, 12))
    assert run_main(dry, {"DRY_RUN": "true"}) == 0
    assert real == step_calls == list(STEPS)
