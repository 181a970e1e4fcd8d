"""The head of text-embedding zero-shot matching: images and class descriptions in one space.

The pooled image features and the text tower's vector of every description are projected into
one space, unit length; a class's embedding is the mean of its descriptions' (renormalised, as CLIP
averages its prompt ensemble, Radford et al. 2021, section 3.1.4); an image scores each class by
their cosine at a learned temperature (CLIP's start 0.07, floored at 0.01). The descriptions'
token ids are a buffer of the head: every forward pass embeds them again, so the text tower learns
from the seen classes' descriptions and reads the unseen ones' with what it learned.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

MAX_LOG_SCALE = math.log(100.0)


class TextMatchHead(nn.Module):
    """Outputs (logits (N, K), penalty 0): every class's scaled cosine with each image."""

    def __init__(self, vector_channels: int, hidden: int, text_width: int, embedding: int, description_ids: torch.Tensor,
                 owner: torch.Tensor, num_classes: int, temperature: float):
        super().__init__()
        self.image = nn.Sequential(nn.Linear(vector_channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, embedding))
        self.text = nn.Linear(text_width, embedding)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        self.num_classes = num_classes
        self.register_buffer("description_ids", description_ids.clone(), persistent=False)  # (M, L)
        self.register_buffer("owner", owner.clone(), persistent=False)  # (M,) the class each description describes

    def class_embeddings(self, tower: Any) -> torch.Tensor:
        """(K, D) unit vectors: the mean of each class's description embeddings, renormalised."""
        words = F.normalize(self.text(tower(self.description_ids).vector).float(), dim=1)
        total = words.new_zeros((self.num_classes, words.shape[1])).index_add(0, self.owner, words)
        return F.normalize(total, dim=1)

    def forward(self, features: dict[str, Any], tower: Any) -> tuple[torch.Tensor, torch.Tensor]:
        image = F.normalize(self.image(features["vector"]).float(), dim=1)
        logits = self.log_scale.clamp(max=MAX_LOG_SCALE).exp() * image @ self.class_embeddings(tower).t()
        return logits, logits.new_zeros(())
