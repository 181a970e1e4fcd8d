"""Cross-stitch networks (Misra et al., "Cross-stitch Networks for Multi-task Learning", CVPR 2016).

One network per task; after every stage a cross-stitch unit mixes the tasks' feature maps
with a learned T x T matrix (initialised to `init_self` on the diagonal, the rest shared out).
Because the units mix every stage, every task's loss reaches every task's network: the
networks and the units are the shared parameters; only each task's neck is its own.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from mtlspec.model.backbones import build_neck
from mtlspec.model.sharing.base import Topology, pooled


class CrossStitch(Topology):
    def __init__(self, backbone, neck_spec, tasks, sharing=None):
        super().__init__()
        self.tasks = tasks
        T = len(tasks)
        init_self = sharing.init_self if sharing is not None else 0.9
        neck, self.pyramid_channels = build_neck(neck_spec, backbone)
        self.vector_channels, self.strides = backbone.channels[-1], backbone.strides
        self.stems = nn.ModuleDict({t: copy.deepcopy(backbone.stem) for t in tasks})
        self.stages = nn.ModuleDict({t: copy.deepcopy(backbone.stages) for t in tasks})
        self.necks = nn.ModuleDict({t: copy.deepcopy(neck) for t in tasks})
        other = (1.0 - init_self) / max(T - 1, 1)
        start = torch.full((T, T), other) + torch.eye(T) * (init_self - other) if T > 1 else torch.ones(1, 1)
        self.units = nn.ParameterList(nn.Parameter(start.clone()) for _ in backbone.stages)

    def forward(self, images):
        xs = [self.stems[t](images) for t in self.tasks]
        feats: list[list[torch.Tensor]] = [[] for _ in self.tasks]
        for s, unit in enumerate(self.units):
            ys = [self.stages[t][s](x) for t, x in zip(self.tasks, xs)]
            stacked = torch.stack(ys)  # (T, B, C, H, W)
            xs = list(torch.einsum("tu,ubchw->tbchw", unit, stacked))
            for i, x in enumerate(xs):
                feats[i].append(x)
        return {t: {"vector": pooled(f[-1]), "pyramid": list(self.necks[t](f))} for t, f in zip(self.tasks, feats)}

    def shared_parameters(self):
        return [*self.units, *self.stems.parameters(), *self.stages.parameters()]

    def task_parameters(self, task):
        return list(self.necks[task].parameters())
