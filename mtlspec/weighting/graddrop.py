"""GradDrop (Chen et al., "Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign
Dropout", NeurIPS 2020).

Per coordinate, the positive-sign purity P = (1 + sum g / sum |g|) / 2 and a uniform draw U keep
the positive parts where P > U and the negative parts where P < U; `leak` lets that share of
each task's full gradient through. The paper applies it at the shared representation.
"""

from __future__ import annotations

import torch

from mtlspec.weighting.base import GradientAggregator


class GradDrop(GradientAggregator):
    def aggregate(self, G, losses, active=None):
        """The mask is the same for every task at a coordinate, so the kept sum is the mask times
        the column sums of the positive (or negative) parts: two passes over G, no (T x P) masks."""
        positive = G.clamp(min=0).sum(dim=0)
        total = G.sum(dim=0)
        negative = total - positive
        P = 0.5 * (1.0 + total / (positive - negative).clamp(min=1e-20))
        U = torch.rand(P.shape, dtype=G.dtype, device=G.device)
        kept = torch.where(P > U, positive, torch.zeros_like(positive)) + torch.where(P < U, negative, torch.zeros_like(negative))
        leak = self.spec.leak
        self.last_weights = None
        return leak * total + (1.0 - leak) * kept if leak else kept
