"""N-way K-shot episodes from one split of a task's dataset.

Of a classification task, an episode draws `ways` classes, then `shots + queries` distinct samples
of each. Of a multilabel task (attributes: which digits an image shows, say), each episode is a new
binary task: it draws one label, and `shots + queries` samples that have it and as many that do
not (2-way). Either way the first `shots` of each group are the support set, the rest the query
set, so no sample is ever in both, and the groups get the labels 0..ways-1 in a random order (an
attribute's "has it" is label 0 in some episodes, 1 in others). Each episode is a function of
(seed, key), so the same episodes come back on any machine and after a resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mtlspec.data.dataset import labels_of
from mtlspec.data.records import DataError
from mtlspec.tasks.base import Form


@dataclass
class Episode:
    classes: list[int]  # the dataset's class of each episode label (the attribute, for both labels of an attribute episode)
    support: list[int]  # sample indices into the split
    support_labels: list[int]
    query: list[int]
    query_labels: list[int]
    has: int | None = None  # an attribute episode: the label of the samples that have the attribute


def label_reader(task: str, section: Any, source: Any) -> dict[str, Any]:
    """The task type that reads a classification task's labels as its dataset has them (every
    class; a meta-learned head answers only `ways`), keyed by the task, for build_dataset."""
    from mtlspec.tasks import task_type_class

    cls = task_type_class(section.type)
    return {task: cls(task, cls.classes(section, source), section)}


def is_attribute_task(dataset: Any, task: str) -> bool:
    """Whether the task's labels are attributes (a 0/1 vector a sample), so episodes are binary."""
    return dataset.task_types[task].form is Form.LABEL_PROBABILITIES


def class_index(dataset: Any, task: str) -> dict[int, list[list[int]]]:
    """Sample indices of the split, read from the labels (no image decoded): per class, one group
    (its samples); per attribute of a multilabel task, two (the samples without it, those with it)."""
    tt = dataset.task_types[task]
    name = tt.spec.dataset
    source = dataset.sources[name]
    start = int(dataset.offsets[dataset.names.index(name)])
    attributes = is_attribute_task(dataset, task)
    by_kind: dict[int, list[list[int]]] = {}
    for local in range(len(source)):
        value, present = tt.target({"labels": labels_of(source, local), "meta": {"file": getattr(source, "name", ""), "index": local}})
        if not present:
            continue
        if attributes:
            for j, bit in enumerate(np.asarray(value).reshape(-1) > 0.5):
                by_kind.setdefault(j, [[], []])[int(bit)].append(start + local)
        else:
            by_kind.setdefault(int(value), [[]])[0].append(start + local)
    return by_kind


class EpisodeSampler:
    """Episodes of `task` from `dataset` (a MultiTaskDataset of one split), drawing from `classes`
    (the classes, or the attributes of a multilabel task; all when None); `index` is the split's
    class_index when already read. A class without enough samples for an episode is left out,
    unless `every_class` (classes named by the user): then it is an error naming it."""

    def __init__(self, dataset: Any, task: str, ways: int, shots: int, queries: int, seed: int, classes: list[int] | None = None,
                 split: str = "", index: dict[int, list[list[int]]] | None = None, every_class: bool = False):
        self.dataset, self.task, self.ways, self.shots, self.queries, self.seed = dataset, task, ways, shots, queries, seed
        name = dataset.task_types[task].spec.dataset
        self.attributes = is_attribute_task(dataset, task)
        if self.attributes and ways != 2:
            raise DataError(f"episodes of the multilabel task '{task}' are binary (has the attribute or not): they are 2-way, not {ways}-way", name)
        groups = index if index is not None else class_index(dataset, task)
        allowed = sorted(groups) if classes is None else sorted(set(classes))
        need = shots + queries
        empty = [[], []] if self.attributes else [[]]
        self.groups = {c: [np.asarray(g, np.int64) for g in groups.get(c, empty)] for c in allowed}
        self.classes = [c for c in allowed if all(len(g) >= need for g in self.groups[c])]
        short = [c for c in allowed if c not in self.classes]
        if every_class and short:  # classes asked for by name (held out, `adapt --classes`) are all used, or it is an error
            what = "attribute" if self.attributes else "class"
            counts = ", ".join(f"{c}: {'/'.join(str(len(g)) for g in self.groups[c])}" for c in short)
            raise DataError(f"{shots}-shot episodes with {queries} queries need {need} samples of each group; in the {split or 'split'} "
                            f"of dataset '{name}', {what}(es) {short} have fewer ({counts}"
                            + (" samples without/with" if self.attributes else "") + "): lower shots or queries, or leave them out", name)
        wanted = 1 if self.attributes else ways
        if len(self.classes) < wanted:
            what = "attributes with at least {need} samples with and {need} without" if self.attributes else "classes with at least {need} samples each"
            counts = ", ".join(f"{c}: {'/'.join(str(len(g)) for g in self.groups[c])}" for c in allowed)
            raise DataError(f"{ways}-way {shots}-shot episodes with {queries} queries need {wanted} {what.format(need=need)}; "
                            f"the {split or 'split'} of dataset '{name}' has {len(self.classes)} ({counts}"
                            + (" samples without/with" if self.attributes else "") + ")", name)

    def episode(self, *key: int) -> Episode:
        rng = np.random.default_rng([self.seed, 104729, *key])
        if self.attributes:  # one attribute; its two groups in a random order
            attribute = self.classes[int(rng.integers(len(self.classes)))]
            order = [int(v) for v in rng.permutation(2)]
            chosen, groups = [attribute, attribute], [self.groups[attribute][g] for g in order]
        else:
            chosen = [self.classes[i] for i in rng.choice(len(self.classes), size=self.ways, replace=False)]
            groups = [self.groups[c][0] for c in chosen]
        support, support_labels, query, query_labels = [], [], [], []
        for label, members in enumerate(groups):
            picks = rng.choice(members, size=self.shots + self.queries, replace=False)
            support += [int(i) for i in picks[: self.shots]]
            query += [int(i) for i in picks[self.shots :]]
            support_labels += [label] * self.shots
            query_labels += [label] * self.queries
        return Episode(chosen, support, support_labels, query, query_labels, has=order.index(1) if self.attributes else None)

    def tensors(self, episode: Episode, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(support images, support labels, query images, query labels) on the device."""
        def images(indices: list[int]) -> torch.Tensor:
            return torch.from_numpy(np.stack([self.dataset[i]["image"] for i in indices])).to(device)

        return (images(episode.support), torch.tensor(episode.support_labels, device=device),
                images(episode.query), torch.tensor(episode.query_labels, device=device))
