"""Samples for multi-task training: records bound to tasks, with per-task `has` masks and weights.

A sample is {"image": (3, H, W) float32, "targets": {task: ...}, "has": {task: bool},
"weight": {task: float}, "meta": {...}}: the spec's sample weight times any per-task weight
(data.sample_overrides; boosting), and a regression target may be replaced the same way. A task whose dataset is not this sample's, or whose label
this sample lacks, has `has[task] = False` and a placeholder target that no loss or metric reads.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from mtlspec.data.records import IGNORE_INDEX, DataError, Record
from mtlspec.data.transforms import hflip, normalize, resize_pad


@dataclass(frozen=True)
class TaskBinding:
    """What a task reads from its dataset's records."""

    name: str
    type: str
    dataset: str
    label: str | None = None
    num_classes: int = 0  # classes, labels, or 0 where it does not apply


def bind(binding: TaskBinding, record: Record) -> tuple[Any, bool]:
    """(target, has) for one task from one record of its own dataset."""
    kind = binding.type
    if kind in ("classification", "multilabel", "regression"):
        value = record.get("labels", {}).get(binding.label)
        if value is None:
            return None, False
        where = (record["meta"].get("file"), record["meta"].get("index"))
        if kind == "classification":
            number = float(value)
            if not np.isfinite(number) or not number.is_integer():
                raise DataError(f"label '{binding.label}' = {value!r} is not a class index (a whole number from 0)", *where)
            if not 0 <= number < binding.num_classes:
                raise DataError(f"label '{binding.label}' = {int(number)} is outside 0..{binding.num_classes - 1}", *where)
            return int(number), True
        if kind == "multilabel":
            vector = np.asarray(value, np.float32)
            if vector.shape != (binding.num_classes,):
                raise DataError(f"label '{binding.label}' has {vector.size} entries, expected {binding.num_classes}", *where)
            if not np.isfinite(vector).all():
                raise DataError(f"label '{binding.label}' holds a value that is not a finite number", *where)
            return vector, True
        if not np.isfinite(float(value)):
            raise DataError(f"label '{binding.label}' = {value!r} is not a finite number", *where)
        return float(value), True
    if kind == "detection":
        if "boxes" not in record:
            return None, False
        return {"boxes": np.asarray(record["boxes"], np.float32).reshape(-1, 4), "labels": np.asarray(record["box_labels"], np.int64)}, True
    if kind == "segmentation":
        return (record["mask"], True) if "mask" in record else (None, False)
    if kind == "depth":
        return (record["depth"], True) if "depth" in record else (None, False)
    raise ValueError(f"unknown task type {kind!r}")


def _placeholder(binding: TaskBinding, size: int) -> Any:
    kind = binding.type
    if kind == "classification":
        return 0
    if kind == "multilabel":
        return np.zeros(binding.num_classes, np.float32)
    if kind == "regression":
        return 0.0
    if kind == "detection":
        return {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros((0,), np.int64)}
    if kind == "segmentation":
        return np.full((size, size), IGNORE_INDEX, np.int64)
    return np.zeros((size, size), np.float32)


class MultiTaskDataset(torch.utils.data.Dataset):
    """Several sources concatenated; each sample carries every task, labelled or not."""

    def __init__(self, sources: dict[str, Any], bindings: list[TaskBinding], image_size: int,
                 weights: dict[str, np.ndarray] | None = None, hflip_p: float = 0.0, seed: int = 0,
                 task_weights: dict[str, dict[str, np.ndarray]] | None = None,
                 task_targets: dict[str, dict[str, np.ndarray]] | None = None):
        self.sources, self.bindings, self.image_size = sources, bindings, image_size
        self.names = list(sources)
        self.sizes = [len(sources[n]) for n in self.names]
        self.offsets = np.cumsum([0] + self.sizes)
        self.weights = weights or {}
        self.task_weights, self.task_targets = task_weights or {}, task_targets or {}
        self.hflip_p, self.seed, self.epoch = hflip_p, seed, 0

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def locate(self, index: int) -> tuple[str, int]:
        d = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.names[d], index - int(self.offsets[d])

    def __getitem__(self, index: int) -> dict[str, Any]:
        name, local = self.locate(index)
        record = resize_pad(self.sources[name].record(local), self.image_size)
        if self.hflip_p > 0:
            # decided by (seed, epoch, index): the same flips whatever the worker or order
            if np.random.default_rng([self.seed, self.epoch, index]).random() < self.hflip_p:
                record = hflip(record)
        targets, has = {}, {}
        for b in self.bindings:
            value, present = bind(b, record) if b.dataset == name else (None, False)
            if present and name in self.task_targets.get(b.name, {}):
                value = float(self.task_targets[b.name][name][local])
            targets[b.name] = value if present else _placeholder(b, self.image_size)
            has[b.name] = present
        base = float(self.weights[name][local]) if name in self.weights else 1.0
        weight = {b.name: base * (float(self.task_weights[b.name][name][local]) if name in self.task_weights.get(b.name, {}) else 1.0)
                  for b in self.bindings}
        return {"image": normalize(record["image"]), "targets": targets, "has": has, "weight": weight, "meta": record["meta"]}


IMAGE_LEVEL = ("classification", "multilabel", "regression")  # labels a source can give without decoding an image


def labels_of(source: Any, index: int) -> dict:
    """A sample's labels, without decoding its image where the source can."""
    return source.labels(index) if hasattr(source, "labels") else source.record(index)["labels"]


def task_targets(dataset: "MultiTaskDataset", task: str, dense_limit: int = 500) -> list[Any]:
    """The targets of a task over the training samples of its dataset: every labelled sample for
    image-level labels (read without decoding images), up to `dense_limit` samples spread evenly
    over the dataset for maps and boxes."""
    binding = next(b for b in dataset.bindings if b.name == task)
    if binding.dataset not in dataset.sources:
        return []
    source, start = dataset.sources[binding.dataset], int(dataset.offsets[dataset.names.index(binding.dataset)])
    out = []
    if binding.type in IMAGE_LEVEL:
        replaced = dataset.task_targets.get(task, {}).get(binding.dataset)
        for local in range(len(source)):
            value, present = bind(binding, {"labels": labels_of(source, local), "meta": {"file": getattr(source, "name", ""), "index": local}})
            if present:
                out.append(float(replaced[local]) if replaced is not None else value)
        return out
    for local in np.unique(np.linspace(0, len(source) - 1, min(dense_limit, len(source))).astype(int)) if len(source) else []:
        sample = dataset[start + int(local)]
        if sample["has"][task]:
            out.append(sample["targets"][task])
    return out


def collate(samples: list[dict[str, Any]], bindings: list[TaskBinding]) -> dict[str, Any]:
    """Stack samples into a batch; detection targets stay per-image lists."""
    batch: dict[str, Any] = {
        "image": torch.from_numpy(np.stack([s["image"] for s in samples])),
        "has": {b.name: torch.tensor([s["has"][b.name] for s in samples]) for b in bindings},
        "weight": {b.name: torch.tensor([s["weight"][b.name] for s in samples], dtype=torch.float32) for b in bindings},
        "meta": [s["meta"] for s in samples],
        "targets": {},
    }
    for b in bindings:
        values = [s["targets"][b.name] for s in samples]
        if b.type == "classification":
            batch["targets"][b.name] = torch.tensor(values, dtype=torch.int64)
        elif b.type == "regression":
            batch["targets"][b.name] = torch.tensor(values, dtype=torch.float32)
        elif b.type == "detection":
            batch["targets"][b.name] = [{k: torch.from_numpy(np.asarray(v)) for k, v in t.items()} for t in values]
        else:
            batch["targets"][b.name] = torch.from_numpy(np.stack(values))
    return batch


def collate_fn(bindings: list[TaskBinding]) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    return functools.partial(collate, bindings=bindings)
