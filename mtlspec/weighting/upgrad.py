"""UPGrad (Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization", 2024).

Each task gradient, scaled by 1/T, is projected onto the dual cone of all task gradients
{x : G x >= 0}; the projections are summed. In weight space the projection of G^T u is G^T w
with w = argmin_{v >= u} v^T (G G^T) v, solved exactly (qp.lower_bounded_min, an active-set
method on the Gramian).
"""

from __future__ import annotations

import numpy as np

from mtlspec.weighting.base import GradientAggregator
from mtlspec.weighting.qp import lower_bounded_min


class UPGrad(GradientAggregator):
    def weights(self, K, losses, active):
        T = len(K)
        return sum(lower_bounded_min(K, np.eye(T)[i] / T) for i in range(T))
