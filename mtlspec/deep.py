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
from mtlspec.language.validate import Result  # or a run.RunRequest: anything with .spec and .file


def _at(result: Result, doc_path: tuple, code: str, message: str) -> Diagnostic:
    from mtlspec.language.compose import load_with_extends

    doc = load_with_extends(Path(result.file), result.file)
    where = doc.key_at(doc_path)
    return Diagnostic(where.file, where.line, where.col, code, ".".join(map(str, doc_path)), message)


def deep_check(result: Result, decode: str = "sample") -> list[Diagnostic]:
    """Data scan and meta-device model build for one valid spec; problems as diagnostics."""
    problems, sources = data_check(result, decode)
    return problems + (model_check(result, sources) if sources is not None else [])


def data_check(result: Result, decode: str = "sample") -> tuple[list[Diagnostic], dict[str, Any] | None]:
    """Every split of every dataset a task uses: its annotations read, every file it names present,
    every image label valid for its task, and images decoded (`decode`: "sample", a few per split,
    or "all"). Returns the problems and the training sources (None when a dataset cannot be opened)."""
    from mtlspec.build import build_task_types
    from mtlspec.data.build import build_source, scan
    from mtlspec.data.records import DataError

    spec = result.spec
    base = Path(result.file).resolve().parent
    out: list[Diagnostic] = []
    opened: dict[tuple[str, str], Any] = {}
    used = [n for n in spec.data.datasets if n in {t.dataset for t in spec.tasks.values()}]
    for name in used:
        for split in ("train", "val", "test"):
            try:
                opened[name, split] = build_source(spec, name, split, base)
            except DataError as exc:
                out.append(_at(result, ("data", "datasets", name), "bad-data", f"{split} split: {exc}"))
    sources = {name: opened[name, "train"] for name in used if (name, "train") in opened}
    task_types = None
    if len(sources) == len(used):
        try:
            task_types = build_task_types(spec, sources, base)
        except DataError as exc:  # a zero-shot task's class table against its dataset's classes
            out.append(_at(result, ("tasks",), "bad-data", str(exc)))
    for (name, split), source in opened.items():
        errors = scan({name: source}, decode=decode, task_types=task_types)
        out.extend(_at(result, ("data", "datasets", name), "bad-data", f"{split} split: {error}") for _, error in errors[:20])
        if len(errors) > 20:
            out.append(_at(result, ("data", "datasets", name), "bad-data", f"{split} split: ... and {len(errors) - 20} more problems"))
    return out, (sources if task_types is not None else None)


def model_check(result: Result, sources: dict[str, Any] | None = None, batch: int = 2) -> list[Diagnostic]:
    """The spec built (`build`) on the meta device and run on a batch of the spec's image size: each
    head's output must be what its task needs. Without `sources`, the training sources are opened
    (for the class counts); a dataset that cannot be opened leaves the check to the data scan."""
    import torch

    from mtlspec.build import build
    from mtlspec.data.build import build_sources
    from mtlspec.data.records import DataError
    from mtlspec.model.builder import BuildError, head_path

    spec = result.spec
    try:
        sources = sources if sources is not None else build_sources(spec, "train", Path(result.file).resolve().parent)
    except DataError:
        return []
    size = spec.data.image_size
    with torch.device("meta"), torch.no_grad():
        try:
            built = build(spec, Path(result.file).resolve().parent, sources)
        except BuildError as exc:
            return [_at(result, where, "build-error", why) for where, why in exc.problems]
        except DataError as exc:  # a zero-shot task's class table against its dataset's classes
            return [_at(result, ("tasks",), "bad-data", str(exc))]
        topology = built.model.topology
        try:
            features = built.model.features(built.model.example_images(batch, size))
        except Exception as exc:
            return [_at(result, ("model",), "build-error", f"the backbone and neck do not fit together: {type(exc).__name__}: {exc}")]
        out = []
        texts = built.model.example_text(batch)
        for task, tt in built.task_types.items():
            where = head_path(task, spec.tasks[task])
            try:
                output = built.model.head_output(task, features[task], texts)
            except Exception as exc:
                out.append(_at(result, where, "build-error", f"the head cannot run on its input features: {type(exc).__name__}: {exc}"))
                continue
            problem = tt.output_problem(output, batch, size, topology.strides)
            if problem:
                out.append(_at(result, where, "build-error", problem))
        if spec.meta is not None:  # the parameters meta.adapt names must be in this model
            from mtlspec.meta import adapts
            from mtlspec.meta.functional import adapted_names

            try:
                adapted_names(built.model, spec.meta.task, adapts(spec.meta))
            except ValueError as exc:
                out.append(_at(result, ("meta", "adapt"), "build-error", str(exc)))
    return out
