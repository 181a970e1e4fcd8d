"""PCGrad (Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020), Algorithm 1.

Each task gradient is projected, in a random order of the other tasks, onto the normal plane
of every task gradient it conflicts with (negative inner product); the results are summed.
Every projected gradient stays a combination of the task gradients, g_i' = sum_j C_ij g_j, so
the surgery runs on the coefficients C with inner products read from the Gramian, and the
update is G^T w with w = sum_i C_i (its weights are reported like any method's).
"""

from __future__ import annotations

import numpy as np
import torch

from mtlspec.weighting.base import GradientAggregator


class PCGrad(GradientAggregator):
    def weights(self, K, losses, active):
        T = len(K)
        w = np.zeros(T)
        for i in range(T):
            c = np.zeros(T)
            c[i] = 1.0
            for j in torch.randperm(T).tolist():
                if j == i:
                    continue
                dot = c @ K[:, j]  # g_i' . g_j
                if dot < 0:
                    c[j] -= dot / max(K[j, j], 1e-300)
            w += c
        return w
