"""FiLM (Perez et al., "FiLM: Visual Reasoning with a General Conditioning Layer", AAAI 2018): the
text sets a per-channel scale and shift of the image's feature map.

A pyramid level (model.fusion.spatial_level) is projected to `hidden` channels, with two
coordinate channels appended as the paper does; then `layers` residual blocks, each
conv1x1-ReLU-conv3x3-BN-FiLM-ReLU plus its input, where FiLM is (1 + gamma) x + beta with gamma
and beta a linear map of the text's vector (gamma around 0 at the start, so a block starts as a
plain residual block). Max-pooled over positions, as the paper's classifier pools."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mtlspec.model.fusion import spatial_level


def coordinates(x: torch.Tensor) -> torch.Tensor:
    """x with two channels appended: each position's column and row, from -1 to 1."""
    n, _, h, w = x.shape
    ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(n, 1, h, w)
    xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w).expand(n, 1, h, w)
    return torch.cat([x, xs, ys], dim=1)


class FiLMBlock(nn.Module):
    def __init__(self, channels: int, text_width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels + 2, channels, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm = nn.BatchNorm2d(channels, affine=False)  # FiLM supplies the affine part
        self.film = nn.Linear(text_width, 2 * channels)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, text_vector: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv1(coordinates(x)))
        gamma, beta = self.film(text_vector).chunk(2, dim=1)
        h = self.norm(self.conv2(h)) * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
        return x + torch.relu(h)


class FiLMFusion(nn.Module):
    def __init__(self, spec: Any, vector_channels: int, pyramid_channels: int, strides: list[int], image_size: int, text_width: int):
        super().__init__()
        self.level, _ = spatial_level(strides, image_size)
        self.stem = nn.Sequential(nn.Conv2d(pyramid_channels + 2, spec.hidden, 3, padding=1), nn.ReLU(inplace=True))
        self.blocks = nn.ModuleList(FiLMBlock(spec.hidden, text_width) for _ in range(spec.layers))

    def forward(self, features: dict[str, Any], text: Any) -> torch.Tensor:
        x = self.stem(coordinates(features["pyramid"][self.level]))
        for block in self.blocks:
            x = block(x, text.vector)
        return x.amax(dim=(2, 3))
