"""Backbones as a stem plus a list of stages (so topologies can branch between stages), and necks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtlspec.openmmlab import build_module


class StagedBackbone(nn.Module):
    """A stem and stages; `channels[i]` and `strides[i]` describe the output of stage i, and
    `stem_channels` the stem's (3 where the stem is empty, as PVT's).

    `out_norms` (Swin) normalise each stage's output where it becomes a feature, off the chain the
    next stage reads: build_neck moves them into the neck, which applies them as MMDetection's Swin
    does before its FPN."""

    def __init__(self, stem: nn.Module, stages: list[nn.Module], channels: list[int], strides: list[int],
                 out_norms: nn.ModuleList | None = None, stem_channels: int = 0):
        super().__init__()
        self.stem, self.stages = stem, nn.ModuleList(stages)
        self.channels, self.strides, self.stem_channels = channels, strides, stem_channels
        self.out_norms = out_norms

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
    return StagedBackbone(stem, stages, list(channels), [4 * 2**i for i in range(len(channels))], stem_channels=channels[0])


def mmdet_resnet(depth: int, base_channels: int, num_stages: int) -> StagedBackbone:
    """MMDetection's ResNet from its registry, split into stem and stages."""
    return mmdet_staged(dict(type="ResNet", depth=depth, base_channels=base_channels, num_stages=num_stages,
                             strides=(1, 2, 2, 2)[:num_stages], dilations=(1,) * num_stages))


def _measured(stem: nn.Module, stages: list[nn.Module], net: nn.Module) -> StagedBackbone:
    """The backbone with each stage's channels and stride read from a forward pass of a 64 x 64
    input (on the device the network was built on, the meta device included)."""
    probe = torch.zeros(1, 3, 64, 64, device=next(net.parameters()).device)
    with torch.no_grad():
        outs = StagedBackbone(stem, stages, [], []).eval()(probe)
        stem_channels = int(stem.eval()(probe).shape[1])
    net.train()
    return StagedBackbone(stem, stages, [int(o.shape[1]) for o in outs], [64 // int(o.shape[-1]) for o in outs], stem_channels=stem_channels)


class TokenStage(nn.Module):
    """One stage of a PVT on feature maps: its patch embedding, transformer layers and norm
    (MMDetection's `layers[i]`, kept whole as `layer` so its checkpoints' names map one to one)."""

    def __init__(self, layer: nn.ModuleList):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from mmdet.models.layers import nlc_to_nchw

        embed, blocks, norm = self.layer
        x, hw = embed(x)
        for block in blocks:
            x = block(x, hw)
        return nlc_to_nchw(norm(x), hw)


def mmdet_pvt(spec: Any) -> StagedBackbone:
    """MMDetection's PVT or PVTv2 from its registry: an empty stem, and its four stages."""
    kind = {"PVT": "PyramidVisionTransformer", "PVTv2": "PyramidVisionTransformerV2"}[spec.type]
    net = build_module(dict(type=kind, embed_dims=spec.embed_dims, num_layers=list(spec.num_layers), num_heads=list(spec.num_heads),
                            mlp_ratios=list(spec.mlp_ratios), sr_ratios=list(spec.sr_ratios), drop_path_rate=spec.drop_path_rate,
                            out_indices=(0, 1, 2, 3)))
    return _measured(nn.Identity(), [TokenStage(layer) for layer in net.layers], net)


def _tokens(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    return x.flatten(2).transpose(1, 2), (int(x.shape[2]), int(x.shape[3]))


def _maps(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *hw)


class SwinStem(nn.Module):
    """Swin's patch embedding (4 x 4 patches, normalised), as a feature map."""

    def __init__(self, patch_embed: nn.Module, drop: nn.Module):
        super().__init__()
        self.patch_embed, self.drop = patch_embed, drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, hw = self.patch_embed(x)
        return _maps(self.drop(x), hw)


class SwinStage(nn.Module):
    """One Swin stage on feature maps: the patch merging that MMDetection keeps at the end of the
    previous stage (`merge`; none in the first), then this stage's shifted-window blocks. Its output
    is the blocks' output before the stage's norm (StagedBackbone.out_norms)."""

    def __init__(self, merge: nn.Module | None, blocks: nn.ModuleList):
        super().__init__()
        self.merge, self.blocks = merge, blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, hw = _tokens(x)
        if self.merge is not None:
            x, hw = self.merge(x, hw)
        for block in self.blocks:
            x = block(x, hw)
        return _maps(x, tuple(hw))


def mmdet_swin(spec: Any) -> StagedBackbone:
    """MMDetection's Swin Transformer from its registry: the patch embedding as the stem, each
    stage's blocks after the previous stage's patch merging, and its output norms."""
    net = build_module(dict(type="SwinTransformer", embed_dims=spec.embed_dims, depths=list(spec.depths), num_heads=list(spec.num_heads),
                            window_size=spec.window_size, drop_path_rate=spec.drop_path_rate, out_indices=(0, 1, 2, 3)))
    merges = [None] + [stage.downsample for stage in net.stages[:-1]]
    stages = [SwinStage(merge, stage.blocks) for merge, stage in zip(merges, net.stages)]
    measured = _measured(SwinStem(net.patch_embed, net.drop_after_pos), stages, net)
    measured.out_norms = nn.ModuleList(getattr(net, f"norm{i}") for i in range(len(stages)))
    return measured


def mmdet_staged(config: dict[str, Any]) -> StagedBackbone:
    """A network of MMDetection's ResNet family (ResNet, ResNeXt, RegNet) from its registry, split
    into its stem (conv1, norm, ReLU, and the max-pool where the network has one) and its stages;
    each stage's channels and stride read from a forward pass of a 64 x 64 input (on the device
    the network was built on, the meta device included)."""
    net = build_module({**config, "out_indices": tuple(range(config.get("num_stages", 4))), "norm_eval": False, "frozen_stages": -1})
    stem = nn.Sequential(net.conv1, net.norm1, net.relu, *([net.maxpool] if hasattr(net, "maxpool") else []))
    return _measured(stem, [getattr(net, name) for name in net.res_layers], net)


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
    elif spec.type in ("PVT", "PVTv2"):
        backbone = mmdet_pvt(spec)
    elif spec.type == "Swin":
        backbone = mmdet_swin(spec)
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


class NormedNeck(nn.Module):
    """A neck that first normalises each level over its channels (a backbone's out_norms: LayerNorm
    per position, as MMDetection's Swin does to its outputs)."""

    def __init__(self, norms: nn.ModuleList, neck: nn.Module):
        super().__init__()
        self.norms, self.neck = norms, neck

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.neck([norm(f.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous() for norm, f in zip(self.norms, feats)])


def build_neck(spec: Any, backbone: StagedBackbone) -> tuple[nn.Module, int]:
    """The neck and the channel count of every pyramid level it outputs (the backbone's out_norms first)."""
    in_channels = backbone.channels
    if spec.type == "FPN":
        neck: nn.Module = build_module(dict(type="FPN", in_channels=list(in_channels), out_channels=spec.out_channels, num_outs=len(in_channels)))
        out = spec.out_channels
    else:
        neck, out = Projection(in_channels, max(in_channels)), max(in_channels)
    if backbone.out_norms is None:
        return neck, out
    norms, backbone.out_norms = backbone.out_norms, None  # the neck owns them now: copies of the backbone carry no unused norms
    return NormedNeck(norms, neck), out
