"""FAMO (Liu et al., "FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023): O(1) per step.

Task logits xi give z = softmax(xi). The model descends sum_t z_t log(L_t - b_t) / c with
c = sum_t z_t / (L_t - b_t), i.e. weights z_t / (c (L_t - b_t)) on the losses. After the step,
with the same batch's new losses, xi moves along d = J_softmax(xi)^T (log D_before - log D_after)
by Adam (learning rate w_lr, weight decay gamma). b_t = 0 (the paper's default min losses).
"""

from __future__ import annotations

import torch

from mtlspec.weighting.base import LossWeighting

EPS = 1e-8


class FAMO(LossWeighting):
    needs_post_step_losses = True

    def __init__(self, tasks, spec):
        super().__init__(tasks, spec)
        self.logits = torch.zeros(len(tasks), requires_grad=True)
        self.optimizer = torch.optim.Adam([self.logits], lr=spec.w_lr, weight_decay=spec.gamma)
        self.before: torch.Tensor | None = None

    def _vector(self, losses):
        return torch.stack([losses[t].detach().float().cpu() for t in self.tasks])

    def weights(self, losses):
        D = self._vector(losses) + EPS
        self.before = D
        z = torch.softmax(self.logits.detach(), dim=0)
        c = (z / D).sum()
        w = z / (c * D)
        return {t: w[i].to(losses[t].device) for i, t in enumerate(self.tasks)}

    def after_update(self, losses_after):
        if losses_after is None or self.before is None:
            return
        delta = self.before.log() - (self._vector(losses_after) + EPS).log()
        with torch.enable_grad():
            (d,) = torch.autograd.grad(torch.softmax(self.logits, dim=0), self.logits, grad_outputs=delta)
        self.optimizer.zero_grad()
        self.logits.grad = d
        self.optimizer.step()

    def state_dict(self):
        return {"logits": self.logits.detach().clone(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state):
        with torch.no_grad():
            self.logits.copy_(state["logits"])
        self.optimizer.load_state_dict(state["optimizer"])
