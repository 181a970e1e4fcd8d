"""Cross-attention fusion: the text's tokens attend to the image's positions.

A pyramid level (model.fusion.spatial_level) becomes a sequence of positions, projected to
`hidden` with a learned position embedding (so where a digit is stays known); the text's token
features, projected to `hidden`, pass `layers` transformer decoder layers (self-attention over the
text with its padding masked, then attention to every image position, then an MLP), as the
co-attention layers of LXMERT and ViLBERT let language query vision. The fused vector is the mean
of the valid tokens' outputs."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mtlspec.model.fusion import spatial_level


class CrossAttentionFusion(nn.Module):
    def __init__(self, spec: Any, vector_channels: int, pyramid_channels: int, strides: list[int], image_size: int, text_width: int):
        super().__init__()
        hidden = spec.hidden
        heads = next(h for h in (8, 4, 2, 1) if hidden % h == 0)
        self.level, side = spatial_level(strides, image_size)
        self.image = nn.Linear(pyramid_channels, hidden)
        self.position = nn.Parameter(torch.zeros(1, (side + 1) ** 2, hidden))  # room for a level one position wider than image_size / stride
        nn.init.normal_(self.position, std=0.02)
        self.text = nn.Linear(text_width, hidden)
        layer = nn.TransformerDecoderLayer(hidden, heads, dim_feedforward=2 * hidden, dropout=0.0, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, spec.layers)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, features: dict[str, Any], text: Any) -> torch.Tensor:
        level = features["pyramid"][self.level]
        memory = self.image(level.flatten(2).transpose(1, 2))  # (N, H*W, hidden)
        memory = memory + self.position[:, : memory.shape[1]]
        valid = text.valid
        out = self.norm(self.decoder(self.text(text.tokens), memory, tgt_key_padding_mask=~valid))
        weights = valid.to(out.dtype).unsqueeze(-1)
        return (out * weights).sum(1) / weights.sum(1).clamp(min=1.0)
