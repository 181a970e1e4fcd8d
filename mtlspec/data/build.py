"""Builds the data a spec describes: sources per dataset and split, the samples for its task types,
sample weights; and the scan that names bad data before training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtlspec.data.dataset import MultiTaskDataset, label_record, labels_of
from mtlspec.data.formats.coco import CocoSource
from mtlspec.data.formats.folders import DenseFolderSource, ImageFolderSource
from mtlspec.data.formats.tables import AttributeTableSource
from mtlspec.data.formats.text_file import WithText
from mtlspec.data.multidigits import MultiDigitsParams, MultiDigitsSource
from mtlspec.data.records import DataError
from mtlspec.data.weights import sample_weights


def _multidigits(name: str, ds: Any, split: str, seed: int, base: Path) -> MultiDigitsSource:
    params = MultiDigitsParams(canvas=ds.canvas, min_objects=ds.objects.min, max_objects=ds.objects.max,
                               split=split, size=getattr(ds.splits, split), seed=ds.seed if ds.seed is not None else seed,
                               digits=tuple(ds.digits) if ds.digits else None)
    return MultiDigitsSource(name, params)


def _coco(name: str, ds: Any, split: str, seed: int, base: Path, instances: bool = False, masks: bool = False) -> CocoSource:
    return CocoSource(name, base / ds.root, ds.annotations.model_dump(), split, seed, ds.attributes, ds.attributes_table, instances, masks)


def _table(name: str, ds: Any, split: str, seed: int, base: Path) -> AttributeTableSource:
    return AttributeTableSource(name, base / ds.table, base / ds.images, ds.format, split, seed, ds.columns)


def _image_folder(name: str, ds: Any, split: str, seed: int, base: Path) -> ImageFolderSource:
    return ImageFolderSource(name, base / ds.root, split, seed)


def _dense_folder(name: str, ds: Any, split: str, seed: int, base: Path) -> DenseFolderSource:
    return DenseFolderSource(name, base / ds.root, split, ds.num_classes)


def _moving_digits(name: str, ds: Any, split: str, seed: int, base: Path) -> Any:
    from mtlspec.data.moving_digits import MovingDigitsParams, MovingDigitsSource

    return MovingDigitsSource(name, MovingDigitsParams(canvas=ds.canvas, frames=ds.frames, min_objects=ds.objects.min, max_objects=ds.objects.max,
                                                       split=split, size=getattr(ds.splits, split), seed=ds.seed if ds.seed is not None else seed))


def _video_folder(name: str, ds: Any, split: str, seed: int, base: Path) -> Any:
    from mtlspec.data.formats.video_folder import VideoFolderSource

    return VideoFolderSource(name, base / ds.root, split, seed)


def _coco_vid(name: str, ds: Any, split: str, seed: int, base: Path) -> Any:
    from mtlspec.data.formats.coco_vid import coco_vid_source

    return coco_vid_source(name, base / ds.root, ds.annotations.model_dump(), split, seed, ds.carve, ds.frames,
                           ds.categories, ds.ignore_categories, ds.min_visibility)


def _mot(name: str, ds: Any, split: str, seed: int, base: Path) -> Any:
    from mtlspec.data.formats.mot import mot_source

    return mot_source(name, base / ds.root, split, seed, dict(ds.classes), ds.sequences, ds.min_visibility, ds.carve, ds.frames,
                      ds.ignore_classes)


SOURCES = {"multidigits": _multidigits, "moving_digits": _moving_digits, "video_folder": _video_folder, "coco_vid": _coco_vid, "mot": _mot, "coco": _coco, "attribute_table": _table, "image_folder": _image_folder, "dense_folder": _dense_folder}


def build_source(spec: Any, name: str, split: str, base: Path = Path(".")) -> Any:
    """The split of a dataset (with the images' text where the dataset names a `text` file)."""
    source = _build_source(spec, name, split, base)
    if getattr(source, "is_clips", False):  # the window of frames the model sees (data/clips.py)
        from mtlspec.data.clips import ClipWindow

        source = ClipWindow(source, spec.data.clip.length, spec.data.clip.stride)
    text = getattr(spec.data.datasets[name], "text", None)
    return WithText(source, base / text) if text else source


def _build_source(spec: Any, name: str, split: str, base: Path) -> Any:
    from mtlspec.tasks import task_type_class

    dataset = spec.data.datasets[name]
    if dataset.type == "coco":  # its annotations must be there when a task reads boxes, masks or the categories present
        instances = any(t.dataset == name and (task_type_class(t.type).reads != "labels" or getattr(t, "label", None) == "categories")
                        for t in spec.tasks.values())
        masks = any(t.dataset == name and task_type_class(t.type).reads == "instance_masks" for t in spec.tasks.values())
        return _coco(name, dataset, split, spec.data_seed(), base, instances, masks)
    return SOURCES[dataset.type](name, dataset, split, spec.data_seed(), base)


def build_sources(spec: Any, split: str, base: Path = Path(".")) -> dict[str, Any]:
    """One source per dataset that some task uses, for the given split; paths relative to `base`."""
    used = {t.dataset for t in spec.tasks.values()}
    return {name: build_source(spec, name, split, base) for name in spec.data.datasets if name in used}


DECODED_SAMPLE = 16  # samples per source whose files `decode="sample"` reads in full


def scan(sources: dict[str, Any], decode: str = "none", task_types: dict[str, Any] | None = None) -> list[tuple[str, DataError]]:
    """Check every sample cheaply (annotations sane, every file they name present, each image
    label valid for the task types that read it), and read some samples in full
    (`decode`: "none", "sample" (a few spread over the source) or "all"): a truncated or
    undecodable image is found there.

    Returns (dataset name, error) for each problem found."""
    import numpy as np

    problems: list[tuple[str, DataError]] = []
    for name, source in sources.items():
        bad: set[int] = set()
        dataset = getattr(source, "name", name)
        readers = [tt for tt in (task_types or {}).values() if tt.spec.dataset == dataset and tt.image_level]
        for index in range(len(source)):
            try:
                if hasattr(source, "check"):
                    source.check(index)
                if readers:
                    file, sample = source.where(index) if hasattr(source, "where") else (getattr(source, "origin", dataset), index)
                    for tt in readers:
                        tt.target(label_record(source, index, tt, file, sample))
            except DataError as exc:
                problems.append((name, exc))
                bad.add(index)
        count = len(source)
        chosen = range(count) if decode == "all" else np.unique(np.linspace(0, count - 1, DECODED_SAMPLE).astype(int)) if decode == "sample" and count else []
        for index in (int(i) for i in chosen if int(i) not in bad):
            try:
                source.record(index)
            except DataError as exc:
                problems.append((name, exc))
    return problems


def describe(source: Any) -> dict[str, Any]:
    """A split's size and where its samples come from, for the manifest."""
    out = {"size": len(source), "source": getattr(source, "origin", getattr(source, "kind", type(source).__name__))}
    if isinstance(source, IndexedSource):
        out["source"] = getattr(source.source, "origin", out["source"])
        out["of"] = len(source.source)
        out["view"] = "bootstrap sample and/or held-out fold removed"
    return out


class IndexedSource:
    """A source seen through a list of its indices: a bootstrap sample (with repeats) or the
    training split without a held-out fold."""

    def __init__(self, source: Any, indices: Any):
        self.source, self.name, self.indices = source, getattr(source, "name", ""), indices

    def __len__(self) -> int:
        return len(self.indices)

    def record(self, index: int) -> Any:
        return self.source.record(int(self.indices[index]))

    def where(self, index: int) -> tuple[str, Any]:
        inner = self.source
        return inner.where(int(self.indices[index])) if hasattr(inner, "where") else (getattr(inner, "origin", self.name), int(self.indices[index]))

    def text(self, index: int) -> Any:
        return self.source.text(int(self.indices[index]))

    def labels(self, index: int) -> Any:
        inner = self.source
        return inner.labels(int(self.indices[index])) if hasattr(inner, "labels") else inner.record(int(self.indices[index]))["labels"]

    def __getattr__(self, name: str) -> Any:  # fingerprint, num_classes, check ... of the source itself
        return getattr(self.source, name)


def bootstrap_indices(count: int, seed: int) -> Any:
    import numpy as np

    return np.random.default_rng([seed, 7477]).integers(0, count, size=count)


def fold_ids(count: int, folds: int) -> Any:
    """The fold (0..folds-1) of each of `count` samples: a fixed shuffle cut into near-equal parts,
    the same for every member and seed, so out-of-fold predictions line up."""
    import numpy as np

    ids = np.empty(count, np.int64)
    ids[np.random.default_rng([folds, 3319]).permutation(count)] = np.arange(count) % folds
    return ids


def training_view(spec: Any, sources: dict[str, Any]) -> dict[str, Any]:
    """The training sources as this spec trains on them: without its held-out fold, then bootstrapped."""
    import numpy as np

    out = {}
    for name, source in sources.items():
        indices = np.arange(len(source))
        held_out = held_out_samples(spec, name, source)
        if held_out is not None:
            indices = indices[~held_out]
        if spec.data.holdout is not None:
            indices = indices[fold_ids(len(source), spec.data.holdout.folds) != spec.data.holdout.fold]
        if spec.data.bootstrap is not None:
            indices = indices[bootstrap_indices(len(indices), spec.data.bootstrap)]
        out[name] = source if len(indices) == len(source) and (indices == np.arange(len(source))).all() else IndexedSource(source, indices)
    return out


def held_out_samples(spec: Any, name: str, source: Any) -> Any:
    """Which training samples of dataset `name` no task trains on, as a mask (None where none):
    data.held_out_classes, and the classes its tasks hold out (a zero-shot task's unseen ones)."""
    from mtlspec.data.dataset import samples_labelled
    from mtlspec.tasks import task_type_class

    entries = [e.model_dump() for e in spec.data.held_out_classes]
    entries += [e for t in spec.tasks.values() for e in task_type_class(t.type).holds_out(t)]
    masks = [samples_labelled(source, e["label"], [str(c) for c in e["classes"]]) for e in entries if e["dataset"] == name]
    if not masks:
        return None
    out = masks[0]
    for mask in masks[1:]:
        out = out | mask
    return out


def load_overrides(spec: Any, sources: dict[str, Any], base: Path, task_types: dict[str, Any]) -> tuple[dict, dict]:
    """data.sample_overrides -> ({task: {dataset: weights}}, {task: {dataset: targets}}), aligned
    with the (unviewed) training sources; checked against them."""
    import numpy as np

    if spec.data.sample_overrides is None:
        return {}, {}
    path = base / spec.data.sample_overrides
    if not path.is_file():
        raise DataError("the sample overrides file does not exist", str(path))
    weights: dict[str, dict[str, Any]] = {}
    targets: dict[str, dict[str, Any]] = {}
    with np.load(path) as archive:
        for key in archive.files:
            kind, task, dataset = (key.split("/") + ["", ""])[:3]
            if kind not in ("weight", "target") or task not in spec.tasks or spec.tasks[task].dataset != dataset or dataset not in sources:
                raise DataError(f"entry '{key}' names no task and dataset of this spec (expected weight/<task>/<dataset> or target/<task>/<dataset>)", str(path))
            values = archive[key].astype(np.float32)
            if values.shape != (len(sources[dataset]),):
                raise DataError(f"entry '{key}' has shape {values.shape}; the training split of '{dataset}' has {len(sources[dataset])} samples", str(path))
            if kind == "target" and not task_types[task].replaceable_target:
                raise DataError(f"entry '{key}': targets can be replaced for tasks whose target is one number (regression) only", str(path))
            if not np.isfinite(values).all() or (kind == "weight" and (values < 0).any()):
                raise DataError(f"entry '{key}' holds a negative or non-finite value", str(path), int(np.flatnonzero(~np.isfinite(values) | (values < 0))[0]))
            (weights if kind == "weight" else targets).setdefault(task, {})[dataset] = values
    return weights, targets


def build_dataset(spec: Any, split: str, train: bool, base: Path, task_types: dict[str, Any],
                  sources: dict[str, Any] | None = None) -> MultiTaskDataset:
    """The split's samples for these task types (`sources`: the split's, when already open);
    `train`: as the spec trains on them (held-out fold removed, bootstrapped, weighted, flipped)."""
    sources = sources if sources is not None else build_sources(spec, split, base)
    task_weights, task_targets = load_overrides(spec, sources, base, task_types) if train else ({}, {})
    if train:
        viewed = training_view(spec, sources)
        task_weights = {t: {d: _view(viewed[d], v) for d, v in per.items()} for t, per in task_weights.items()}
        task_targets = {t: {d: _view(viewed[d], v) for d, v in per.items()} for t, per in task_targets.items()}
        sources = viewed
    weights = sample_weights(spec.data.sample_weights, spec.tasks, sources) if train else {}
    return MultiTaskDataset(sources, task_types, spec.data.image_size, weights=weights, task_weights=task_weights,
                            task_targets=task_targets, hflip_p=spec.data.hflip if train else 0.0, seed=spec.seed,
                            augment={name: getattr(spec.data.datasets[name], "augment", None) for name in sources} if train else None)


def _view(source: Any, values: Any) -> Any:
    """Per-sample values of a source, re-indexed like its view."""
    return values[source.indices] if isinstance(source, IndexedSource) else values
