"""Independent references for the gradient methods whose solvers torchjd does not run exactly:
brute force over every active set (support), or mpmath's own root finder, in 60-digit arithmetic
(mpmath), on the Gramian computed there from the float64 Jacobian. Slow, exact, and sharing no
code with mtlspec.weighting.

Each returns the update direction G^T w as float64.
"""

from __future__ import annotations

import itertools

import mpmath as mp
import numpy as np

mp.mp.dps = 60
TINY = mp.mpf(10) ** -40  # relative to the problem's scale; Gramians here span up to 10^28 in condition


def _gram(A: np.ndarray, jitter: int | None = None, normwise: bool = False) -> tuple[mp.matrix, mp.matrix]:
    """G and K = G G^T in 60 digits; with a `jitter` seed, K moved by one float64 rounding (2^-52,
    symmetric) of each entry's scale |g_i| |g_j| (what computing K in float64 does), or, if
    `normwise`, of K's largest entry (what any eigensolver's backward error is)."""
    G = mp.matrix([[mp.mpf(float(x)) for x in row] for row in A])
    K = G * G.T
    if jitter is not None:
        rng = np.random.default_rng(jitter)
        T = len(A)
        norms = [mp.sqrt(K[i, i]) for i in range(T)]
        largest = max(norms) if normwise else None
        for i in range(T):
            for j in range(i, T):
                size = largest**2 if normwise else norms[i] * norms[j]
                delta = mp.mpf(2) ** -52 * size * mp.mpf(float(rng.normal()))
                K[i, j] += delta
                if j != i:
                    K[j, i] += delta
    return G, K


def _direction(G: mp.matrix, w: list) -> np.ndarray:
    return np.array([float(x) for x in (G.T * mp.matrix(w))])


def _solve(K: mp.matrix, S: tuple, rhs: list) -> list | None:
    try:
        return list(mp.lu_solve(mp.matrix([[K[i, j] for j in S] for i in S]), mp.matrix(rhs)))
    except (ZeroDivisionError, TypeError):  # singular (mpmath's pivot search can fail with a TypeError there)
        return None


def min_norm_point(A: np.ndarray, jitter: int | None = None) -> np.ndarray:
    """MGDA (none): the min-norm point of the convex hull of the rows, over every support S: the
    affine minimiser of S (K_SS x = 1, normalised), kept when its weights are >= 0 and no row
    lies beyond it."""
    G, K = _gram(A, jitter)
    T = len(A)
    scale = max(abs(K[r, j]) for r in range(T) for j in range(T))
    best = None
    for size in range(1, T + 1):
        for S in itertools.combinations(range(T), size):
            x = _solve(K, S, [1] * size)
            if x is None or abs(sum(x)) < TINY * max(abs(v) for v in x):
                continue
            total = sum(x)
            a = [mp.mpf(0)] * T
            for k, i in enumerate(S):
                a[i] = x[k] / total
            if any(v < -TINY for v in a):
                continue
            Ka = [sum(K[i, j] * a[j] for j in range(T)) for i in range(T)]
            value = sum(a[i] * Ka[i] for i in range(T))
            if all(Ka[i] >= value - TINY * scale for i in range(T)) and (best is None or value < best[0]):
                best = (value, a)
    if best is None:  # every support singular: all rows zero
        return np.zeros(A.shape[1])
    return _direction(G, best[1])


def upgrad(A: np.ndarray, jitter: int | None = None) -> np.ndarray:
    """UPGrad: for each task, min v^T K v over v >= e_i / T, over every set F of free coordinates
    (K_FF v_F = -K_FB u_B, v_F >= u_F, the gradient >= 0 on the bound ones); summed."""
    G, K = _gram(A, jitter)
    T = len(A)
    scale = max(abs(K[r, j]) for r in range(T) for j in range(T))  # rounding of 60 digits, relative
    total = [mp.mpf(0)] * T
    for i in range(T):
        u = [mp.mpf(0)] * T
        u[i] = mp.mpf(1) / T
        best = None
        for size in range(0, T + 1):
            for F in itertools.combinations(range(T), size):
                B = [j for j in range(T) if j not in F]
                v = list(u)
                if F:
                    x = _solve(K, F, [-sum(K[f, b] * u[b] for b in B) for f in F])
                    if x is None:
                        continue
                    for k, f in enumerate(F):
                        v[f] = x[k]
                    if any(v[f] < u[f] - TINY * max(1, abs(v[f])) for f in F):
                        continue
                grad = [sum(K[r, j] * v[j] for j in range(T)) for r in range(T)]
                if any(grad[b] < -TINY * scale * max(1, max(abs(x) for x in v)) for b in B):
                    continue
                value = sum(v[r] * grad[r] for r in range(T))
                if best is None or value < best[0]:
                    best = (value, v)
        total = [t + b for t, b in zip(total, best[1])]
    return _direction(G, total)


def cagrad(A: np.ndarray, c: float, jitter: int | None = None) -> np.ndarray:
    """CAGrad before its rescale: on every support S the stationarity conditions of
    min_w b.w + r |G^T w| (w on the simplex) reduce to one quadratic in the multiplier; the
    support whose solution is feasible and meets the KKT conditions gives w."""
    G, K = _gram(A, jitter)
    T = len(A)
    w0 = [mp.mpf(1) / T] * T
    b = [sum(K[i, j] * w0[j] for j in range(T)) for i in range(T)]
    g0_sq = sum(w0[i] * b[i] for i in range(T))
    r = c * mp.sqrt(g0_sq)
    scale = max(abs(K[i, j]) for i in range(T) for j in range(T))
    best = None
    for size in range(1, T + 1):
        for S in itertools.combinations(range(T), size):
            try:
                M = mp.inverse(mp.matrix([[K[i, j] for j in S] for i in S]))
            except ZeroDivisionError:
                continue
            one, bS = mp.matrix([1] * size), mp.matrix([b[i] for i in S])
            qa, qb, qc = (one.T * M * one)[0], (one.T * M * bS)[0], (bS.T * M * bS)[0]
            disc = qb**2 - qa * (qc - r**2)
            if disc < 0:
                continue
            lam = (qb + mp.sqrt(disc)) / qa
            if lam * qa - qb <= 0:
                continue
            wS = (1 / (lam * qa - qb)) * (M * (lam * one - bS))
            if any(x <= 0 for x in wS):
                continue
            w = [mp.mpf(0)] * T
            for k, i in enumerate(S):
                w[i] = wS[k]
            Kw = [sum(K[i, j] * w[j] for j in range(T)) for i in range(T)]
            n = mp.sqrt(sum(w[i] * Kw[i] for i in range(T)))
            if all(b[i] + r * Kw[i] / n >= lam - TINY * scale for i in range(T)):
                value = sum(b[i] * w[i] for i in range(T)) + r * n
                if best is None or value < best[0]:
                    best = (value, w, n)
    _, w, n = best
    return _direction(G, [w0[i] + r / n * w[i] for i in range(T)])


def power_fair(A: np.ndarray, alpha: float, jitter: int | None = None, start: np.ndarray | None = None) -> np.ndarray:
    """The w > 0 with (K w)_t = w_t^(-1/alpha) (Nash-MTL: alpha = 1; FairGrad): the minimiser of the
    strictly convex f(w) = 0.5 w^T K w - sum h(w_t), h' = w^(-1/alpha), by Newton's method with
    backtracking on f in 60 digits (where comparing values of f is exact enough to trust), from
    `start` (e.g. the float64 answer being checked) when it is positive, else from where each
    equation holds alone. The minimiser is unique, so the start only decides how long it takes."""
    G, K = _gram(A, jitter)
    T = len(A)
    p = 1 / mp.mpf(alpha)

    def h(x):
        return mp.log(x) if alpha == 1 else x ** (1 - p) / (1 - p)

    def f(w):
        return sum(K[i, j] * w[i] * w[j] for i in range(T) for j in range(T)) / 2 - sum(h(x) for x in w)

    starts = [[K[i, i] ** (-alpha / (alpha + 1)) for i in range(T)]]
    if start is not None and (np.asarray(start) > 0).all():
        starts.insert(0, [mp.mpf(float(x)) for x in start])
    for w in starts:
        for _ in range(500):
            grad = mp.matrix([sum(K[i, j] * w[j] for j in range(T)) - w[i] ** -p for i in range(T)])
            H = mp.matrix(T, T)
            for i in range(T):
                for j in range(T):
                    H[i, j] = K[i, j] + (p * w[i] ** (-p - 1) if i == j else 0)
            step = mp.lu_solve(H, grad)
            decrement = sum(grad[i] * step[i] for i in range(T))
            current = f(w)
            if decrement <= mp.mpf(10) ** -45 * (1 + abs(current)):
                return _direction(G, w)
            t = mp.mpf(1)
            while any(w[i] - t * step[i] <= 0 for i in range(T)) or f([w[i] - t * step[i] for i in range(T)]) > current - t * decrement / 4:
                t /= 2
            w = [w[i] - t * step[i] for i in range(T)]
    raise AssertionError("the oracle's Newton iteration did not converge")


def power_fair_weights(A: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """The weights w with G^T w = direction (least squares): a float64 answer as a start."""
    return np.linalg.lstsq(A.T, direction, rcond=None)[0]


def imtl_g(A: np.ndarray, jitter: int | None = None) -> np.ndarray:
    """IMTL-G: v = K^-1 d with d_t = |g_t| (so G^T v has the projection 1 on every unit task
    gradient), weights v / sum(v). Full-rank K only."""
    G, K = _gram(A, jitter)
    T = len(A)
    v = mp.lu_solve(K, mp.matrix([mp.sqrt(K[i, i]) for i in range(T)]))
    total = sum(v)
    return _direction(G, [v[i] / total for i in range(T)])


def aligned_mtl(A: np.ndarray, jitter: int | None = None) -> np.ndarray:
    """Aligned-MTL: K = V diag(l) V^T over the eigenvalues above l_max * T * 2^-52 (torchjd's and
    the paper's cut), B = sqrt(l_min) V diag(l)^-1/2 V^T, weights B 1/T. Defined by K's spectrum
    (not invariant to scaling rows), so its sensitivity is measured against normwise jitter."""
    G, K = _gram(A, jitter, normwise=True)
    T = len(A)
    values, vectors = mp.eigsy(K)
    cut = max(values) * T * mp.mpf(2) ** -52
    keep = [k for k in range(T) if values[k] > cut]
    smallest = min(values[k] for k in keep)
    w = [sum(mp.sqrt(smallest) / mp.sqrt(values[k]) * vectors[i, k] * sum(vectors[j, k] for j in range(T)) / T for k in keep) for i in range(T)]
    return _direction(G, w)
