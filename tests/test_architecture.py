"""The house rules docs/architecture.md states, checked on the code: no import cycle, no question
"which task type is this?" outside tasks/ (and the language), a new task type added by tasks/ and
the language alone, the old package name still importing."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Annotated, ClassVar, Literal, Union

import pytest

from conftest import REPO

PACKAGE = REPO / "mtlspec"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """mtlspec module -> the mtlspec modules it imports, at the top or inside a function alike
    (`from pkg import mod` counts as importing pkg.mod). The old-name shim mtlspec/spec is left
    out: it only points at mtlspec.language."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py") if "spec" not in p.relative_to(PACKAGE).parts[:1]}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_in_mtlspec():
    graph = import_graph()
    assert "mtlspec.run" in graph and "mtlspec.baselines" in graph["mtlspec.run"]  # the graph sees function-level imports
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


TYPE_HOLDERS = ("type", "kind", "task_type")  # names a task's type travels under: `spec.tasks[t].type`, `kind`


def _asks_the_task_type(node: ast.Compare, names: set[str]) -> bool:
    """`x.type == "detection"`, `kind in ("classification", "multilabel")` and the like."""
    operands = [node.left, *node.comparators]
    holds_type = any((isinstance(o, ast.Attribute) and o.attr in TYPE_HOLDERS) or (isinstance(o, ast.Name) and o.id in TYPE_HOLDERS)
                     for o in operands)
    strings = {c.value for o in operands for c in ([o] if isinstance(o, ast.Constant) else getattr(o, "elts", []))
               if isinstance(c, ast.Constant) and isinstance(c.value, str)}
    return holds_type and bool(strings & names)


def test_nothing_outside_tasks_and_the_language_asks_which_task_type_a_task_is():
    """Comparing a task's type with a type's name is the task type's business (tasks/), or the
    language's rules (language/); everything else asks the task type itself."""
    from mtlspec.tasks import TASK_TYPES

    names = set(TASK_TYPES)
    sample = ast.parse('spec.tasks[t].type == "detection" or kind in ("classification", "depth")')
    assert sum(_asks_the_task_type(n, names) for n in ast.walk(sample) if isinstance(n, ast.Compare)) == 2
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] in ("tasks", "language", "spec"):
            continue
        found += [f"{path.relative_to(REPO)}:{n.lineno}" for n in ast.walk(ast.parse(path.read_text()))
                  if isinstance(n, ast.Compare) and _asks_the_task_type(n, names)]
    assert found == []


def test_every_task_type_states_a_direction_for_exactly_its_metrics():
    from mtlspec.language.tasks import metric_choices, task_sections

    for name, section in task_sections().items():
        assert set(section.DIRECTIONS) == set(metric_choices(name)), name


def test_the_old_package_name_still_imports():
    script = ("import warnings\n"
              "with warnings.catch_warnings(record=True) as caught:\n"
              "    warnings.simplefilter('always')\n"
              "    from mtlspec.spec.root import Spec\n"
              "    from mtlspec.spec import validate_file\n"
              "    import mtlspec.spec.checks.tasks as old\n"
              "import mtlspec.language.root, mtlspec.language, mtlspec.language.checks.tasks as new\n"
              "assert Spec is mtlspec.language.root.Spec and validate_file is mtlspec.language.validate_file and old is new\n"
              "assert new.__spec__.name == 'mtlspec.language.checks.tasks'\n"
              "assert any(issubclass(w.category, DeprecationWarning) and 'mtlspec.language' in str(w.message) for w in caught)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.stack
def test_a_new_task_type_is_a_task_module_and_a_language_section(tmp_path, monkeypatch):
    """A toy task type (predict an image's mean brightness) written as tasks/ and the language
    would hold it, registered in the two plain dicts those packages keep: it trains, evaluates,
    reports, resumes, shows in `graph` and passes run's preflight, with no other code changed."""
    import numpy as np
    import torch
    from pydantic import Field
    from torch import nn

    from conftest import StopAfter
    from mtlspec import tasks as task_registry
    from mtlspec.graph import model_graph
    from mtlspec.language import tasks as language_tasks
    from mtlspec.language.base import Name
    from mtlspec.language.root import Spec
    from mtlspec.run import RunRequest, run_one
    from mtlspec.tasks.base import Form, Metric, TaskType, masked_mean
    from mtlspec.train.loop import TrainingError

    class BrightnessSection(language_tasks.TaskBase):  # language/tasks.py
        DIRECTIONS: ClassVar = {"abs_diff": False}
        type: Literal["brightness"]
        metrics: list[Literal["abs_diff"]] = ["abs_diff"]

    class AbsDiff(Metric):
        def __init__(self):
            self.errors: list[torch.Tensor] = []

        def update(self, prediction, target, has):
            self.errors.append((prediction[has] - target[has]).abs())

        def compute(self):
            return {"abs_diff": torch.cat(self.errors).mean().item()}

    class VectorHead(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.linear = nn.Linear(channels, 1)

        def forward(self, features):
            return self.linear(features["vector"])

    class Brightness(TaskType):  # tasks/brightness.py
        name, form, reads = "brightness", Form.VALUES, "image"

        def target(self, record):
            return float(record["image"].mean() / 255.0), True

        def placeholder(self, image_size):
            return 0.0

        def collate(self, targets):
            return torch.tensor(targets, dtype=torch.float32)

        def build_head(self, vector_channels, pyramid_channels, strides, image_size):
            return VectorHead(vector_channels)

        def loss(self, output, target, has, weight):
            return masked_mean((output.squeeze(1) - target).abs(), has, weight)

        def predict(self, output, image_size):
            return output.squeeze(1)

        def output_shape(self, batch, image_size):
            return (batch, 1)

        def metric(self):
            return AbsDiff()

        def trivial_prediction(self, train_targets, count, image_size):
            return torch.full((count,), float(np.mean(train_targets)))

    monkeypatch.setitem(task_registry.TASK_TYPES, "brightness", Brightness)
    union = Union[(*language_tasks.task_sections().values(), BrightnessSection)]

    class ToySpec(Spec):
        tasks: Annotated[dict[Name, Annotated[union, Field(discriminator="type")]], Field(min_length=1)]

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    spec = ToySpec.model_validate({
        "name": "toy", "data": {"datasets": {"digits": {"type": "multidigits", "canvas": 32, "splits": {"train": 16, "val": 8, "test": 8}}},
                                "batch_size": 8, "image_size": 32},
        "tasks": {"bright": {"type": "brightness", "dataset": "digits"},
                  "largest": {"type": "classification", "dataset": "digits", "label": "largest_digit"}},
        "model": {"backbone": {"type": "SmallCNN", "channels": [8, 16]}, "neck": {"type": "FPN", "out_channels": 8}},
        "training": {"epochs": 2, "device": "cpu"}, "report": {"formats": ["json"], "plots": False},
    })
    (tmp_path / "toy.yaml").write_text("name: toy\n")  # where its data paths would be relative to
    request = RunRequest(spec, str(tmp_path / "toy.yaml"))
    report = run_one(request, tmp_path / "runs", log=lambda m: None).report
    bright = report["tasks"]["bright"]
    assert set(bright["metrics"]) == {"abs_diff"} and bright["higher_is_better"] == {"abs_diff": False}
    assert 0 <= bright["metrics"]["abs_diff"] < 1 and "abs_diff" in bright["baseline"]
    with pytest.raises(TrainingError):
        run_one(request, tmp_path / "again", log=lambda m: None, callbacks=[StopAfter(1)])
    (stopped,) = (tmp_path / "again" / "toy").iterdir()
    resumed = run_one(request, tmp_path / "again", resume_dir=stopped, log=lambda m: None).report
    assert resumed["tasks"] == report["tasks"]
    graph = model_graph(spec, tmp_path)
    assert [c["children"][1]["name"] for c in graph["children"][1:]] == ["head (brightness)", "head (classification)"]
