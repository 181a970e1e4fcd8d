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
        P = 0.5 * (1.0 + G.sum(dim=0) / G.abs().sum(dim=0).clamp(min=1e-20))
        U = torch.rand(P.shape, dtype=G.dtype, device=G.device)
        keep = ((P > U) & (G > 0)) | ((P < U) & (G < 0))
        leak = self.spec.leak
        self.last_weights = None
        return (G * (leak + (1.0 - leak) * keep.to(G.dtype))).sum(dim=0)
