"""Aligned-MTL (Senushkin et al., "Independent Component Alignment for Multi-Task Learning", CVPR 2023).

The gradient matrix is aligned so its singular values are all equal to the smallest one:
with G G^T = V diag(l) V^T over its nonzero eigenvalues, B = sqrt(l_min) V diag(l)^(-1/2) V^T
and the update is G^T B w with w the uniform task weights.
"""

from __future__ import annotations

import numpy as np

from mtlspec.weighting.base import GradientAggregator


class AlignedMTL(GradientAggregator):
    def weights(self, K, losses, active):
        values, vectors = np.linalg.eigh(K)
        w = np.full(len(K), 1.0 / len(K))
        keep = values > values.max() * len(K) * np.finfo(np.float64).eps
        if not keep.any():
            return w
        values, vectors = values[keep], vectors[:, keep]
        B = np.sqrt(values.min()) * vectors @ np.diag(1.0 / np.sqrt(values)) @ vectors.T
        return B @ w
