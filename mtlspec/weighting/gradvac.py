"""GradVac (Wang et al., "Gradient Vaccine: Investigating and Improving Multi-task Optimization in
Massively Multilingual Models", ICLR 2021).

For each task i and, in random order, each other task j: when the cosine similarity of the
(already adjusted) g_i with g_j falls below its EMA target phi_ij, g_i gains the multiple of g_j
that lifts the similarity to the target; phi_ij <- (1 - beta) phi_ij + beta cos. Summed.
"""

from __future__ import annotations

import torch

from mtlspec.weighting.base import GradientAggregator

EPS = 1e-8


class GradVac(GradientAggregator):
    def __init__(self, tasks, spec):
        super().__init__(tasks, spec)
        self.phi = torch.zeros(len(tasks), len(tasks), dtype=torch.float64)

    def aggregate(self, G, losses):
        beta, T = self.spec.beta, len(G)
        Gd = G.double()
        coeffs = torch.eye(T, dtype=torch.float64)
        for i in range(T):
            g = Gd[i].clone()
            others = [j for j in range(T) if j != i]
            for idx in torch.randperm(len(others)).tolist():
                j = others[idx]
                norm_i, norm_j = g.norm(), Gd[j].norm()
                cos = (g @ Gd[j]) / (norm_i * norm_j + EPS)
                target = self.phi[i, j]
                if cos < target:
                    w = norm_i * (target * (1 - cos**2).clamp(min=0).sqrt() - cos * (1 - target**2).clamp(min=0).sqrt())
                    w = w / (norm_j * (1 - target**2).clamp(min=0).sqrt() + EPS)
                    g = g + w * Gd[j]
                    coeffs[i, j] += w
                self.phi[i, j] = (1 - beta) * target + beta * cos
        weights = coeffs.sum(dim=0)
        self.last_weights = weights.to(G.dtype)
        return (weights @ Gd).to(G.dtype)

    def state_dict(self):
        return {"phi": self.phi.clone()}

    def load_state_dict(self, state):
        self.phi = state["phi"].clone()
