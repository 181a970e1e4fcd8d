"""GradNorm (Chen et al., "GradNorm: Gradient Normalization for Adaptive Loss Balancing", ICML 2018).

Learned task weights w_t (summing to T) scale the losses. Each step, with G_t = |w_t g_t| over
the shared parameters and r_t = (L_t / L_t(0)) / mean_k (L_k / L_k(0)) the relative inverse
training rate, the weights move down the gradient of sum_t |G_t - mean(G) r_t^alpha| (the
target held constant), and are renormalised to sum to T after the step. The update of the
shared parameters is sum_t w_t g_t.
"""

from __future__ import annotations

import torch

import numpy as np

from mtlspec.weighting.base import GradientAggregator


class GradNorm(GradientAggregator):
    def __init__(self, tasks, spec):
        super().__init__(tasks, spec)
        self.w = torch.nn.Parameter(torch.ones(len(tasks)))
        self.initial: torch.Tensor | None = None

    def parameters(self):
        return [self.w]

    def weights(self, K, losses, active):
        if self.initial is None:  # each task's first loss, taken the first time it is present
            self.initial = torch.full((len(self.tasks),), float("nan"), dtype=torch.float64)
        index = torch.as_tensor(active)
        losses = torch.from_numpy(losses)
        first = torch.isnan(self.initial[index])
        self.initial[index[first]] = losses[first]
        norms = torch.from_numpy(np.sqrt(np.clip(np.diag(K), 0.0, None)))
        w = self.w.detach().double()[index]
        weighted_norms = w.abs() * norms
        ratio = losses / self.initial[index].clamp(min=1e-12)
        r = ratio / ratio.mean()
        target = weighted_norms.mean() * r**self.spec.alpha
        # d/dw_t sum_k |w_k n_k - target_k| = sign(w_t n_t - target_t) n_t (target held constant); absent tasks: 0
        grad = torch.zeros(len(self.tasks), dtype=torch.float64)
        grad[index] = torch.sign(weighted_norms - target) * norms
        self.w.grad = grad.to(self.w.dtype)
        return w.numpy()

    def after_update(self):
        with torch.no_grad():
            self.w.clamp_(min=1e-4)
            self.w.mul_(len(self.w) / self.w.sum())

    def state_dict(self):
        return {"w": self.w.detach().clone(), "initial": self.initial}

    def load_state_dict(self, state):
        with torch.no_grad():
            self.w.copy_(state["w"])
        initial = state["initial"]
        self.initial = None if initial is None else initial.double()
