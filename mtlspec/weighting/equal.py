"""Equal weighting (EW): every task loss counts once; the baseline every other method is compared with."""

from __future__ import annotations

import torch

from mtlspec.weighting.base import LossWeighting


class EqualWeighting(LossWeighting):
    def weights(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {task: torch.ones((), device=loss.device) for task, loss in losses.items()}
