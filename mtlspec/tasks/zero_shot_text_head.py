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


def drop_words(ids: torch.Tensor, p: float) -> torch.Tensor:
    """Each word token (not <pad>, <bos>, <eos>) replaced by <pad> with probability p, the words
    left moved to the front so the text stays one run: each phrase must carry its meaning alone
    (word dropout, Iyyer et al., ACL 2015), not only in the company of its class's other phrases.
    Drawn from torch's global generator, which the run seeds."""
    word = ids > 3
    keep = ~word | (torch.rand(ids.shape, device=ids.device) >= p)
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices
    return torch.where(keep, ids, torch.zeros_like(ids)).gather(1, order)


class TextMatchHead(nn.Module):
    """Outputs (logits (N, K), penalty 0): every class's scaled cosine with each image."""

    def __init__(self, vector_channels: int, hidden: int, text_width: int, embedding: int, description_ids: torch.Tensor,
                 owner: torch.Tensor, seen: torch.Tensor, temperature: float, word_dropout: float = 0.0, centre: bool = True):
        super().__init__()
        self.image = nn.Sequential(nn.Linear(vector_channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, embedding))
        self.text = nn.Linear(text_width, embedding)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        self.num_classes, self.word_dropout, self.centre = len(seen), word_dropout, centre
        self.register_buffer("seen", seen.clone(), persistent=False)  # (K,) bool
        self.register_buffer("description_ids", description_ids.clone(), persistent=False)  # (M, L)
        self.register_buffer("owner", owner.clone(), persistent=False)  # (M,) the class each description describes

    def class_embeddings(self, tower: Any) -> torch.Tensor:
        """(K, D) unit vectors: the mean of each class's description embeddings, renormalised."""
        device = self.log_scale.device  # the buffers stay on the CPU when a shape check builds the model on `meta`
        ids = self.description_ids.to(device)
        if self.training and self.word_dropout > 0 and device.type != "meta":
            ids = drop_words(ids, self.word_dropout)
        words = F.normalize(self.text(tower(ids).vector).float(), dim=1)
        total = words.new_zeros((self.num_classes, words.shape[1])).index_add(0, self.owner.to(device), words)
        classes = F.normalize(total, dim=1)
        if self.centre:  # centred on the seen classes' mean, as the attribute methods centre their table
            weights = self.seen.to(device=device, dtype=classes.dtype)
            classes = classes - (weights @ classes / weights.sum()).unsqueeze(0)
        return F.normalize(classes, dim=1)

    def forward(self, features: dict[str, Any], tower: Any) -> tuple[torch.Tensor, torch.Tensor]:
        image = F.normalize(self.image(features["vector"]).float(), dim=1)
        logits = self.log_scale.clamp(max=MAX_LOG_SCALE).exp() * image @ self.class_embeddings(tower).t()
        return logits, logits.new_zeros(())
