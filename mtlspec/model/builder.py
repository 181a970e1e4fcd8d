"""Compiles a validated spec into a torch model: backbone, sharing topology, one head per task."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mtlspec.model.backbones import build_backbone
from mtlspec.model.sharing import TOPOLOGIES
from mtlspec.tasks.base import TaskType
from mtlspec.tasks.registry import TASK_TYPES


class MultiTaskModel(nn.Module):
    """A topology producing per-task features and a head per task."""

    def __init__(self, topology: nn.Module, heads: dict[str, nn.Module]):
        super().__init__()
        self.topology = topology
        self.heads = nn.ModuleDict(heads)

    def forward(self, images: torch.Tensor) -> dict[str, Any]:
        features = self.topology(images)
        return {task: head(features[task]) for task, head in self.heads.items()}

    def shared_parameters(self) -> list[nn.Parameter]:
        return self.topology.shared_parameters()

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return self.topology.task_parameters(task) + list(self.heads[task].parameters())


def build_topology(spec: Any) -> nn.Module:
    sharing = spec.model.sharing
    return TOPOLOGIES[sharing.type](build_backbone(spec.model.backbone), spec.model.neck, list(spec.tasks), sharing)


def build_task_types(spec: Any, num_classes: dict[str, int]) -> dict[str, TaskType]:
    return {name: TASK_TYPES[t.type](name, num_classes[name], t) for name, t in spec.tasks.items()}


def build_head(task_type: TaskType, topology: nn.Module, spec: Any) -> nn.Module:
    return task_type.build_head(topology.vector_channels, topology.pyramid_channels, topology.strides, spec.data.image_size)


def build_model(spec: Any, num_classes: dict[str, int]) -> tuple[MultiTaskModel, dict[str, TaskType]]:
    """The model and the task-type objects (losses, decoding, metrics) for every task of the spec."""
    topology = build_topology(spec)
    task_types = build_task_types(spec, num_classes)
    heads = {name: build_head(tt, topology, spec) for name, tt in task_types.items()}
    return MultiTaskModel(topology, heads), task_types
