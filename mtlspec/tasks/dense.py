"""The light decoder that segmentation and depth share: pyramid levels upsampled, summed, refined."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


class PyramidDecoder(nn.Module):
    """Every pyramid level resized to the finest one and summed, two convs, then upsampled to the image."""

    def __init__(self, channels: int, outputs: int, image_size: int, hidden: int = 64):
        super().__init__()
        self.image_size = image_size
        self.refine = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, outputs, 1),
        )

    def forward(self, features: dict[str, Any]) -> torch.Tensor:
        levels = features["pyramid"]
        size = levels[0].shape[-2:]
        fused = levels[0]
        for level in levels[1:]:
            fused = fused + F.interpolate(level, size=size, mode="bilinear", align_corners=False)
        return F.interpolate(self.refine(fused), size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
