"""FairGrad (Ban & Ji, "Fair Resource Allocation in Multi-Task Learning", ICML 2024).

alpha-fair allocation: find w >= 0 with (G G^T w)_t = w_t^(-1/alpha), solved by bounded
least squares from the uniform start as in the paper's code; the update is G^T w.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import least_squares

from mtlspec.weighting.base import GradientAggregator, weighted


class FairGrad(GradientAggregator):
    def aggregate(self, G, losses):
        K = (G.double() @ G.double().T).cpu().numpy()
        start = np.full(len(K), 1.0 / len(K))
        alpha = self.spec.alpha
        result = least_squares(lambda w: K @ w - np.power(w, -1.0 / alpha), start, bounds=(0, np.inf))
        return weighted(G, torch.as_tensor(result.x, dtype=G.dtype, device=G.device), self)
