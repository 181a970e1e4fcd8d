"""Small exact quadratic programs over the task Gramian K = G G^T (T x T, T small).

Both solvers enumerate the active sets and solve each KKT system exactly, which is cheap for
the handful of tasks multi-task models have (2^T systems of size <= T) and gives the optimum
to float precision, not an iterate. Above `EXACT_UP_TO` tasks they fall back to projected
gradient descent.
"""

from __future__ import annotations

import itertools

import numpy as np

EXACT_UP_TO = 12


def _subsets(n: int):
    for size in range(1, n + 1):
        yield from itertools.combinations(range(n), size)


def simplex_min_norm(K: np.ndarray) -> np.ndarray:
    """argmin over the probability simplex of a^T K a: the min-norm point of the convex hull of the rows of G."""
    n = len(K)
    if n == 1:
        return np.ones(1)
    if not np.abs(K).max() > 0:  # every gradient is zero: any point is the minimum
        return np.full(n, 1.0 / n)
    if n > EXACT_UP_TO:
        return _simplex_pgd(K)
    best, best_value = None, np.inf
    for support in _subsets(n):
        S = list(support)
        x = np.linalg.lstsq(K[np.ix_(S, S)], np.ones(len(S)), rcond=None)[0]
        if abs(x.sum()) < 1e-15:
            continue
        a_s = x / x.sum()
        if (a_s < -1e-12).any():
            continue
        a = np.zeros(n)
        a[S] = np.clip(a_s, 0, None)
        a /= a.sum()
        value = a @ K @ a
        if (K @ a >= value - 1e-9 * max(1.0, abs(value))).all() and value < best_value - 1e-15:
            best, best_value = a, value
    return best if best is not None else _simplex_pgd(K)


def _project_simplex(v: np.ndarray) -> np.ndarray:
    u = np.sort(v)[::-1]
    css = np.cumsum(u)
    rho = np.nonzero(u * np.arange(1, len(v) + 1) > (css - 1))[0][-1]
    return np.maximum(v - (css[rho] - 1) / (rho + 1.0), 0)


def _simplex_pgd(K: np.ndarray, iters: int = 20000) -> np.ndarray:
    a = np.full(len(K), 1.0 / len(K))
    step = 1.0 / max(np.linalg.eigvalsh(K).max(), 1e-12)
    for _ in range(iters):
        a = _project_simplex(a - step * (K @ a))
    return a


def lower_bounded_min(K: np.ndarray, u: np.ndarray) -> np.ndarray:
    """argmin over v >= u of v^T K v (the dual-cone projection weights of UPGrad)."""
    n = len(K)
    if not np.abs(K).max() > 0:
        return u.astype(np.float64).copy()
    if n > EXACT_UP_TO:
        v = u.copy()
        step = 1.0 / max(np.linalg.eigvalsh(K).max(), 1e-12)
        for _ in range(20000):
            v = np.maximum(v - step * (K @ v), u)
        return v
    best, best_value = None, np.inf
    for r in range(n + 1):
        for free in itertools.combinations(range(n), r):
            F = list(free)
            B = [j for j in range(n) if j not in free]
            v = u.astype(np.float64).copy()
            if F:
                v[F] = np.linalg.lstsq(K[np.ix_(F, F)], -K[np.ix_(F, B)] @ u[B], rcond=None)[0]
                if (v[F] < u[F] - 1e-12).any():
                    continue
            grad = K @ v
            if B and (grad[B] < -1e-9 * max(1.0, np.abs(K).max())).any():
                continue
            value = v @ K @ v
            if value < best_value - 1e-15:
                best, best_value = v, value
    return best
