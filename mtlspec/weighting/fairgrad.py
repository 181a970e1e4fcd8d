"""FairGrad (Ban & Ji, "Fair Resource Allocation in Multi-Task Learning", ICML 2024).

alpha-fair allocation: find w > 0 with (G G^T w)_t = w_t^(-1/alpha); the update is G^T w. The
paper's code reaches w by bounded least squares from the uniform start, which stops where the
residual is flat: on near-rank-deficient Gramians its answer moved by more than 100% between
float32 and float64 gradients. Here w is the exact minimiser of the strictly convex
0.5 w^T K w - sum h(w_t), h' = w^(-1/alpha), whose stationary point is that condition (Newton's
method, as for Nash-MTL, which is alpha = 1).
"""

from __future__ import annotations

import numpy as np

from mtlspec.weighting.base import GradientAggregator
from mtlspec.weighting.nash_mtl import barrier_newton


def fair_allocation(K: np.ndarray, alpha: float) -> np.ndarray:
    """w > 0 with (K w)_t = w_t^(-1/alpha); 0 for a task whose gradient is zero (no finite w_t,
    no effect on the update). K is scaled to a unit trace: w scales by scale^(-alpha/(alpha+1))."""
    scale = max(float(np.trace(K)), 1e-300)
    Kn = K / scale
    live = np.flatnonzero(np.diag(Kn) > 1e-30)
    w = np.zeros(len(K))
    if len(live) == 0:
        return w
    sub = Kn[np.ix_(live, live)]
    p = 1.0 / alpha
    if alpha == 1.0:
        h = np.log
    else:
        def h(x):
            return x ** (1.0 - p) / (1.0 - p)
    start = np.diag(sub) ** (-alpha / (alpha + 1.0))  # where each task's condition holds alone
    w[live] = barrier_newton(sub, h, lambda x: x ** (-p), lambda x: p * x ** (-p - 1.0), start, iters=5000)
    return w * scale ** (-alpha / (alpha + 1.0))


class FairGrad(GradientAggregator):
    def weights(self, K, losses, active):
        return fair_allocation(K, self.spec.alpha)
