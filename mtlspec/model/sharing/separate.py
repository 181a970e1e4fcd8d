"""Separate networks: one full backbone and neck per task, nothing shared (the single-task baselines)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from mtlspec.model.backbones import StagedBackbone, build_neck
from mtlspec.model.sharing.base import Topology, pooled


class Tower(nn.Module):
    """One task's own network: stem, stages and neck."""

    def __init__(self, backbone: StagedBackbone, neck: nn.Module):
        super().__init__()
        self.backbone, self.neck = backbone, neck

    def forward(self, images: torch.Tensor) -> dict[str, Any]:
        feats = self.backbone(images)
        return {"vector": pooled(feats[-1]), "pyramid": list(self.neck(feats))}


class Separate(Topology):
    def __init__(self, backbone: StagedBackbone, neck_spec: Any, tasks: list[str], sharing: Any = None):
        super().__init__()
        neck, self.pyramid_channels = build_neck(neck_spec, backbone)
        self.vector_channels, self.strides = backbone.channels[-1], backbone.strides
        self.towers = nn.ModuleDict({t: Tower(copy.deepcopy(backbone), copy.deepcopy(neck)) for t in tasks})

    def forward(self, images):
        return {t: tower(images) for t, tower in self.towers.items()}

    def shared_parameters(self):
        return []

    def task_parameters(self, task):
        return list(self.towers[task].parameters())
