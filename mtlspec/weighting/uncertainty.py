"""Uncertainty weighting (Kendall, Gal, Cipolla, "Multi-Task Learning Using Uncertainty to Weigh
Losses for Scene Geometry and Semantics", CVPR 2018).

Each task has a learned log-variance s_t; the objective is sum_t exp(-s_t) L_t + s_t, whose
optimum for fixed losses is s_t = log L_t. (The paper's 1/2 factors for regression tasks are
folded into s_t, as most implementations do.)
"""

from __future__ import annotations

import torch

from mtlspec.weighting.base import LossWeighting


class UncertaintyWeighting(LossWeighting):
    def __init__(self, tasks, spec):
        super().__init__(tasks, spec)
        self.log_vars = torch.nn.Parameter(torch.zeros(len(tasks)))

    def weights(self, losses):
        return {t: torch.exp(-self.log_vars[i]).to(losses[t].device) for i, t in enumerate(self.tasks)}

    def extra_loss(self, losses):
        return self.log_vars.sum().to(next(iter(losses.values())).device)

    def parameters(self):
        return [self.log_vars]

    def state_dict(self):
        return {"log_vars": self.log_vars.detach().clone()}

    def load_state_dict(self, state):
        with torch.no_grad():
            self.log_vars.copy_(state["log_vars"])
