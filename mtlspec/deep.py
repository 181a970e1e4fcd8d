"""`validate --deep`: scan the data and build the model on torch's meta device, checking shapes.

Nothing here allocates real tensor memory for the model: parameters and activations live on
the meta device, which tracks shapes only. The data scan reads annotations, checks that every
file they name exists, and decodes a sample of the images and label maps (all of them with
`validate --deep --decode all`); it generates the embedded dataset if it is not cached yet.
`run` calls `model_check` before it writes anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtlspec.errors import Diagnostic
from mtlspec.spec.validate import Result


def _at(result: Result, doc_path: tuple, code: str, message: str) -> Diagnostic:
    from mtlspec.spec.compose import load_with_extends

    doc = load_with_extends(Path(result.file), result.file)
    where = doc.key_at(doc_path)
    return Diagnostic(where.file, where.line, where.col, code, ".".join(map(str, doc_path)), message)


def _expected_shape(task_type: str, batch: int, classes: int, size: int) -> tuple[int, ...] | None:
    return {
        "classification": (batch, classes),
        "multilabel": (batch, classes),
        "regression": (batch, 1),
        "segmentation": (batch, classes, size, size),
        "depth": (batch, 1, size, size),
    }.get(task_type)


def deep_check(result: Result, decode: str = "sample") -> list[Diagnostic]:
    """Data scan and meta-device model build for one valid spec; problems as diagnostics."""
    problems, sources = data_check(result, decode)
    return problems + (model_check(result, sources) if sources is not None else [])


def data_check(result: Result, decode: str = "sample") -> tuple[list[Diagnostic], dict[str, Any] | None]:
    """Every split of every dataset a task uses: its annotations read, every file it names present,
    and images decoded (`decode`: "sample", a few per split, or "all"). Returns the problems and
    the training sources (None when a dataset cannot be opened)."""
    from mtlspec.data.build import build_source, scan
    from mtlspec.data.records import DataError

    spec = result.spec
    base = Path(result.file).resolve().parent
    out: list[Diagnostic] = []
    sources: dict[str, Any] = {}
    used = {t.dataset for t in spec.tasks.values()}
    for name in (n for n in spec.data.datasets if n in used):
        for split in ("train", "val", "test"):
            try:
                source = build_source(spec, name, split, base)
            except DataError as exc:
                out.append(_at(result, ("data", "datasets", name), "bad-data", f"{split} split: {exc}"))
                continue
            errors = scan({name: source}, decode=decode)
            out.extend(_at(result, ("data", "datasets", name), "bad-data", f"{split} split: {error}") for _, error in errors[:20])
            if len(errors) > 20:
                out.append(_at(result, ("data", "datasets", name), "bad-data", f"{split} split: ... and {len(errors) - 20} more problems"))
            if split == "train":
                sources[name] = source
    return out, (sources if set(sources) == used else None)


def model_check(result: Result, sources: dict[str, Any] | None = None, batch: int = 2) -> list[Diagnostic]:
    """The model built on the meta device and run on a batch of the spec's image size: each head's
    output must have the shape its task needs. Without `sources`, the training sources are opened
    (for the class counts); a dataset that cannot be opened leaves the check to the data scan."""
    import torch

    from mtlspec.data.build import bindings, build_sources
    from mtlspec.data.records import DataError
    from mtlspec.model.builder import build_head, build_task_types, build_topology

    spec = result.spec
    if sources is None:
        try:
            sources = build_sources(spec, "train", Path(result.file).resolve().parent)
        except DataError:
            return []
    out: list[Diagnostic] = []
    binds = {b.name: b for b in bindings(spec, sources)}
    size = spec.data.image_size
    with torch.device("meta"), torch.no_grad():
        try:
            topology = build_topology(spec)
        except Exception as exc:
            return [_at(result, ("model",), "build-error", f"the backbone and neck cannot be built: {type(exc).__name__}: {exc}")]
        try:
            features = topology(torch.empty(batch, 3, size, size))
        except Exception as exc:
            return [_at(result, ("model",), "build-error", f"the backbone and neck do not fit together: {type(exc).__name__}: {exc}")]
        for task, tt in build_task_types(spec, {n: b.num_classes for n, b in binds.items()}).items():
            kind = spec.tasks[task].type
            where = ("tasks", task, "head") if kind == "detection" else ("tasks", task)
            try:
                output = build_head(tt, topology, spec)(features[task])
            except Exception as exc:
                out.append(_at(result, where, "build-error", f"the head cannot be built on its input features: {type(exc).__name__}: {exc}"))
                continue
            expected = _expected_shape(kind, batch, binds[task].num_classes, size)
            if expected is not None and tuple(output.shape) != expected:
                out.append(_at(result, where, "build-error", f"the head outputs {tuple(output.shape)}, expected {expected}"))
            if kind == "detection":
                out.extend(_check_levels(result, where, output[0], topology.strides, size))
    return out


def _check_levels(result: Result, where: tuple, levels: Any, strides: list[int], size: int) -> list[Diagnostic]:
    if len(levels) != len(strides):
        return [_at(result, where, "build-error", f"the head gives {len(levels)} levels for {len(strides)} strides")]
    for level, stride in zip(levels, strides):
        if tuple(level.shape[-2:]) != (-(-size // stride),) * 2:
            return [_at(result, where, "build-error", f"a level of shape {tuple(level.shape)} does not match stride {stride}")]
    return []
