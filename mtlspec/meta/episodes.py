"""N-way K-shot episodes from one split of a classification task's dataset.

An episode draws `ways` classes, then `shots + queries` distinct samples of each: the first
`shots` are the support set, the rest the query set, so no sample is ever in both. Classes get
the labels 0..ways-1 in the drawn (random) order. Each episode is a function of (seed, key), so
the same episodes come back on any machine and after a resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mtlspec.data.dataset import labels_of
from mtlspec.data.records import DataError


@dataclass
class Episode:
    classes: list[int]  # the dataset's class of each episode label
    support: list[int]  # sample indices into the split
    support_labels: list[int]
    query: list[int]
    query_labels: list[int]


def label_reader(task: str, section: Any, source: Any) -> dict[str, Any]:
    """The task type that reads a classification task's labels as its dataset has them (every
    class; a meta-learned head answers only `ways`), keyed by the task, for build_dataset."""
    from mtlspec.tasks import task_type_class

    cls = task_type_class(section.type)
    return {task: cls(task, cls.classes(section, source), section)}


def class_index(dataset: Any, task: str) -> dict[int, list[int]]:
    """Sample indices of the split by class, read from the labels (no image decoded)."""
    tt = dataset.task_types[task]
    name = tt.spec.dataset
    source = dataset.sources[name]
    start = int(dataset.offsets[dataset.names.index(name)])
    by_class: dict[int, list[int]] = {}
    for local in range(len(source)):
        value, present = tt.target({"labels": labels_of(source, local), "meta": {"file": getattr(source, "name", ""), "index": local}})
        if present:
            by_class.setdefault(int(value), []).append(start + local)
    return by_class


class EpisodeSampler:
    """Episodes of `task` from `dataset` (a MultiTaskDataset of one split), drawing from `classes`
    (all the task's classes when None); `index` is the split's class_index when already read."""

    def __init__(self, dataset: Any, task: str, ways: int, shots: int, queries: int, seed: int, classes: list[int] | None = None,
                 split: str = "", index: dict[int, list[int]] | None = None):
        self.dataset, self.task, self.ways, self.shots, self.queries, self.seed = dataset, task, ways, shots, queries, seed
        name = dataset.task_types[task].spec.dataset
        by_class = index if index is not None else class_index(dataset, task)
        allowed = sorted(by_class) if classes is None else sorted(set(classes))
        need = shots + queries
        self.by_class = {c: np.asarray(by_class.get(c, []), np.int64) for c in allowed}
        self.classes = [c for c in allowed if len(self.by_class[c]) >= need]
        if len(self.classes) < ways:
            counts = ", ".join(f"{c}: {len(self.by_class[c])}" for c in allowed)
            raise DataError(f"{ways}-way {shots}-shot episodes with {queries} queries need {ways} classes with at least {need} samples each; "
                            f"the {split or 'split'} of dataset '{name}' has {len(self.classes)} ({counts})", name)

    def episode(self, *key: int) -> Episode:
        rng = np.random.default_rng([self.seed, 104729, *key])
        chosen = [self.classes[i] for i in rng.choice(len(self.classes), size=self.ways, replace=False)]
        support, support_labels, query, query_labels = [], [], [], []
        for label, c in enumerate(chosen):
            picks = rng.choice(self.by_class[c], size=self.shots + self.queries, replace=False)
            support += [int(i) for i in picks[: self.shots]]
            query += [int(i) for i in picks[self.shots :]]
            support_labels += [label] * self.shots
            query_labels += [label] * self.queries
        return Episode(chosen, support, support_labels, query, query_labels)

    def tensors(self, episode: Episode, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(support images, support labels, query images, query labels) on the device."""
        def images(indices: list[int]) -> torch.Tensor:
            return torch.from_numpy(np.stack([self.dataset[i]["image"] for i in indices])).to(device)

        return (images(episode.support), torch.tensor(episode.support_labels, device=device),
                images(episode.query), torch.tensor(episode.query_labels, device=device))
