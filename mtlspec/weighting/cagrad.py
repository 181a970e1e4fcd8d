"""CAGrad (Liu et al., "Conflict-Averse Gradient Descent for Multi-task Learning", NeurIPS 2021).

With g0 the average gradient and phi = c^2 |g0|^2, find w on the simplex minimising
F(w) = g_w . g0 + sqrt(phi) |g_w| (g_w = sum w_t g_t); the update is g0 + sqrt(phi) / |g_w| g_w,
divided by 1 + c^2 when rescale = 1 (the paper's code), by 1 + c when rescale = 2, left as is
when rescale = 0.

Solved exactly in the Gramian, without a general-purpose optimiser: since
sqrt(phi) |x| = min_{tau > 0} sqrt(phi) (|x|^2 / tau + tau) / 2, F's minimum is that of a function
jointly convex in (w, tau), minimised block by block until the support of w settles: for fixed tau
the w-problem is the min-norm point of the points g_t + (tau / sqrt(phi)) g0 (Wolfe's algorithm,
qp.min_norm_point); for fixed w, tau = |g_w|. Once the support settles, an active-set search
from it finishes exactly: on a support the stationarity conditions reduce to one quadratic
equation, solved in closed form, and each row's KKT condition is checked at its own scale.
Gradients whose norms differ by orders of magnitude are solved as accurately as balanced ones
(the general solver this replaces was 50% off there; block descent alone, 0.5% off where the
update is carried by the combination of rows 10^6 smaller than the largest).
"""

from __future__ import annotations

import numpy as np

from mtlspec.weighting.base import GradientAggregator
from mtlspec.weighting.qp import min_norm_point


def _on_support(Kn: np.ndarray, b: np.ndarray, root_phi: float, S: list[int]) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The stationary point of F restricted to the support S: (w, F's gradient at w, its
    multiplier lam). On S the stationarity conditions reduce to one quadratic equation in lam;
    None where K_SS is singular or the equation has no admissible root."""
    d = 1.0 / np.sqrt(np.diag(Kn)[S])  # solve with unit diagonal: rows of very different norms stay accurate
    one = np.ones(len(S))
    try:  # x = K_SS^-1 1 and y = K_SS^-1 b_S by LU (backward stable; an explicit inverse is not)
        x, y = (d[:, None] * np.linalg.solve(d[:, None] * Kn[np.ix_(S, S)] * d[None, :], np.stack([d, d * b[S]], axis=1))).T
    except np.linalg.LinAlgError:
        return None
    A, B, C = one @ x, one @ y, b[S] @ y
    disc = B * B - A * (C - root_phi**2)
    if not A > 0 or disc < 0:
        return None
    lam = (B + np.sqrt(disc)) / A
    ratio = 1.0 / (lam * A - B)  # |g_w| / sqrt(phi)
    if not np.isfinite(ratio) or ratio <= 0:
        return None
    w = np.zeros(len(Kn))
    w[S] = ratio * (lam * x - y)
    norm = np.sqrt(max(w @ Kn @ w, 0.0))
    if not norm > 0:
        return None
    return w, b + root_phi * (Kn @ w) / norm, lam


def _exact(Kn: np.ndarray, b: np.ndarray, root_phi: float, g0: float, support: np.ndarray) -> np.ndarray | None:
    """The exact minimiser, by an active-set search from `support` (where block descent settled):
    solve on S; drop the most negative weight, else add the row whose gradient of F is furthest
    below the multiplier, until every KKT condition holds. Each row's condition is checked to
    1e-10 of its own scale |g_t| (|g0| + sqrt(phi)): a tiny gradient's conditions are as exact as
    a large one's (block descent alone resolves weights only to the largest row's rounding, and
    the direction of the tiny rows' combination is what the update keeps). None if it cycles."""
    S = [int(i) for i in support]
    tol = 1e-10 * np.sqrt(np.diag(Kn)) * (g0 + root_phi)
    for _ in range(4 * len(Kn)):
        solved = _on_support(Kn, b, root_phi, S)
        if solved is None:
            return None
        w, reduced, lam = solved
        if (w[S] <= 0).any():
            S.remove(S[int(np.argmin(w[S]))])
            if not S:
                return None
            continue
        outside = np.setdiff1d(np.arange(len(Kn)), S)
        gap = reduced[outside] - lam + tol[outside]
        if len(outside) == 0 or (gap >= 0).all():
            return w
        S.append(int(outside[np.argmin(gap)]))
    return None


def cagrad_weights(K: np.ndarray, c: float, max_iter: int = 1000) -> np.ndarray:
    """Weights of the CAGrad update before the rescale (g0 + sqrt(phi)/|g_w| g_w = G^T weights).
    g0 averages every row; a row that is exactly zero has no direction and is left out of the
    minimisation over the simplex (it adds nothing to g_w, and in the minimisation it would only
    shrink g_w towards 0, where the update is undefined)."""
    T = len(K)
    w0 = np.full(T, 1.0 / T)
    scale = float(np.max(np.diag(K)))
    if scale <= 0 or c == 0:
        return w0
    Kn = K / scale
    b = Kn @ w0  # g_t . g0
    g0_sq = float(w0 @ b)
    if g0_sq <= 0:
        return w0
    root_phi = c * np.sqrt(g0_sq)
    live = np.flatnonzero(np.diag(Kn) > 1e-300)
    w_live, tau = _minimise(Kn[np.ix_(live, live)], b[live], g0_sq, root_phi, max_iter)
    if w_live is None:
        return w0
    w = np.zeros(T)
    w[live] = w_live
    return w0 + (root_phi / tau) * w


def _minimise(Kn: np.ndarray, b: np.ndarray, g0_sq: float, root_phi: float, max_iter: int) -> tuple[np.ndarray | None, float]:
    """(w on the simplex minimising F, |g_w|), or (None, 0) where the rows cancel."""
    tau, w, support = np.sqrt(g0_sq), np.full(len(Kn), 1.0 / len(Kn)), None
    for _ in range(max_iter):
        s = tau / root_phi
        w = min_norm_point(Kn + s * (b[:, None] + b[None, :]) + s * s * g0_sq)
        tau = float(np.sqrt(max(w @ Kn @ w, 0.0)))
        if tau <= 1e-12:  # the gradients cancel: no conflict-averse direction beyond g0
            return None, 0.0
        S = np.flatnonzero(w > 1e-12)
        if support is not None and np.array_equal(S, support):  # the support has settled: solve exactly from it
            exact = _exact(Kn, b, root_phi, np.sqrt(g0_sq), S)
            if exact is not None:
                w = exact
                tau = float(np.sqrt(w @ Kn @ w))
                break
        support = S
    return w, tau


class CAGrad(GradientAggregator):
    def weights(self, K, losses, active):
        c = self.spec.c
        return cagrad_weights(K, c) / {0: 1.0, 1: 1.0 + c**2, 2: 1.0 + c}[self.spec.rescale]
