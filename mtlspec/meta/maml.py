"""MAML (Finn, Abbeel and Levine, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
Networks", ICML 2017), its first-order approximation (same paper, section 5.2) and ANIL (Raghu et
al., "Rapid Learning or Feature Reuse?", ICLR 2020: the inner loop adapts the head alone).

One outer step: for each of `meta_batch` episodes, adapt the parameters on the support set in
`inner_steps` steps of gradient descent, and take the adapted model's cross-entropy on the query
set; the gradient of their mean with respect to the starting parameters (through the inner steps
for MAML and ANIL; with each inner gradient held constant for first-order MAML) goes to
training.optimizer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

from mtlspec.meta.functional import adapted, adapted_names, logits


class MAML:
    def __init__(self, meta: Any, first_order: bool = False, adapt: str | list[str] = "all"):
        self.meta, self.first_order, self.adapt = meta, first_order, adapt

    def meta_gradient(self, model: torch.nn.Module, task: str, episodes: list[tuple[torch.Tensor, ...]]) -> tuple[float, float]:
        """Accumulate the meta-gradient of the episodes' mean query loss into the parameters'
        `.grad`; (mean query loss, mean query accuracy)."""
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        names = adapted_names(model, task, self.adapt)
        total_loss, total_acc = 0.0, 0.0
        for sx, sy, qx, qy in episodes:
            fast = adapted(model, params, names, task, sx, sy, self.meta.inner_steps, self.meta.inner_lr, create_graph=not self.first_order)
            out = logits(model, fast, task, qx)
            loss = F.cross_entropy(out, qy)
            (loss / len(episodes)).backward()
            total_loss += loss.item()
            total_acc += (out.argmax(1) == qy).float().mean().item()
        return total_loss / len(episodes), total_acc / len(episodes)
