"""MGDA (Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018).

The common descent direction is the min-norm point of the convex hull of the (normalised)
task gradients; the update is sum_t a_t g_t with those coefficients. With `space:
representation` the gradients are taken at the shared representation: the paper's MGDA-UB.
Normalisations as in the paper's code: none, l2 (g/|g|), loss (g/L), loss+ (g/(L |g|)).
The min-norm problem is solved exactly (qp.simplex_min_norm), not by Frank-Wolfe iterations.
"""

from __future__ import annotations

import torch

from mtlspec.weighting.base import GradientAggregator, weighted
from mtlspec.weighting.qp import simplex_min_norm


class MGDA(GradientAggregator):
    def aggregate(self, G, losses):
        norm = self.spec.normalization
        scale = torch.ones(len(G), dtype=G.dtype, device=G.device)
        if norm in ("l2", "loss+"):
            scale = scale / G.norm(dim=1).clamp(min=1e-12)
        if norm in ("loss", "loss+"):
            scale = scale / losses.to(G.dtype).clamp(min=1e-12)
        Gn = G * scale[:, None]
        K = (Gn @ Gn.T).double().cpu().numpy()
        alpha = torch.as_tensor(simplex_min_norm(K), dtype=G.dtype, device=G.device)
        return weighted(G, alpha, self)
