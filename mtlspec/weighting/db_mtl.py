"""DB-MTL (Lin et al., "Dual-Balancing for Multi-Task Learning", 2023).

Loss-scale balancing: gradients of log L_t (= g_t / L_t). Gradient-magnitude balancing: an EMA
of those gradients, with decay beta / step^beta_sigma, each scaled to the largest norm among
them, then summed.
"""

from __future__ import annotations

import torch

from mtlspec.weighting.base import GradientAggregator


class DBMTL(GradientAggregator):
    def __init__(self, tasks, spec):
        super().__init__(tasks, spec)
        self.step = 0
        self.buffer: torch.Tensor | None = None

    def aggregate(self, G, losses):
        self.step += 1
        log_grads = G / (losses.to(G.dtype)[:, None] + 1e-8)
        if self.buffer is None or self.buffer.shape != log_grads.shape:
            self.buffer = log_grads.clone()
        else:
            decay = self.spec.beta / self.step**self.spec.beta_sigma
            self.buffer = log_grads + decay * (self.buffer.to(G.device) - log_grads)
        norms = self.buffer.norm(dim=1)
        alpha = norms.max() / (norms + 1e-8)
        self.last_weights = (alpha / (losses.to(G.dtype) + 1e-8)).detach()
        return (alpha[:, None] * self.buffer).sum(dim=0)

    def state_dict(self):
        return {"step": self.step, "buffer": self.buffer}

    def load_state_dict(self, state):
        self.step, self.buffer = state["step"], state["buffer"]
