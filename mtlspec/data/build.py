"""Builds the data a spec describes: sources per dataset and split, task bindings, sample weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtlspec.data.dataset import MultiTaskDataset, TaskBinding
from mtlspec.data.formats.coco import CocoSource
from mtlspec.data.formats.folders import DenseFolderSource, ImageFolderSource
from mtlspec.data.formats.tables import AttributeTableSource
from mtlspec.data.multidigits import MultiDigitsParams, MultiDigitsSource
from mtlspec.data.records import DataError
from mtlspec.data.weights import sample_weights


def _multidigits(name: str, ds: Any, split: str, seed: int, base: Path) -> MultiDigitsSource:
    params = MultiDigitsParams(canvas=ds.canvas, min_objects=ds.objects.min, max_objects=ds.objects.max,
                               split=split, size=getattr(ds.splits, split), seed=ds.seed if ds.seed is not None else seed)
    return MultiDigitsSource(name, params)


def _coco(name: str, ds: Any, split: str, seed: int, base: Path) -> CocoSource:
    return CocoSource(name, base / ds.root, ds.annotations.model_dump(), split, seed, ds.attributes, ds.attributes_table)


def _table(name: str, ds: Any, split: str, seed: int, base: Path) -> AttributeTableSource:
    return AttributeTableSource(name, base / ds.table, base / ds.images, ds.format, split, seed, ds.columns)


def _image_folder(name: str, ds: Any, split: str, seed: int, base: Path) -> ImageFolderSource:
    return ImageFolderSource(name, base / ds.root, split, seed)


def _dense_folder(name: str, ds: Any, split: str, seed: int, base: Path) -> DenseFolderSource:
    return DenseFolderSource(name, base / ds.root, split, ds.num_classes)


SOURCES = {"multidigits": _multidigits, "coco": _coco, "attribute_table": _table, "image_folder": _image_folder, "dense_folder": _dense_folder}


def build_source(spec: Any, name: str, split: str, base: Path = Path(".")) -> Any:
    dataset = spec.data.datasets[name]
    return SOURCES[dataset.type](name, dataset, split, spec.seed, base)


def build_sources(spec: Any, split: str, base: Path = Path(".")) -> dict[str, Any]:
    """One source per dataset that some task uses, for the given split; paths relative to `base`."""
    used = {t.dataset for t in spec.tasks.values()}
    return {name: build_source(spec, name, split, base) for name in spec.data.datasets if name in used}


def bindings(spec: Any, sources: dict[str, Any]) -> list[TaskBinding]:
    out = []
    for name, task in spec.tasks.items():
        label = getattr(task, "label", None)
        given = getattr(task, "num_classes", None) or getattr(task, "num_labels", None)
        count = given or (sources[task.dataset].num_classes(label, task.type) if task.type not in ("regression", "depth") else 0)
        out.append(TaskBinding(name, task.type, task.dataset, label, count))
    return out


def scan(sources: dict[str, Any], limit: int | None = None) -> list[tuple[str, DataError]]:
    """Check every sample a source can check cheaply (files present, annotations sane).

    Returns (dataset name, error) for each problem found."""
    problems: list[tuple[str, DataError]] = []
    for name, source in sources.items():
        if not hasattr(source, "check"):
            continue
        for index in range(len(source) if limit is None else min(len(source), limit)):
            try:
                source.check(index)
            except DataError as exc:
                problems.append((name, exc))
    return problems


class BootstrapSource:
    """A source seen through a bootstrap sample of its indices (with replacement)."""

    def __init__(self, source: Any, seed: int):
        self.source, self.name = source, getattr(source, "name", "")
        self.indices = bootstrap_indices(len(source), seed)

    def __len__(self) -> int:
        return len(self.indices)

    def record(self, index: int) -> Any:
        return self.source.record(int(self.indices[index]))

    def labels(self, index: int) -> Any:
        inner = self.source
        return inner.labels(int(self.indices[index])) if hasattr(inner, "labels") else inner.record(int(self.indices[index]))["labels"]

    def __getattr__(self, name: str) -> Any:  # fingerprint, num_classes, check ... of the source itself
        return getattr(self.source, name)


def bootstrap_indices(count: int, seed: int) -> Any:
    import numpy as np

    return np.random.default_rng([seed, 7477]).integers(0, count, size=count)


def build_dataset(spec: Any, split: str, train: bool, base: Path = Path(".")) -> tuple[MultiTaskDataset, list[TaskBinding]]:
    sources = build_sources(spec, split, base)
    if train and spec.data.bootstrap is not None:
        sources = {name: BootstrapSource(source, spec.data.bootstrap) for name, source in sources.items()}
    binds = bindings(spec, sources)
    weights = sample_weights(spec.data.sample_weights, spec.tasks, sources) if train else {}
    dataset = MultiTaskDataset(sources, binds, spec.data.image_size, weights=weights,
                               hflip_p=spec.data.hflip if train else 0.0, seed=spec.seed)
    return dataset, binds
