"""CAGrad (Liu et al., "Conflict-Averse Gradient Descent for Multi-task Learning", NeurIPS 2021).

With g0 the average gradient and phi = c^2 |g0|^2, find w on the simplex minimising
g_w^T g0 + sqrt(phi) |g_w| (g_w = sum w_t g_t); the update is g0 + sqrt(phi) / |g_w| g_w,
divided by 1 + c^2 when rescale = 1 (the paper's code), by 1 + c when rescale = 2, left as is
when rescale = 0. The inner problem is solved in the T-dimensional Gramian space.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

from mtlspec.weighting.base import GradientAggregator, weighted


class CAGrad(GradientAggregator):
    def aggregate(self, G, losses):
        T, c = len(G), self.spec.c
        K = (G.double() @ G.double().T).cpu().numpy()
        mean_w = np.full(T, 1.0 / T)
        g0_norm = float(np.sqrt(max(mean_w @ K @ mean_w, 0.0)))
        sqrt_phi = c * g0_norm

        def objective(w: np.ndarray) -> float:
            return float(w @ K @ mean_w + sqrt_phi * np.sqrt(max(w @ K @ w, 1e-20)))

        result = minimize(objective, mean_w, bounds=[(0.0, 1.0)] * T, method="SLSQP",
                          constraints={"type": "eq", "fun": lambda w: w.sum() - 1.0}, options={"ftol": 1e-14, "maxiter": 1000})
        w = np.clip(result.x, 0, None)
        w = w / w.sum()
        gw_norm = float(np.sqrt(max(w @ K @ w, 0.0)))
        weights = mean_w + (sqrt_phi / gw_norm) * w if gw_norm > 1e-12 else mean_w
        weights = weights / {0: 1.0, 1: 1.0 + c**2, 2: 1.0 + c}[self.spec.rescale]
        return weighted(G, torch.as_tensor(weights, dtype=G.dtype, device=G.device), self)
