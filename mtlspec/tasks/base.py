"""What every task type provides, and the masked, weighted mean all losses reduce with.

A task type owns everything about its task that is not the shared network: how its target is read
from a record (and what stands in for it where the sample has none), how targets stack into a
batch, its head and loss, how outputs become predictions (alone, and as an ensemble member's
contribution), its metrics and their directions, and what a model that ignores the image would
predict. Code outside tasks/ asks a task type, never which type it is; ensembles ask for the
`Form` of its predictions (class probabilities, values, boxes ...), which is what combining them
depends on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import Enum
from typing import Any

import numpy as np
import torch
from torch import nn

from mtlspec.data.records import DataError


def masked_mean(per_sample: torch.Tensor, has: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The mean of weight x loss over the samples that carry the task's label; 0 (still in the graph)
    when none do.

    Unlabelled samples contribute nothing: not a zero counted in the mean. Dividing by the count, not
    by the sum of the weights, keeps weights meaningful across batches: weights scaled to a mean of 1
    over the data make this an unbiased estimate of the weighted risk, whatever a batch holds.
    """
    mask = has.to(per_sample.dtype)
    count = mask.sum()
    if count <= 0:
        return per_sample.sum() * 0.0
    return (per_sample * weight.to(per_sample.dtype) * mask).sum() / count


class Form(str, Enum):
    """What a task's predictions are: how ensembles average, vote, stack, boost and fit weights."""

    CLASS_PROBABILITIES = "class probabilities"  # (N, K), each row sums to 1; the target is a class index
    LABEL_PROBABILITIES = "label probabilities"  # (N, L), each in [0, 1]; the target is a 0/1 vector
    VALUES = "values"  # (N,); the target is a number
    CLASS_MAPS = "class maps"  # (N, K, H, W) probabilities while combined, (N, H, W) labels when scored; 255 ignored
    VALUE_MAPS = "value maps"  # (N, H, W); 0 in the target means unknown
    BOXES = "boxes"  # per image {"boxes", "scores", "labels"}
    INSTANCES = "instances"  # per image {"boxes", "scores", "labels", "masks" (n, H, W) bool}
    SEGMENTS = "segments"  # per clip {"segments" (M, 2) [start, end) in frames, "scores", "labels"}
    EMBEDDINGS = "embeddings"  # (image (N, D), text (N, D)), unit length; scored against the whole split, never combined


class TaskType(ABC):
    """One task of a spec, of one type: built with its name, class count and spec section."""

    name: str = ""  # the `type` tag in the spec
    form: Form
    reads: str = "labels"  # the record key its targets come from ("labels": image labels, read without the image)
    replaceable_target = False  # whether data.sample_overrides may give it other targets (boosting's residuals)
    baseline_samples = 500  # training targets its trivial prediction is fitted on (maps and boxes are read by decoding images)
    # Its loss is a mean over the batch's labelled samples: with several ranks, each rank's loss
    # counts by its labelled samples (mtlspec/distributed.py). Object tasks say False: MMDetection
    # normalises their losses by its own counts (positives, sampled RoIs), some across the ranks.
    mean_over_labelled = True
    # Its loss is the whole global batch's on every rank (a contrastive loss whose negatives come
    # from every rank, distributed.gather_rows), each rank's graph reaching its own rows only.
    whole_batch_loss = False
    reads_text = False  # whether the model feeds it a text of each sample (tasks/text_task.py)
    reads_class_text = False  # whether its head embeds its classes' descriptions with the text tower (tasks/zero_shot_text.py)
    episodic = False  # whether N-way K-shot episodes of it can be drawn and a fresh head adapted to them (`mtlspec adapt`)
    # "image": it reads images; "clip": a clip's features pooled over its frames, and their sequence
    # (model/builder.py clip_features); "frame": every frame of a clip as an image (tasks/per_frame.py)
    level = "image"

    def __init__(self, task_name: str, num_classes: int, spec: Any):
        self.task_name, self.num_classes, self.spec = task_name, num_classes, spec

    @classmethod
    def create(cls, task_name: str, spec: Any, source: Any, data_root: Any) -> "TaskType":
        """The task type of a spec's task, from its dataset's training source (and the spec's folder,
        `data_root`, for files the section names)."""
        return cls(task_name, cls.classes(spec, source), spec)

    def saved(self) -> dict[str, Any]:
        """What model.pt keeps of this task type beyond its class count, so that `restore` rebuilds
        it without the training data (a zero-shot task's class descriptions)."""
        return {}

    @classmethod
    def restore(cls, task_name: str, spec: Any, saved: dict[str, Any]) -> "TaskType":
        """The task type again from model.pt's entry for it (`num_classes` and what `saved` gave)."""
        return cls(task_name, int(saved["num_classes"]), spec)

    # --- data ------------------------------------------------------------------------------

    @classmethod
    def classes(cls, spec: Any, source: Any) -> int:
        """The class (or label) count: the spec's, else its dataset's; 0 where it does not apply."""
        given = getattr(spec, "num_classes", None) or getattr(spec, "num_labels", None)
        return given or cls.dataset_classes(spec, source)

    @classmethod
    def dataset_classes(cls, spec: Any, source: Any) -> int:
        return 0

    @classmethod
    def class_names(cls, spec: Any, source: Any) -> list[str] | None:
        """The names of its classes (or labels) where the dataset has them, for predictions people
        read; None where it has none."""
        return None

    @classmethod
    def category_ids(cls, spec: Any, source: Any) -> list[int] | None:
        """The dataset's own ids of its classes where they are not 0..K-1 (COCO category ids), so
        predictions go back in the dataset's terms; None otherwise."""
        return None

    @classmethod
    def holds_out(cls, spec: Any) -> list[dict[str, Any]]:
        """Classes whose training samples no task may train on, as data.held_out_classes entries
        ({dataset, label, classes}): a zero-shot task keeps its unseen classes' images out."""
        return []

    @property
    def image_level(self) -> bool:
        """Whether its targets are image labels, which a source can give without decoding the image."""
        return self.reads == "labels"

    @abstractmethod
    def target(self, record: dict[str, Any]) -> tuple[Any, bool]:
        """(target, True) from a record of the task's dataset, or (None, False) where it has no
        label for this task; DataError (file and sample named) for a label that cannot be one."""

    @abstractmethod
    def placeholder(self, image_size: int) -> Any:
        """What stands in a batch for the target of a sample without the label (no loss or metric reads it)."""

    def collate(self, targets: list[Any]) -> Any:
        """The batch's targets, stacked."""
        return torch.from_numpy(np.stack(targets))

    # --- model -----------------------------------------------------------------------------

    @abstractmethod
    def build_head(self, vector_channels: int, pyramid_channels: int, strides: list[int], image_size: int) -> nn.Module:
        ...

    @abstractmethod
    def loss(self, output: Any, target: Any, has: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ...

    @abstractmethod
    def predict(self, output: Any, image_size: int) -> Any:
        """The prediction its metric scores."""

    def output_problem(self, output: Any, batch: int, image_size: int, strides: list[int]) -> str | None:
        """Why a head's output for a batch of this size is not what the task needs, or None."""
        expected = self.output_shape(batch, image_size)
        return None if tuple(output.shape) == expected else f"the head outputs {tuple(output.shape)}, expected {expected}"

    def output_shape(self, batch: int, image_size: int) -> tuple[int, ...]:
        return (batch, self.num_classes)

    def describe(self) -> str:
        """The head in a few words, for `mtlspec graph`."""
        return self.name

    # --- ensembles -------------------------------------------------------------------------

    def member_prediction(self, output: Any, image_size: int) -> Any:
        """What an ensemble member contributes (probabilities where `predict` gives labels)."""
        return self.predict(output, image_size)

    def scored(self, combined: Any) -> Any:
        """A combined (or a member's) contribution in the form the metric scores."""
        return combined

    # --- evaluation ------------------------------------------------------------------------

    @property
    def directions(self) -> dict[str, bool]:
        """Whether a higher value is better, for each metric the type can report."""
        return dict(type(self.spec).DIRECTIONS)

    @abstractmethod
    def metric(self) -> "Metric":
        ...

    @abstractmethod
    def trivial_prediction(self, train_targets: list[Any], count: int, image_size: int) -> Any:
        """What a model that ignores the image predicts: the baseline a report shows beside the metrics."""

    def trivial_for_batch(self, train_targets: list[Any], batch_targets: Any, count: int, image_size: int) -> Any:
        """The trivial prediction for one evaluation batch; a type whose baseline reads an input
        of the sample other than the image (a VQA question's type) overrides this."""
        return self.trivial_prediction(train_targets, count, image_size)


class ImageLabelTask(TaskType):
    """A task whose target is one named label of the image (`record["labels"][label]`)."""

    reads = "labels"

    def target(self, record):
        value = record.get("labels", {}).get(self.spec.label)
        if value is None:
            return None, False
        return self.decode(value, record["meta"].get("file"), record["meta"].get("index")), True

    @abstractmethod
    def decode(self, value: Any, file: str | None, sample: Any) -> Any:
        """The target from the label's value; DataError naming the file and sample when it is not one."""

    @classmethod
    def class_names(cls, spec, source):
        names = getattr(source, "label_names", None)
        return names(spec.label) if names is not None else None

    def _fail(self, message: str, file: str | None, sample: Any) -> DataError:
        return DataError(f"label '{self.spec.label}' {message}", file, sample)


class Metric(ABC):
    """Accumulates predictions and targets of labelled samples; `compute()` gives {name: value}."""

    @abstractmethod
    def update(self, prediction: Any, target: Any, has: torch.Tensor) -> None:
        ...

    @abstractmethod
    def compute(self) -> dict[str, float]:
        ...

    def details(self) -> dict[str, Any] | None:
        """After `compute`, what the report shows beyond the scalar metrics (per-class scores, a
        confusion matrix, precision-recall curves), as JSON-ready lists; None where nothing applies."""
        return None


def confusion_details(confusion: torch.Tensor) -> dict[str, Any]:
    """A confusion matrix (rows true, columns predicted) with each class's recall and precision
    (None for a class never true, or never predicted)."""
    c = confusion.double()
    tp, true, predicted = c.diag(), c.sum(1), c.sum(0)
    return {"confusion": confusion.tolist(),
            "recall": [float(a / b) if b else None for a, b in zip(tp, true)],
            "precision": [float(a / b) if b else None for a, b in zip(tp, predicted)]}
