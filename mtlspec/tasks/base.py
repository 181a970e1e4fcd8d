"""What every task type provides, and the masked, weighted mean all losses reduce with."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn


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


class TaskType(ABC):
    """A task type: builds its head and turns head outputs into losses, predictions and metrics."""

    name: str = ""
    metrics: tuple[str, ...] = ()

    def __init__(self, task_name: str, num_classes: int, spec: Any):
        self.task_name, self.num_classes, self.spec = task_name, num_classes, spec

    @abstractmethod
    def build_head(self, vector_channels: int, pyramid_channels: int, strides: list[int], image_size: int) -> nn.Module:
        ...

    @abstractmethod
    def loss(self, output: Any, target: Any, has: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ...

    @abstractmethod
    def predict(self, output: Any, image_size: int) -> Any:
        ...

    @abstractmethod
    def metric(self) -> "Metric":
        ...

    @abstractmethod
    def trivial_prediction(self, train_targets: list[Any], count: int, image_size: int) -> Any:
        """What a model that ignores the image predicts: the baseline a report shows beside the metrics."""
        ...


class Metric(ABC):
    """Accumulates predictions and targets of labelled samples; `compute()` gives {name: value}."""

    @abstractmethod
    def update(self, prediction: Any, target: Any, has: torch.Tensor) -> None:
        ...

    @abstractmethod
    def compute(self) -> dict[str, float]:
        ...
