"""Nash-MTL (Navon et al., "Multi-Task Learning as a Bargaining Game", ICML 2022).

The bargaining solution is the alpha > 0 with (G G^T) alpha = 1 / alpha (elementwise); the update
is sum_t alpha_t g_t, its norm clipped at `max_norm` (0: no clipping); alpha is recomputed every
`update_weights_every` steps. (The paper's code solves on the Gramian divided by its Frobenius
norm n, with n inside the constraint, which gives the same alpha; here alpha = alpha_n / sqrt(n).) The paper reaches alpha by `optim_niter` rounds of a convex
concave procedure; here alpha is the exact solution, found by Newton's method on the strictly
convex 0.5 a^T K a - sum log a, whose stationary point is the condition above.
"""

from __future__ import annotations

import numpy as np
import torch

from mtlspec.weighting.base import GradientAggregator, weighted


def nash_solution(K: np.ndarray, iters: int = 100) -> np.ndarray:
    a = 1.0 / np.sqrt(np.clip(np.diag(K), 1e-12, None))
    for _ in range(iters):
        grad = K @ a - 1.0 / a
        if np.abs(grad).max() < 1e-12:
            break
        step = np.linalg.solve(K + np.diag(1.0 / a**2), grad)
        t = 1.0
        while (a - t * step <= 0).any():
            t *= 0.5
        a = a - t * step
    return a


class NashMTL(GradientAggregator):
    def __init__(self, tasks, spec):
        super().__init__(tasks, spec)
        self.step = 0
        self.alpha: np.ndarray | None = None

    def aggregate(self, G, losses):
        if self.alpha is None or self.step % self.spec.update_weights_every == 0:
            K = (G.double() @ G.double().T).cpu().numpy()
            scale = max(np.linalg.norm(K), 1e-20)
            self.alpha = nash_solution(K / scale) / np.sqrt(scale)
        self.step += 1
        g = weighted(G, torch.as_tensor(self.alpha, dtype=G.dtype, device=G.device), self)
        norm = g.norm()
        if self.spec.max_norm > 0 and norm > self.spec.max_norm:
            g = g * (self.spec.max_norm / norm)
        return g

    def state_dict(self):
        return {"step": self.step, "alpha": None if self.alpha is None else torch.from_numpy(self.alpha.copy())}

    def load_state_dict(self, state):
        self.step, self.alpha = state["step"], None if state["alpha"] is None else state["alpha"].numpy()
