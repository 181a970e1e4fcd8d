"""The two kinds of weighting method the trainer drives.

- `LossWeighting` maps the task losses (and their history) to weights; the trainer
  back-propagates the weighted sum (plus `extra_loss`, for methods that learn their weights).
- `GradientAggregator` is a function `aggregate(G, losses) -> g` from the matrix of per-task
  gradients of the shared part (T x P) to one update direction, independent of any model, so
  each can be tested alone against an independent implementation. The trainer owns the
  backward passes; task-specific parameters get their own task's gradient.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch


class LossWeighting(ABC):
    """Weights for the task losses of one step."""

    needs_post_step_losses = False  # FAMO compares each step's losses before and after the update

    def __init__(self, tasks: list[str], spec: Any):
        self.tasks, self.spec = tasks, spec

    @abstractmethod
    def weights(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One weight per task (tensors; methods with learned weights keep them in the graph)."""

    def extra_loss(self, losses: dict[str, torch.Tensor]) -> torch.Tensor | float:
        """A term added to the weighted sum (UW's regulariser); 0 for most methods."""
        return 0.0

    def parameters(self) -> list[torch.nn.Parameter]:
        """Learned parameters the trainer's optimizer updates (no weight decay)."""
        return []

    def end_epoch(self, mean_losses: dict[str, float]) -> None:
        """Called with each epoch's mean training loss per task (DWA keeps a history)."""

    def after_step(self, losses_after: dict[str, torch.Tensor] | None) -> None:
        """Called after each optimizer step, with the batch's losses recomputed when asked for."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Methods without state have nothing to restore."""


class GradientAggregator(ABC):
    """Combines per-task gradients of the shared part into one direction."""

    def __init__(self, tasks: list[str], spec: Any):
        self.tasks, self.spec = tasks, spec
        self.space = getattr(spec, "space", "params")
        self.last_weights: torch.Tensor | None = None  # g = G^T w, where the method has such a w

    @abstractmethod
    def aggregate(self, G: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """G: (T, P) per-task gradients; losses: (T,) detached. Returns the (P,) direction."""

    def parameters(self) -> list[torch.nn.Parameter]:
        return []

    def after_step(self) -> None:
        """Called after each optimizer step (GradNorm renormalises its weights)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Stateless aggregators have nothing to restore."""


def weighted(G: torch.Tensor, w: torch.Tensor, method: GradientAggregator) -> torch.Tensor:
    """g = G^T w, remembering w for the report."""
    method.last_weights = w.detach().clone()
    return w.to(G.dtype) @ G
