"""How a backbone sees time (`model.temporal`): every frame of a clip goes through the 2D backbone as
an image of a batch of N x T, and the modules here, placed inside its stages, exchange information
between the T frames of each clip.

- `pool` (TSN, Wang et al., ECCV 2016) adds nothing: frames stay independent until clip tasks
  average their features.
- `tsm` (TSM, Lin et al., ICCV 2019): `TemporalShift` moves 1/fold_div of the channels one frame
  back and 1/fold_div one frame forward, zero-filled at the clip's ends, before the first
  convolution of every residual block (the paper's residual shift); in a stage without residual
  blocks, at the stage's input (the in-place shift). No parameters.
- `r2plus1d` (Tran et al., CVPR 2018): `Block2Plus1D`, residual blocks of a 3 x 3 spatial and a
  3-frame temporal convolution, appended to the last stage.

The modules are put in after a pretrained checkpoint is loaded (model/init.py), so checkpoint names
are the 2D backbone's. Frames of a clip are consecutive in the batch: (N x T, C, H, W) is N clips of
T frames.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def temporal_shift(x: torch.Tensor, frames: int, fold_div: int) -> torch.Tensor:
    """TSM's shift of (N x T, C, H, W): channels [0, C/fold_div) take the next frame's values,
    [C/fold_div, 2C/fold_div) the previous frame's, the rest stay; zeros where there is no frame."""
    nt, c, h, w = x.shape
    x5 = x.view(nt // frames, frames, c, h, w)
    fold = c // fold_div
    out = torch.zeros_like(x5)
    out[:, :-1, :fold] = x5[:, 1:, :fold]  # frame t sees frame t + 1
    out[:, 1:, fold : 2 * fold] = x5[:, :-1, fold : 2 * fold]  # frame t sees frame t - 1
    out[:, :, 2 * fold :] = x5[:, :, 2 * fold :]
    return out.view(nt, c, h, w)


class TemporalShift(nn.Module):
    """temporal_shift as a module (no parameters)."""

    def __init__(self, frames: int, fold_div: int):
        super().__init__()
        self.frames, self.fold_div = frames, fold_div

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return temporal_shift(x, self.frames, self.fold_div)

    def extra_repr(self) -> str:
        return f"frames={self.frames}, fold_div={self.fold_div}"


class Shifted(nn.Module):
    """A module whose input is shifted in time first (a residual block's first convolution)."""

    def __init__(self, shift: TemporalShift, module: nn.Module):
        super().__init__()
        self.shift, self.module = shift, module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(self.shift(x))


class Block2Plus1D(nn.Module):
    """x + BN(temporal conv(ReLU(BN(spatial conv(x))))), then ReLU; the temporal convolution spans
    three frames (zero-padded at the ends). As wide as its input (the paper widens the middle to
    match a 3D block's parameters; this block is an addition to a 2D backbone, not a replacement)."""

    def __init__(self, channels: int, frames: int):
        super().__init__()
        self.frames = frames
        self.spatial = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.temporal = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0), bias=False)
        self.norm = nn.BatchNorm3d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nt, c, h, w = x.shape
        y = self.spatial(x).view(nt // self.frames, self.frames, c, h, w).transpose(1, 2)  # (N, C, T, H, W)
        y = self.norm(self.temporal(y)).transpose(1, 2).reshape(nt, c, h, w)
        return torch.relu(x + y)


def _residual_blocks(stage: nn.Module) -> list[nn.Module]:
    """The residual blocks of a stage that start with `conv1` (MMDetection's BasicBlock, Bottleneck)."""
    return [m for m in stage.modules() if isinstance(getattr(m, "conv1", None), nn.Module) and hasattr(m, "downsample")]


def make_temporal(backbone: Any, spec: Any, frames: int) -> Any:
    """Put the spec's temporal modules into the backbone's stages (in place); returns the backbone."""
    if spec is None or spec.type == "pool":
        return backbone
    if spec.type == "tsm":
        for i, stage in enumerate(backbone.stages):
            blocks = _residual_blocks(stage)
            for block in blocks:
                block.conv1 = Shifted(TemporalShift(frames, spec.fold_div), block.conv1)
            if not blocks:
                backbone.stages[i] = nn.Sequential(TemporalShift(frames, spec.fold_div), stage)
        return backbone
    device = next(backbone.parameters()).device
    last = backbone.channels[-1]
    blocks = [Block2Plus1D(last, frames).to(device) for _ in range(spec.blocks)]
    backbone.stages[-1] = nn.Sequential(backbone.stages[-1], *blocks)
    return backbone
