"""Late fusion: the image's pooled vector and the text's vector, each projected to `hidden`, meet
in an MLP over [image, text, image x text] (the element-wise product is the bilinear term of
Kim et al.'s MLB; the concatenation alone would leave every interaction to the MLP)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class LateFusion(nn.Module):
    def __init__(self, spec: Any, vector_channels: int, pyramid_channels: int, strides: list[int], image_size: int, text_width: int):
        super().__init__()
        hidden = spec.hidden
        self.image = nn.Linear(vector_channels, hidden)
        self.text = nn.Linear(text_width, hidden)
        layers: list[nn.Module] = []
        width = 3 * hidden
        for _ in range(spec.layers):
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        self.mlp = nn.Sequential(*layers)

    def forward(self, features: dict[str, Any], text: Any) -> torch.Tensor:
        image, words = torch.relu(self.image(features["vector"])), torch.relu(self.text(text.vector))
        return self.mlp(torch.cat([image, words, image * words], dim=1))
