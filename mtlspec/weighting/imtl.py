"""IMTL-G (Liu et al., "Towards Impartial Multi-task Learning", ICLR 2021).

The aggregated gradient g = sum_t a_t g_t has equal projections onto every unit task gradient
u_t, and sum_t a_t = 1. The paper writes a closed form with differences of gradients; here the
same condition is solved where rounding hurts least. With C the cosine matrix
(C_ij = K_ij / |g_i||g_j|) and v_t = y_t / |g_t|, g = G^T v has g . u_t = (C y)_t, so C y ∝ 1 and
a = v / sum(v). Writing C = 1 1^T - M (M_ij = 1 - C_ij, zero diagonal), C y ∝ 1 exactly when
M y ∝ 1 (Sherman-Morrison), and M is the better form: on near-parallel rows C is 1 1^T up to
rounding and elimination on it cancels (4% off on rows parallel to 3e-8), while M keeps the
small differences as its entries and the answer rests on their ratios. Rows parallel to
rounding (1 - C_ij <= 4 * 2^-52) point one way: they are solved as one and share its weight.
If M is singular, C y = 1 is solved by least squares instead. If sum(v) is 0 (no direction has
equal positive projections) the weights are 0.
"""

from __future__ import annotations

import numpy as np

from mtlspec.weighting.base import GradientAggregator


PARALLEL = 4 * np.finfo(np.float64).eps  # 1 - cos this small: the same direction to rounding


def equal_projection(C: np.ndarray) -> np.ndarray:
    """y with C y ∝ 1 (C a cosine matrix), rows parallel to rounding sharing one solution."""
    M = 1.0 - C
    np.fill_diagonal(M, 0.0)
    reps: list[int] = []
    group = np.zeros(len(C), dtype=int)
    for i in range(len(C)):
        same = [r for r, j in enumerate(reps) if M[i, j] <= PARALLEL]
        if same:
            group[i] = same[0]
        else:
            group[i] = len(reps)
            reps.append(i)
    if len(reps) == 1:
        z = np.ones(1)
    else:
        try:
            z = np.linalg.solve(M[np.ix_(reps, reps)], np.ones(len(reps)))
        except np.linalg.LinAlgError:
            z = np.linalg.lstsq(C[np.ix_(reps, reps)], np.ones(len(reps)), rcond=None)[0]
    sizes = np.bincount(group, minlength=len(reps))
    return z[group] / sizes[group]


class IMTL(GradientAggregator):
    def weights(self, K, losses, active):
        norms = np.sqrt(np.diag(K))
        live = np.flatnonzero(norms > 0)  # a zero gradient has no direction to project on
        a = np.zeros(len(K))
        if len(live) == 0:
            return a
        n = norms[live]
        C = K[np.ix_(live, live)] / n[:, None] / n[None, :]
        C = (C + C.T) / 2
        np.fill_diagonal(C, 1.0)
        v = equal_projection(C) / n
        total = v.sum()
        if np.isfinite(total) and abs(total) > 1e-12 * np.abs(v).sum():
            a[live] = v / total
        return a
