"""Samples for multi-task training: records read through each task's type, with per-task `has`
masks and weights.

A sample is {"image": (3, H, W) float32 (a clip's frames: (T, 3, H, W)), "targets": {task: ...}, "has": {task: bool},
"weight": {task: float}, "meta": {...}}: the spec's sample weight times any per-task weight
(data.sample_overrides; boosting), and an image-level target may be replaced the same way. A task
whose dataset is not this sample's, or whose label this sample lacks, has `has[task] = False` and
its type's placeholder target, which no loss or metric reads. What a target is, and how targets
stack into a batch, is each task type's own business (tasks/).
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Callable

import numpy as np
import torch

from mtlspec.data.augment import augment
from mtlspec.data.transforms import hflip, normalize, resize_pad


class MultiTaskDataset(torch.utils.data.Dataset):
    """Several sources concatenated; each sample carries every task, labelled or not."""

    def __init__(self, sources: dict[str, Any], task_types: dict[str, Any], image_size: int,
                 weights: dict[str, np.ndarray] | None = None, hflip_p: float = 0.0, seed: int = 0,
                 task_weights: dict[str, dict[str, np.ndarray]] | None = None,
                 task_targets: dict[str, dict[str, np.ndarray]] | None = None, augment: dict[str, Any] | None = None):
        self.sources, self.task_types, self.image_size = sources, task_types, image_size
        self.names = list(sources)
        self.sizes = [len(sources[n]) for n in self.names]
        self.offsets = np.cumsum([0] + self.sizes)
        self.weights = weights or {}
        self.task_weights, self.task_targets = task_weights or {}, task_targets or {}
        self.hflip_p, self.seed, self.epoch = hflip_p, seed, 0
        self.augment = {name: spec for name, spec in (augment or {}).items() if spec is not None}

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def unaugmented(self) -> "MultiTaskDataset":
        """The same samples without flips or augmentation (what trivial baselines are fitted on)."""
        view = copy.copy(self)
        view.hflip_p, view.augment = 0.0, {}
        return view

    def locate(self, index: int) -> tuple[str, int]:
        d = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.names[d], index - int(self.offsets[d])

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Any]:
        """Sample `index`, augmented for the dataset's epoch, or for the epoch given with it as
        (index, epoch): the training batch order says the epoch, so persistent data-loader workers,
        whose copies of the dataset never see set_epoch, augment for the right one."""
        index, epoch = index if isinstance(index, tuple) else (index, self.epoch)
        name, local = self.locate(index)
        record = self.sources[name].record(local)
        if "frames" in record:  # a clip (data/clips.py): every frame resized; no flips or augmentation (validate refuses them)
            record = {**record, "frames": [resize_pad(frame, self.image_size) for frame in record["frames"]]}
            image = np.stack([normalize(frame["image"]) for frame in record["frames"]])
        else:
            record = self._image_record(record, name, index, epoch)
            image = normalize(record["image"])
        targets, has = {}, {}
        for task, tt in self.task_types.items():
            value, present = tt.target(record) if tt.spec.dataset == name else (None, False)
            if present and name in self.task_targets.get(task, {}):
                value = float(self.task_targets[task][name][local])
            targets[task] = value if present else tt.placeholder(self.image_size)
            has[task] = present
        base = float(self.weights[name][local]) if name in self.weights else 1.0
        weight = {task: base * (float(self.task_weights[task][name][local]) if name in self.task_weights.get(task, {}) else 1.0)
                  for task in self.task_types}
        sample = {"image": image, "targets": targets, "has": has, "weight": weight, "meta": record["meta"]}
        text = {task: tt.text_input(record if tt.spec.dataset == name else {}) for task, tt in self.task_types.items() if tt.reads_text}
        if text:  # each text task's input, read from the same (flipped, augmented) record as the image
            sample["text"] = text
        return sample


    def _image_record(self, record: dict[str, Any], name: str, index: int, epoch: int) -> dict[str, Any]:
        """An image record augmented, resized and flipped for this epoch."""
        if name in self.augment:  # decided by (seed, epoch, index), like the flip
            record = augment(record, self.augment[name], np.random.default_rng([self.seed, epoch, index, 1]))
        record = resize_pad(record, self.image_size)
        if self.hflip_p > 0:
            # decided by (seed, epoch, index): the same flips whatever the worker or order
            if np.random.default_rng([self.seed, epoch, index]).random() < self.hflip_p:
                record = hflip(record)
        return record


def labels_of(source: Any, index: int) -> dict:
    """A sample's labels, without decoding its image where the source can."""
    return source.labels(index) if hasattr(source, "labels") else source.record(index)["labels"]


def label_record(source: Any, index: int, task_type: Any, file: Any, sample: Any) -> dict:
    """What a task reading image labels (or a sample's text) needs of a record, without the image."""
    record = {"labels": labels_of(source, index), "meta": {"file": file, "index": sample}}
    if task_type.reads == "text" and hasattr(source, "text"):
        record["text"] = source.text(index)
    return record


def samples_labelled(source: Any, label: str, classes: list[str]) -> np.ndarray:
    """Which samples of a source have `label` equal to one of `classes` (named as the source names
    the label's classes, or class indices where it has no names), read without decoding images."""
    names = source.label_names(label) if hasattr(source, "label_names") else None
    wanted = {float(names.index(c)) for c in classes if c in names} if names else {float(c) for c in classes if c.lstrip("-").isdigit()}
    mask = np.zeros(len(source), dtype=bool)
    for index in range(len(source)):
        value = labels_of(source, index).get(label)
        try:
            mask[index] = value is not None and float(value) in wanted
        except (TypeError, ValueError):
            pass  # not a class index: the data scan names it
    return mask


def task_targets(dataset: "MultiTaskDataset", task: str, dense_limit: int = 500) -> list[Any]:
    """The targets of a task over the training samples of its dataset: every labelled sample for
    image labels (read without decoding images), up to `dense_limit` samples spread evenly over
    the dataset for maps and boxes."""
    tt = dataset.task_types[task]
    name = tt.spec.dataset
    if name not in dataset.sources:
        return []
    source, start = dataset.sources[name], int(dataset.offsets[dataset.names.index(name)])
    out = []
    if tt.image_level:
        replaced = dataset.task_targets.get(task, {}).get(name)
        for local in range(len(source)):
            value, present = tt.target(label_record(source, local, tt, getattr(source, "name", ""), local))
            if present:
                out.append(float(replaced[local]) if replaced is not None else value)
        return out
    for local in np.unique(np.linspace(0, len(source) - 1, min(dense_limit, len(source))).astype(int)) if len(source) else []:
        sample = dataset[start + int(local)]
        if sample["has"][task]:
            out.append(sample["targets"][task])
    return out


def collate(samples: list[dict[str, Any]], task_types: dict[str, Any]) -> dict[str, Any]:
    """Stack samples into a batch; each task type stacks its own targets."""
    out = {
        "image": torch.from_numpy(np.stack([s["image"] for s in samples])),
        "has": {task: torch.tensor([s["has"][task] for s in samples]) for task in task_types},
        "weight": {task: torch.tensor([s["weight"][task] for s in samples], dtype=torch.float32) for task in task_types},
        "meta": [s["meta"] for s in samples],
        "targets": {task: tt.collate([s["targets"][task] for s in samples]) for task, tt in task_types.items()},
    }
    if "text" in samples[0]:
        out["text"] = {task: torch.from_numpy(np.stack([s["text"][task] for s in samples])) for task in samples[0]["text"]}
    return out


def collate_fn(task_types: dict[str, Any]) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    return functools.partial(collate, task_types=task_types)
