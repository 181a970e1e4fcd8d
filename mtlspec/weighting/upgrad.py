"""UPGrad (Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization", 2024).

Each task gradient, scaled by 1/T, is projected onto the dual cone of all task gradients
{x : G x >= 0}; the projections are summed. In weight space the projection of G^T u is G^T w
with w = argmin_{v >= u} v^T (G G^T) v, solved exactly (qp.lower_bounded_min).
"""

from __future__ import annotations

import numpy as np
import torch

from mtlspec.weighting.base import GradientAggregator, weighted
from mtlspec.weighting.qp import lower_bounded_min


class UPGrad(GradientAggregator):
    def aggregate(self, G, losses):
        T = len(G)
        K = (G.double() @ G.double().T).cpu().numpy()
        w = np.zeros(T)
        for i in range(T):
            u = np.zeros(T)
            u[i] = 1.0 / T
            w += lower_bounded_min(K, u)
        return weighted(G, torch.as_tensor(w, dtype=G.dtype, device=G.device), self)
