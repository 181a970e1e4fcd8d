"""Backbones as a stem plus a list of stages (so topologies can branch between stages), and necks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtlspec.openmmlab import build_module


class StagedBackbone(nn.Module):
    """A stem and stages; `channels[i]` and `strides[i]` describe the output of stage i."""

    def __init__(self, stem: nn.Module, stages: list[nn.Module], channels: list[int], strides: list[int]):
        super().__init__()
        self.stem, self.stages = stem, nn.ModuleList(stages)
        self.channels, self.strides = channels, strides

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def small_cnn(channels: list[int]) -> StagedBackbone:
    """A stride-2 stem, then one stride-2 stage of two convs per entry of `channels` (strides 4, 8, 16 ...)."""
    stem = _conv(3, channels[0], 2)
    stages, cin = [], channels[0]
    for cout in channels:
        stages.append(nn.Sequential(_conv(cin, cout, 2), _conv(cout, cout, 1)))
        cin = cout
    return StagedBackbone(stem, stages, list(channels), [4 * 2**i for i in range(len(channels))])


def mmdet_resnet(depth: int, base_channels: int, num_stages: int) -> StagedBackbone:
    """MMDetection's ResNet from its registry, split into stem and stages."""
    return mmdet_staged(dict(type="ResNet", depth=depth, base_channels=base_channels, num_stages=num_stages,
                             strides=(1, 2, 2, 2)[:num_stages], dilations=(1,) * num_stages))


def mmdet_staged(config: dict[str, Any]) -> StagedBackbone:
    """A network of MMDetection's ResNet family (ResNet, ResNeXt, RegNet) from its registry, split
    into its stem (conv1, norm, ReLU, and the max-pool where the network has one) and its stages;
    each stage's channels and stride read from a forward pass of a 64 x 64 input (on the device
    the network was built on, the meta device included)."""
    net = build_module({**config, "out_indices": tuple(range(config.get("num_stages", 4))), "norm_eval": False, "frozen_stages": -1})
    stem = nn.Sequential(net.conv1, net.norm1, net.relu, *([net.maxpool] if hasattr(net, "maxpool") else []))
    stages = [getattr(net, name) for name in net.res_layers]
    probe = torch.zeros(1, 3, 64, 64, device=next(net.parameters()).device)
    with torch.no_grad():
        outs = StagedBackbone(stem, stages, [], []).eval()(probe)
    net.train()
    return StagedBackbone(stem, stages, [int(o.shape[1]) for o in outs], [64 // int(o.shape[-1]) for o in outs])


def build_backbone(spec: Any, base: Path | None = None) -> StagedBackbone:
    """The backbone; started from `init.checkpoint` (relative to `base`, the spec file's folder)
    when the spec names one and `base` is given, then frozen as the spec says. `init_report` says
    what was loaded."""
    from mtlspec.model.init import freeze, load_init

    if spec.type == "SmallCNN":
        backbone = small_cnn(list(spec.channels))
    elif spec.type == "ResNet":
        backbone = mmdet_resnet(spec.depth, spec.base_channels, spec.num_stages)
    elif spec.type == "ResNeXt":
        backbone = mmdet_staged(dict(type="ResNeXt", depth=spec.depth, groups=spec.groups, base_width=spec.base_width,
                                     num_stages=spec.num_stages, strides=(1, 2, 2, 2)[: spec.num_stages], dilations=(1,) * spec.num_stages))
    else:
        backbone = mmdet_staged(dict(type="RegNet", arch=spec.arch))
    backbone.init_report = None
    if getattr(spec, "init", None) is not None and base is not None:
        backbone.init_report = load_init(backbone, (base / spec.init.checkpoint).resolve())
    freeze(backbone, getattr(spec, "frozen_stages", -1), getattr(spec, "norm_eval", False))
    return backbone


class Projection(nn.Module):
    """The `none` neck: 1x1 convolutions bringing every level to one channel count, as heads expect."""

    def __init__(self, in_channels: list[int], out_channels: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [conv(f) for conv, f in zip(self.convs, feats)]


def build_neck(spec: Any, in_channels: list[int]) -> tuple[nn.Module, int]:
    """The neck and the channel count of every pyramid level it outputs."""
    if spec.type == "FPN":
        neck = build_module(dict(type="FPN", in_channels=list(in_channels), out_channels=spec.out_channels, num_outs=len(in_channels)))
        return neck, spec.out_channels
    return Projection(in_channels, max(in_channels)), max(in_channels)
