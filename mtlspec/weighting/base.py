"""The one protocol every weighting method follows, and its two kinds.

The trainer calls `backward(model, losses)` (the gradients of one step land in `.grad`; returns
the task weights for the log), then `after_step(recompute)` after the optimizer step, and
`end_epoch(mean_losses)` after each epoch; it never asks which kind a method is.

- `LossWeighting` maps the task losses (and their history) to weights; its backward is that of
  the weighted sum (plus `extra_loss`, for methods that learn their weights, and the model's own
  extra loss).
- `GradientAggregator` is a function `aggregate(G, losses) -> g` from the matrix of per-task
  gradients of the shared part (T x P) to one update direction, independent of any model, so
  each can be tested alone against an independent implementation. Its backward computes G
  (`gradient_step`); task-specific parameters get their own task's gradient.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

import torch

from mtlspec.weighting.jacobian import assign, task_jacobian

Losses = dict[str, torch.Tensor]


class Weighting(ABC):
    """What the trainer drives."""

    def __init__(self, tasks: list[str], spec: Any):
        self.tasks, self.spec = tasks, spec

    @abstractmethod
    def backward(self, model: Any, losses: Losses) -> dict[str, Any]:
        """Set every parameter's .grad for this step; return each task's weight (None where a
        method has none) for metrics.jsonl."""

    def after_step(self, recompute: Callable[[], Losses]) -> None:
        """After the optimizer step; `recompute()` gives the batch's losses under the new weights."""

    def end_epoch(self, mean_losses: dict[str, float]) -> None:
        """Called with each epoch's mean training loss per task (DWA keeps a history)."""

    def parameters(self) -> list[torch.nn.Parameter]:
        """Learned parameters the trainer's optimizer updates (no weight decay)."""
        return []

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Methods without state have nothing to restore."""


class LossWeighting(Weighting):
    """Weights for the task losses of one step."""

    needs_post_step_losses = False  # FAMO compares each step's losses before and after the update

    @abstractmethod
    def weights(self, losses: Losses) -> dict[str, torch.Tensor]:
        """One weight per task (tensors; methods with learned weights keep them in the graph)."""

    def extra_loss(self, losses: Losses) -> torch.Tensor | float:
        """A term added to the weighted sum (UW's regulariser); 0 for most methods."""
        return 0.0

    def backward(self, model, losses):
        weights = self.weights(losses)
        total = sum(weights[t] * losses[t].float() for t in losses) + self.extra_loss(losses) + model.extra_loss()
        total.backward()
        return weights

    def after_step(self, recompute):
        self.after_update(recompute() if self.needs_post_step_losses else None)

    def after_update(self, losses_after: Losses | None) -> None:
        """Called after each optimizer step, with the batch's losses recomputed when asked for."""


class GradientAggregator(Weighting):
    """Combines per-task gradients of the shared part into one direction."""

    def __init__(self, tasks: list[str], spec: Any):
        super().__init__(tasks, spec)
        self.space = getattr(spec, "space", "params")
        self.last_weights: torch.Tensor | None = None  # g = G^T w, where the method has such a w

    @abstractmethod
    def aggregate(self, G: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """G: (T, P) per-task gradients; losses: (T,) detached. Returns the (P,) direction."""

    def backward(self, model, losses):
        return gradient_step(model, self, losses)

    def after_step(self, recompute):
        self.after_update()

    def after_update(self) -> None:
        """Called after each optimizer step (GradNorm renormalises its weights)."""


def gradient_step(model: Any, method: GradientAggregator, losses: Losses) -> dict[str, float | None]:
    """Per-task gradients of the shared part -> the method's direction; task parameters get their own task's gradient."""
    tasks = list(losses)
    vector = torch.stack([losses[t].float() for t in tasks])
    if method.space == "representation":
        shared = [r for r in model.topology.representation if r.requires_grad]
    else:
        shared = [p for p in model.shared_parameters() if p.requires_grad]
    G = task_jacobian(vector, shared)
    direction = method.aggregate(G, vector.detach())
    private = [p for t in tasks for p in model.task_parameters(t) if p.requires_grad]
    if private:
        for p, g in zip(private, torch.autograd.grad(vector.sum(), private, retain_graph=True, allow_unused=True)):
            p.grad = g
    if method.space == "representation":
        chunks, offset = [], 0
        for r in shared:
            chunks.append(direction[offset : offset + r.numel()].view_as(r).to(r.dtype))
            offset += r.numel()
        torch.autograd.backward(shared, grad_tensors=chunks)
    else:
        assign(direction, shared)
    w = method.last_weights
    return {t: (None if w is None else float(w[i])) for i, t in enumerate(tasks)}


def weighted(G: torch.Tensor, w: torch.Tensor, method: GradientAggregator) -> torch.Tensor:
    """g = G^T w, remembering w for the report."""
    method.last_weights = w.detach().clone()
    return w.to(G.dtype) @ G
