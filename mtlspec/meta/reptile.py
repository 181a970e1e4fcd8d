"""Reptile (Nichol, Achiam and Schulman, "On First-Order Meta-Learning Algorithms", 2018).

One outer step: for each of `meta_batch` episodes, adapt a copy of the parameters on the support
set in `inner_steps` steps of gradient descent (phi_i); the outer "gradient" is theta - mean(phi_i),
handed to training.optimizer, so plain SGD with learning rate epsilon gives Reptile's update
theta <- theta + epsilon (mean(phi_i) - theta) exactly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from mtlspec.meta.functional import adapted, adapted_names, logits


class Reptile:
    def __init__(self, meta: Any):
        self.meta = meta

    def meta_gradient(self, model: torch.nn.Module, task: str, episodes: list[tuple[torch.Tensor, ...]]) -> tuple[float, float]:
        """Accumulate theta - mean(phi) into `.grad`; (mean query loss, mean query accuracy) of the adapted models."""
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        names = adapted_names(model, task, self.meta.adapt)
        total_loss, total_acc = 0.0, 0.0
        for sx, sy, qx, qy in episodes:
            start = {n: p.detach().requires_grad_(n in names) for n, p in params.items()}
            fast = adapted(model, start, names, task, sx, sy, self.meta.inner_steps, self.meta.inner_lr, create_graph=False)
            with torch.no_grad():
                for n in names:
                    step = (params[n] - fast[n]) / len(episodes)
                    params[n].grad = step if params[n].grad is None else params[n].grad + step
                out = logits(model, fast, task, qx)
                total_loss += F.cross_entropy(out, qy).item()
                total_acc += (out.argmax(1) == qy).float().mean().item()
        return total_loss / len(episodes), total_acc / len(episodes)
