"""Nash-MTL (Navon et al., "Multi-Task Learning as a Bargaining Game", ICML 2022).

The bargaining solution is the alpha > 0 with (G G^T) alpha = 1 / alpha (elementwise); the update
is sum_t alpha_t g_t, its norm clipped at `max_norm` (0: no clipping); alpha is recomputed every
`update_weights_every` steps. (The paper's code solves on the Gramian divided by its Frobenius
norm n, with n inside the constraint, which gives the same alpha; here alpha = alpha_n / sqrt(n).)
The paper reaches alpha by `optim_niter` rounds of a convex concave procedure; here alpha is the
exact solution, found by Newton's method on the strictly convex 0.5 a^T K a - sum log a, whose
stationary point is the condition above (warm-started from the previous step's alpha).
"""

from __future__ import annotations

import numpy as np
import torch

from mtlspec.weighting.base import GradientAggregator, gramian, weighted


def barrier_newton(K: np.ndarray, barrier, barrier_grad, barrier_curv, start: np.ndarray, iters: int = 100) -> np.ndarray:
    """The minimiser over a > 0 of f(a) = 0.5 a^T K a - sum h(a_t), h concave, given h = barrier,
    h' = barrier_grad and -h'' = barrier_curv (elementwise), from `start` > 0.

    Newton's method, each step solved with the Hessian at unit diagonal (rows of very different
    scale stay accurate) and kept inside a > 0. While the Newton decrement l^2 is above 1/16 the
    step is shortened until f decreases by a quarter of it (Armijo); below, steps are full: for
    Nash-MTL's f (self-concordant) that is the region of quadratic convergence, and comparing
    values of f there would compare rounding (on near-opposed gradients a^T K a cancels to 1e-7).
    (FairGrad's barrier is not self-concordant and the decrement may rise for a few full steps
    before it falls.) Stops when l^2 < 1e-16 T stops falling, the rounding floor of K a - h'(a),
    or after `iters` steps."""
    a = start.astype(np.float64).copy()

    def value(x: np.ndarray) -> float:
        return 0.5 * float(x @ K @ x) - float(barrier(x).sum())

    previous = np.inf
    for _ in range(iters):
        grad = K @ a - barrier_grad(a)
        H = K + np.diag(barrier_curv(a))
        d = 1.0 / np.sqrt(np.diag(H))
        try:
            step = d * np.linalg.solve(d[:, None] * H * d[None, :], d * grad)
        except np.linalg.LinAlgError:
            break
        decrement = float(grad @ step)
        if not np.isfinite(decrement) or decrement <= 0.0:
            break
        if decrement <= 1e-30 * len(a) or decrement < 1e-16 * len(a) and decrement >= previous:
            break  # rounding: deep in the quadratic region, the decrement no longer falls
        previous = decrement
        t = 1.0
        while (a - t * step <= 0).any():
            t *= 0.5
        if decrement >= 1.0 / 16.0:
            current = value(a)
            while t > 1e-12 and value(a - t * step) > current - 0.25 * t * decrement:
                t *= 0.5
        a = a - t * step
    return a


def nash_solution(K: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """alpha > 0 with K alpha = 1 / alpha, K scaled to a unit Frobenius norm for the solve. A task
    whose gradient is zero has no finite solution and no effect on the update: its alpha is 0."""
    scale = max(np.linalg.norm(K), 1e-300)
    Kn = K / scale
    live = np.flatnonzero(np.diag(Kn) > 1e-30)
    alpha = np.zeros(len(K))
    if len(live) == 0:
        return alpha
    sub = Kn[np.ix_(live, live)]
    first = start[live] * np.sqrt(scale) if start is not None and (start[live] > 0).all() else 1.0 / np.sqrt(np.diag(sub))
    alpha[live] = barrier_newton(sub, np.log, lambda a: 1.0 / a, lambda a: 1.0 / a**2, first) / np.sqrt(scale)
    return alpha


class NashMTL(GradientAggregator):
    def __init__(self, tasks, spec):
        super().__init__(tasks, spec)
        self.step = 0
        self.alpha: np.ndarray | None = None
        self.active: list[int] | None = None

    def aggregate(self, G, losses, active=None):
        active = list(range(len(G))) if active is None else active
        if self.alpha is None or self.active != active or self.step % self.spec.update_weights_every == 0:
            start = self.alpha if self.alpha is not None and self.active == active else None
            self.alpha, self.active = nash_solution(gramian(G), start), list(active)
        self.step += 1
        g = weighted(G, torch.as_tensor(self.alpha), self)
        norm = g.norm()
        if self.spec.max_norm > 0 and norm > self.spec.max_norm:
            g = g * (self.spec.max_norm / norm)
        return g

    def state_dict(self):
        return {"step": self.step, "alpha": None if self.alpha is None else torch.from_numpy(self.alpha.copy()), "active": self.active}

    def load_state_dict(self, state):
        self.step, self.active = state["step"], state.get("active")
        self.alpha = None if state["alpha"] is None else state["alpha"].numpy()

