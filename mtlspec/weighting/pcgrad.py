"""PCGrad (Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020), Algorithm 1.

Each task gradient is projected, in a random order of the other tasks, onto the normal plane
of every task gradient it conflicts with (negative inner product); the results are summed.
"""

from __future__ import annotations

import torch

from mtlspec.weighting.base import GradientAggregator


class PCGrad(GradientAggregator):
    def aggregate(self, G, losses):
        projected = []
        for i in range(len(G)):
            g = G[i].clone()
            for j in torch.randperm(len(G)).tolist():
                if j == i:
                    continue
                dot = g @ G[j]
                if dot < 0:
                    g = g - dot / (G[j] @ G[j]).clamp(min=1e-20) * G[j]
            projected.append(g)
        self.last_weights = None
        return torch.stack(projected).sum(dim=0)
