"""The weighting interface the trainer calls.

Loss-based methods map the task losses (and their history) to weights; the trainer then
back-propagates the weighted sum. Gradient-based methods (issue #7) will instead combine the
per-task gradient matrix through a pure `aggregate(G) -> g`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch


class LossWeighting(ABC):
    """Weights for the task losses of one step."""

    def __init__(self, tasks: list[str], spec: Any):
        self.tasks, self.spec = tasks, spec

    @abstractmethod
    def weights(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One weight per task (tensors; methods with learned weights keep them in the graph)."""

    def parameters(self) -> list[torch.nn.Parameter]:
        """Learned parameters of the method itself (none for fixed weights)."""
        return []

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Fixed-weight methods have no state to restore."""
