"""Hard parameter sharing: one trunk for every task; after `branch_at` stages each task has its own copy."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mtlspec.model.backbones import StagedBackbone, build_neck
from mtlspec.model.sharing.base import Topology


class Branch(nn.Module):
    """The stages after the branch point and the neck: a task's private copy (or the shared one)."""

    def __init__(self, stages: list[nn.Module], neck: nn.Module):
        super().__init__()
        self.stages, self.neck = nn.ModuleList(stages), neck

    def forward(self, x: torch.Tensor, trunk_feats: list[torch.Tensor]) -> dict[str, Any]:
        feats = list(trunk_feats)
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return {"vector": F.adaptive_avg_pool2d(feats[-1], 1).flatten(1), "pyramid": list(self.neck(feats))}


class HardParameterSharing(Topology):
    def __init__(self, backbone: StagedBackbone, neck_spec: Any, tasks: list[str], sharing: Any = None):
        super().__init__()
        n = len(backbone.stages)
        branch_at = getattr(sharing, "branch_at", None)
        self.branch_at = n if branch_at is None else branch_at
        self.tasks = tasks
        self.stem = backbone.stem
        self.trunk = nn.ModuleList(backbone.stages[: self.branch_at])
        neck, self.pyramid_channels = build_neck(neck_spec, backbone)
        tail = list(backbone.stages[self.branch_at :])
        self.vector_channels = backbone.channels[-1]
        self.strides = backbone.strides
        if self.branch_at == n:  # the whole backbone and the neck are shared
            self.shared_branch = Branch([], neck)
            self.branches = nn.ModuleDict()
        else:
            self.shared_branch = None
            self.branches = nn.ModuleDict({t: Branch(copy.deepcopy(tail), copy.deepcopy(neck)) for t in tasks})
        self.representation: list[torch.Tensor] = []

    def forward(self, images: torch.Tensor) -> dict[str, dict[str, Any]]:
        x = self.stem(images)
        feats = []
        for stage in self.trunk:
            x = stage(x)
            feats.append(x)
        if self.shared_branch is not None:
            shared = self.shared_branch(x, feats)
            self.representation = [shared["vector"], *shared["pyramid"]]
            return {t: shared for t in self.tasks}
        self.representation = [x]
        return {t: self.branches[t](x, feats) for t in self.tasks}

    def shared_parameters(self) -> list[nn.Parameter]:
        modules = [self.stem, self.trunk] + ([self.shared_branch] if self.shared_branch is not None else [])
        return [p for m in modules for p in m.parameters()]

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return list(self.branches[task].parameters()) if task in self.branches else []
