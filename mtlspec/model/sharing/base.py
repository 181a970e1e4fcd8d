"""What every sharing topology offers the trainer and the weighting methods."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


def pooled(feature: torch.Tensor) -> torch.Tensor:
    """Global average pooling: the vector image-level heads read."""
    return F.adaptive_avg_pool2d(feature, 1).flatten(1)


class Topology(nn.Module, ABC):
    """Maps images to per-task features {"vector": (B, C), "pyramid": [(B, C', H, W), ...]}.

    `shared_parameters()` and `task_parameters(task)` split the trainable parameters; where
    the topology has one shared representation, `forward` stores it in `self.representation`
    (for representation-space gradient methods). `extra_loss()` is a term the trainer adds to
    the weighted task losses (soft sharing's pull between the task networks; 0 for most).
    """

    vector_channels: int
    pyramid_channels: int
    strides: list[int]
    representation: list[torch.Tensor] = []

    @abstractmethod
    def forward(self, images: torch.Tensor) -> dict[str, dict[str, Any]]: ...

    @abstractmethod
    def shared_parameters(self) -> list[nn.Parameter]: ...

    @abstractmethod
    def task_parameters(self, task: str) -> list[nn.Parameter]: ...

    def extra_loss(self) -> torch.Tensor | float:
        return 0.0
