"""MTAN (Liu, Johns, Davison, "End-to-End Multi-Task Learning with Attention", CVPR 2019).

A shared trunk, and per task a soft-attention module at every stage: the mask
sigmoid(conv(BN-ReLU(conv([shared_s ; previous task feature])))) selects from the shared
features of stage s; the masked features (a pyramid) go to the task's own neck.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from mtlspec.model.backbones import build_neck
from mtlspec.model.sharing.base import Topology, pooled


class Attention(nn.Module):
    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(in_channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
                                 nn.Conv2d(channels, channels, 1), nn.Sigmoid())

    def forward(self, shared: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        inputs = shared if previous is None else torch.cat([shared, pool_to(previous, shared.shape[-2:])], dim=1)
        return self.net(inputs) * shared


def pool_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Average-pool x to `size`: a fixed window where the sizes divide (the same values as adaptive
    pooling, and a graph ONNX can export), adaptive pooling otherwise."""
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h % int(size[0]) == 0 and w % int(size[1]) == 0:
        return F.avg_pool2d(x, (h // int(size[0]), w // int(size[1])))
    return F.adaptive_avg_pool2d(x, size)


class MTAN(Topology):
    def __init__(self, backbone, neck_spec, tasks, sharing=None):
        super().__init__()
        self.tasks = tasks
        self.backbone = backbone
        neck, self.pyramid_channels = build_neck(neck_spec, backbone)
        self.vector_channels, self.strides = backbone.channels[-1], backbone.strides
        channels = backbone.channels
        self.attention = nn.ModuleDict({
            t: nn.ModuleList(Attention(c + (channels[s - 1] if s else 0), c) for s, c in enumerate(channels)) for t in tasks
        })
        self.necks = nn.ModuleDict({t: copy.deepcopy(neck) for t in tasks})

    def forward(self, images):
        shared = self.backbone(images)
        out = {}
        for t in self.tasks:
            feats, previous = [], None
            for module, feature in zip(self.attention[t], shared):
                previous = module(feature, previous)
                feats.append(previous)
            out[t] = {"vector": pooled(feats[-1]), "pyramid": list(self.necks[t](feats))}
        return out

    def shared_parameters(self):
        return list(self.backbone.parameters())

    def task_parameters(self, task):
        return [*self.attention[task].parameters(), *self.necks[task].parameters()]
