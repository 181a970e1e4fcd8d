"""MGDA (Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018).

The common descent direction is the min-norm point of the convex hull of the (normalised)
task gradients; the update is sum_t a_t g_t with those coefficients. With `space:
representation` the gradients are taken at the shared representation: the paper's MGDA-UB.
Normalisations as in the paper's code: none, l2 (g/|g|), loss (g/L), loss+ (g/(L |g|)).
The min-norm problem is solved exactly on the Gramian (Wolfe's algorithm, qp.min_norm_point),
not by Frank-Wolfe iterations.
"""

from __future__ import annotations

import numpy as np

from mtlspec.weighting.base import GradientAggregator
from mtlspec.weighting.qp import min_norm_point


class MGDA(GradientAggregator):
    def weights(self, K, losses, active):
        norm = self.spec.normalization
        scale = np.ones(len(K))
        if norm in ("l2", "loss+"):
            scale = scale / np.sqrt(np.clip(np.diag(K), 1e-300, None))
        if norm in ("loss", "loss+"):
            scale = scale / np.clip(losses, 1e-12, None)
        return min_norm_point(scale[:, None] * K * scale[None, :])
