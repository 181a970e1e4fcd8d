"""Builds the data a spec describes: sources per dataset and split, task bindings, sample weights."""

from __future__ import annotations

from typing import Any

from mtlspec.data.dataset import MultiTaskDataset, TaskBinding
from mtlspec.data.multidigits import MultiDigitsParams, MultiDigitsSource


def _multidigits(name: str, spec: Any, split: str, seed: int) -> MultiDigitsSource:
    params = MultiDigitsParams(canvas=spec.canvas, min_objects=spec.objects.min, max_objects=spec.objects.max,
                               split=split, size=getattr(spec.splits, split), seed=spec.seed if spec.seed is not None else seed)
    return MultiDigitsSource(name, params)


SOURCES = {"multidigits": _multidigits}


def build_sources(spec: Any, split: str) -> dict[str, Any]:
    """One source per dataset that some task uses, for the given split."""
    used = {t.dataset for t in spec.tasks.values()}
    return {name: SOURCES[ds.type](name, ds, split, spec.seed) for name, ds in spec.data.datasets.items() if name in used}


def bindings(spec: Any, sources: dict[str, Any]) -> list[TaskBinding]:
    out = []
    for name, task in spec.tasks.items():
        label = getattr(task, "label", None)
        given = getattr(task, "num_classes", None) or getattr(task, "num_labels", None)
        count = given or (sources[task.dataset].num_classes(label, task.type) if task.type not in ("regression", "depth") else 0)
        out.append(TaskBinding(name, task.type, task.dataset, label, count))
    return out


def build_dataset(spec: Any, split: str, train: bool) -> tuple[MultiTaskDataset, list[TaskBinding]]:
    sources = build_sources(spec, split)
    binds = bindings(spec, sources)
    dataset = MultiTaskDataset(sources, binds, spec.data.image_size, seed=spec.seed)
    return dataset, binds
