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
        self.buffer: torch.Tensor | None = None  # one row per task: the EMA of its log-loss gradient
        self.seen: torch.Tensor | None = None

    def aggregate(self, G, losses, active=None):
        active = list(range(len(G))) if active is None else active
        self.step += 1
        log_grads = G / (losses.to(G.dtype)[:, None] + 1e-8)
        if self.buffer is None or self.buffer.shape[1] != G.shape[1]:
            self.buffer = torch.zeros(len(self.tasks), G.shape[1], dtype=G.dtype, device=G.device)
            self.seen = torch.zeros(len(self.tasks), dtype=torch.bool)
        decay = self.spec.beta / self.step**self.spec.beta_sigma
        for k, i in enumerate(active):
            previous = self.buffer[i].to(G.device)
            self.buffer[i] = log_grads[k] + decay * (previous - log_grads[k]) if self.seen[i] else log_grads[k]
            self.seen[i] = True
        rows = self.buffer[active]
        norms = rows.norm(dim=1)
        alpha = norms.max() / (norms + 1e-8)
        self.last_weights = (alpha / (losses.to(G.dtype) + 1e-8)).detach()
        return (alpha[:, None] * rows).sum(dim=0)

    def state_dict(self):
        return {"step": self.step, "buffer": self.buffer, "seen": self.seen}

    def load_state_dict(self, state):
        self.step, self.buffer = state["step"], state["buffer"]
        self.seen = state.get("seen", None if self.buffer is None else torch.ones(len(self.buffer), dtype=torch.bool))
