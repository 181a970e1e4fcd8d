"""GradVac (Wang et al., "Gradient Vaccine: Investigating and Improving Multi-task Optimization in
Massively Multilingual Models", ICLR 2021).

For each task i and, in random order, each other task j: when the cosine similarity of the
(already adjusted) g_i with g_j falls below its EMA target phi_ij, g_i gains the multiple of g_j
that lifts the similarity to the target; phi_ij <- (1 - beta) phi_ij + beta cos. Summed.
Adjusted gradients stay combinations of the task gradients, so norms and cosines are read from
the Gramian; only the targets of the tasks present in the batch move.
"""

from __future__ import annotations

import numpy as np
import torch

from mtlspec.weighting.base import GradientAggregator

EPS = 1e-8


class GradVac(GradientAggregator):
    def __init__(self, tasks, spec):
        super().__init__(tasks, spec)
        self.phi = torch.zeros(len(tasks), len(tasks), dtype=torch.float64)

    def weights(self, K, losses, active):
        beta, T = self.spec.beta, len(K)
        phi = self.phi[np.ix_(active, active)].numpy().copy()
        norms = np.sqrt(np.clip(np.diag(K), 0.0, None))
        coeffs = np.eye(T)
        for i in range(T):
            c = coeffs[i]
            others = [j for j in range(T) if j != i]
            for idx in torch.randperm(len(others)).tolist():
                j = others[idx]
                norm_i, norm_j = np.sqrt(max(c @ K @ c, 0.0)), norms[j]
                if not (norm_i > 0 and norm_j > 0):  # a zero gradient has no direction to align with
                    continue
                cos = (c @ K[:, j]) / (norm_i * norm_j)  # no absolute epsilon: representation gradients can be 1e-5 in norm
                target = phi[i, j]
                if cos < target:
                    w = norm_i * (target * np.sqrt(max(1 - cos**2, 0.0)) - cos * np.sqrt(max(1 - target**2, 0.0)))
                    c[j] += w / (norm_j * max(np.sqrt(max(1 - target**2, 0.0)), EPS))
                phi[i, j] = (1 - beta) * target + beta * cos
        self.phi[np.ix_(active, active)] = torch.from_numpy(phi)
        return coeffs.sum(axis=0)

    def state_dict(self):
        return {"phi": self.phi.clone()}

    def load_state_dict(self, state):
        self.phi = state["phi"].clone()
