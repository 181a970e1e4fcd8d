"""IMTL-G (Liu et al., "Towards Impartial Multi-task Learning", ICLR 2021).

The aggregated gradient g = sum_t a_t g_t has equal projections onto every unit task gradient
u_t. With D = [g_1 - g_t]_{t>1} and U = [u_1 - u_t]_{t>1}: a_{2..T} = g_1 U^T (D U^T)^{-1},
a_1 = 1 - sum_{t>1} a_t (the paper's closed form).
"""

from __future__ import annotations

import torch

from mtlspec.weighting.base import GradientAggregator, weighted


class IMTL(GradientAggregator):
    def aggregate(self, G, losses):
        Gd = G.double()
        U = Gd / Gd.norm(dim=1, keepdim=True).clamp(min=1e-20)
        if len(G) == 1:
            return weighted(G, torch.ones(1, dtype=G.dtype, device=G.device), self)
        D = Gd[:1] - Gd[1:]
        Ud = U[:1] - U[1:]
        rest = Gd[0] @ Ud.T @ torch.linalg.pinv(D @ Ud.T)
        alpha = torch.cat([1 - rest.sum().reshape(1), rest])
        return weighted(G, alpha.to(G.dtype), self)
