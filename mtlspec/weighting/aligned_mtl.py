"""Aligned-MTL (Senushkin et al., "Independent Component Alignment for Multi-Task Learning", CVPR 2023).

The gradient matrix is aligned so its singular values are all equal to the smallest one:
with G G^T = V diag(l) V^T over its nonzero eigenvalues, B = sqrt(l_min) V diag(l)^(-1/2) V^T
and the update is G^T B w with w the uniform task weights.
"""

from __future__ import annotations

import torch

from mtlspec.weighting.base import GradientAggregator, weighted


class AlignedMTL(GradientAggregator):
    def aggregate(self, G, losses):
        K = G.double() @ G.double().T
        values, vectors = torch.linalg.eigh(K)
        tol = values.max() * len(K) * torch.finfo(torch.float64).eps
        keep = values > tol
        w = torch.full((len(G),), 1.0 / len(G), dtype=torch.float64, device=G.device)
        if not keep.any():
            return weighted(G, w.to(G.dtype), self)
        values, vectors = values[keep], vectors[:, keep]
        B = values.min().sqrt() * vectors @ torch.diag(values.rsqrt()) @ vectors.T
        return weighted(G, (B @ w).to(G.dtype), self)
