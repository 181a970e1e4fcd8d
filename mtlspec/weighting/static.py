"""Static weighting: fixed weights from the spec (`weighting.weights`), 1 for tasks it does not list."""

from __future__ import annotations

import torch

from mtlspec.weighting.base import LossWeighting


class StaticWeighting(LossWeighting):
    def weights(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {task: torch.tensor(float(self.spec.weights.get(task, 1.0)), device=loss.device) for task, loss in losses.items()}
