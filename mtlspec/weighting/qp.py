"""Exact small quadratic programs over a task Gramian K = G G^T (T x T), for any number of tasks.

- `min_norm_point(K)`: argmin over the probability simplex of a^T K a, the min-norm point of the
  convex hull of the rows of G (MGDA's problem), by Wolfe's algorithm ("Finding the nearest point
  in a polytope", Mathematical Programming 1976): active sets of affinely independent points,
  finite, exact up to rounding, and it never forms the rows of G.
- `nonnegative_qp(K, q)`: argmin over z >= 0 of 1/2 z^T K z + q^T z for positive semi-definite K,
  by the Lawson-Hanson active-set method in its Gram form (Bro and De Jong, "A fast
  non-negativity-constrained least squares algorithm", J. Chemometrics 1997): finite, exact up to
  rounding. UPGrad's dual-cone projections are such problems.

Both solve their linear systems with every point scaled to unit norm, by LU (a least-squares
solver's singular-value cutoff drops exactly the small rows that matter), with tolerances relative
to those scales: gradients whose norms differ by 10^8 are solved as accurately as balanced ones. The work is O(T^3) per active-set change: milliseconds at
40 tasks, where enumerating active sets (2^T systems) was not usable.
"""

from __future__ import annotations

import numpy as np

TOL = 1e-12  # relative: to the point's own squared norm (Wolfe), to the largest squared norm (the rest)
ORIGIN = 1e-30  # a squared norm this small, relative to the largest, is the origin


def _scaled(K: np.ndarray) -> tuple[np.ndarray, float]:
    scale = float(np.max(np.diag(K))) if len(K) else 0.0
    return (K / scale if scale > 0 else K), scale


def _solve(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A x = b by LU where A is regular (no singular-value cutoff: a least-squares solver's cutoff
    drops exactly the small rows this module must keep), least squares where it is singular."""
    try:
        return np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(A, b, rcond=None)[0]


def _affine_minimizer(K: np.ndarray, S: list[int]) -> np.ndarray:
    """The coefficients (summing to 1) of the point of smallest norm in the affine hull of points S,
    solved with the points scaled to unit norm (rows of very different norms stay accurate)."""
    n = len(S)
    d = 1.0 / np.sqrt(np.clip(np.diag(K)[S], 1e-300, None))
    A = np.zeros((n + 1, n + 1))
    A[:n, :n] = d[:, None] * K[np.ix_(S, S)] * d[None, :]
    A[:n, n] = A[n, :n] = d
    b = np.zeros(n + 1)
    b[n] = 1.0
    solution = _solve(A, b)[:n] * d
    return solution / solution.sum()


def min_norm_point(K: np.ndarray, max_iter: int = 10_000) -> np.ndarray:
    """Weights a >= 0, sum a = 1, minimising a^T K a (Wolfe's algorithm)."""
    T = len(K)
    if T == 1:
        return np.ones(1)
    Kn, scale = _scaled(K)
    if scale <= 0:  # every gradient is zero: any point is the minimum
        return np.full(T, 1.0 / T)
    first = int(np.argmin(np.diag(Kn)))
    S, lam = [first], np.array([1.0])
    previous = np.inf
    for _ in range(max_iter):
        a = np.zeros(T)
        a[S] = lam
        Ka = Kn @ a
        value = a @ Ka
        j = int(np.argmin(Ka))
        # optimal: no point lies beyond the plane through x normal to x; or x is the origin to
        # rounding; or rounding stopped the descent (the affine hulls have become degenerate)
        if value - Ka[j] <= TOL * value or value <= ORIGIN or j in S or value >= previous:
            return a
        previous = value
        S, lam = S + [j], np.append(lam, 0.0)
        while True:  # minor cycle: move towards the affine minimiser of S while it stays in the hull
            mu = _affine_minimizer(Kn, S)
            if (mu > TOL).all():
                lam = mu
                break
            leaving = mu <= TOL
            gap = lam[leaving] - mu[leaving]  # <= 0 only where lam is already ~0: dropped below
            ratios = np.divide(lam[leaving], gap, out=np.full(len(gap), np.inf), where=gap > 0)
            theta = float(min(ratios.min(), 1.0)) if np.isfinite(ratios.min()) else 0.0
            lam = lam + theta * (mu - lam)
            keep = lam > TOL
            keep[np.argmax(lam)] = True
            S, lam = [s for s, k in zip(S, keep) if k], lam[keep]
            lam = lam / lam.sum()
    raise RuntimeError("Wolfe's algorithm did not converge")


def nonnegative_qp(K: np.ndarray, q: np.ndarray, max_iter: int = 10_000) -> np.ndarray:
    """z >= 0 minimising 1/2 z^T K z + q^T z (K positive semi-definite; the problem must be bounded).

    Solved in variables scaled by each row's norm (z = D y, D = diag(K)^-1/2, so D K D has a unit
    diagonal), where every coordinate's multiplier has the same scale and one relative tolerance
    serves rows whose norms differ by orders of magnitude. Rows that are zero never move."""
    T = len(K)
    diag = np.diag(K)
    live = diag > 0
    d = np.where(live, 1.0 / np.sqrt(np.where(live, diag, 1.0)), 0.0)
    Kd = d[:, None] * K * d[None, :]
    qd = d * q
    if not live.any() or not np.abs(qd).max() > 0:
        return np.zeros(T)
    absK = np.abs(Kd)
    y = np.zeros(T)
    passive = np.zeros(T, bool)
    best, best_y = np.inf, y
    for _ in range(max_iter):
        w = -(Kd @ y + qd)  # minus the gradient: what the bounds still at zero hold back
        w[~live] = -np.inf
        # w is a sum of terms as large as |qd| + |Kd| |y|: below TOL of that, it is rounding
        tol = TOL * float(np.max(np.abs(qd) + absK @ np.abs(y)))
        value = 0.5 * y @ (Kd @ y) + qd @ y
        # optimal; or rounding stopped the descent (each outer step decreases the objective in
        # exact arithmetic: on a rank-deficient Gramian rounding can cycle instead)
        if value >= best:
            return d * best_y
        if passive.all() or w[~passive].max(initial=-np.inf) <= tol:
            return d * y
        best, best_y = value, y
        passive[int(np.argmax(np.where(passive, -np.inf, w)))] = True
        while True:
            P = np.flatnonzero(passive)
            s = np.zeros(T)
            s[P] = _solve(Kd[np.ix_(P, P)], -qd[P])
            if (s[P] > 0).all():
                y = s
                break
            leaving = passive & (s <= 0)
            alpha = np.min(y[leaving] / (y[leaving] - s[leaving]))
            y = y + alpha * (s - y)
            passive &= y > TOL * max(1.0, float(y.max(initial=0.0)))
            y[~passive] = 0.0
    return d * best_y  # not reached in practice: each outer step adds a coordinate or stops


def lower_bounded_min(K: np.ndarray, u: np.ndarray) -> np.ndarray:
    """argmin over v >= u of v^T K v (the dual-cone projection weights of UPGrad): v = u + z with
    z >= 0 minimising 1/2 z^T K z + (K u)^T z."""
    return u + nonnegative_qp(K, K @ u)


def simplex_min_norm(K: np.ndarray) -> np.ndarray:
    """The min-norm point of the convex hull of the rows of G (MGDA); the name other modules use."""
    return min_norm_point(K)
