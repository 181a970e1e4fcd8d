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
        """Three passes over the (T x P) rows, in place (at 40 tasks of a ResNet-18 the rows are
        1.8 GB: temporaries of that size cost more than the arithmetic)."""
        active = list(range(len(G))) if active is None else active
        self.step += 1
        scale = 1.0 / (losses.detach().double().cpu() + 1e-8)  # d log L / d theta = g / L
        if self.buffer is None or self.buffer.shape[1] != G.shape[1]:
            self.buffer = torch.zeros(len(self.tasks), G.shape[1], dtype=G.dtype, device=G.device)
            self.seen = torch.zeros(len(self.tasks), dtype=torch.bool)
        elif self.buffer.device != G.device or self.buffer.dtype != G.dtype:  # restored from a checkpoint (read onto the CPU)
            self.buffer = self.buffer.to(G)
        decay = self.spec.beta / self.step**self.spec.beta_sigma
        for k, i in enumerate(active):  # EMA: decay * previous + (1 - decay) * g / L
            if self.seen[i]:
                self.buffer[i].mul_(decay).add_(G[k], alpha=float((1 - decay) * scale[k]))
            else:
                torch.mul(G[k], float(scale[k]), out=self.buffer[i])
            self.seen[i] = True
        rows = self.buffer if len(active) == len(self.buffer) else self.buffer[active]
        norms = torch.linalg.vector_norm(rows, dim=1)
        alpha = norms.max() / (norms + 1e-8)
        self.last_weights = (alpha.double().cpu() * scale).detach()
        return alpha.to(rows.dtype) @ rows

    def state_dict(self):
        return {"step": self.step, "buffer": self.buffer, "seen": self.seen}

    def load_state_dict(self, state):
        self.step, self.buffer = state["step"], state["buffer"]
        self.seen = state.get("seen", None if self.buffer is None else torch.ones(len(self.buffer), dtype=torch.bool))
