"""One combiner per task: how an ensemble turns its members' predictions into one, and how a
member's own prediction is scored alone. Every combiner takes and returns predictions in the form
the task's metric reads (probabilities, values, label maps or per-image boxes)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mtlspec.ensemble.box_fusion import fuse
from mtlspec.ensemble.combine import vote, vote_multilabel, weighted_mean
from mtlspec.tasks.base import Form


class Averaging:
    """mean, weighted_mean, vote and box_fusion; also how bagging, snapshot and boosting combine
    the tasks they do not treat otherwise (averaged; boxes fused with box_fusion's defaults)."""

    def __init__(self, task_type: Any, strategy: Any, fitted: list[float] | None = None):
        self.task_type, self.strategy = task_type, strategy
        self.weights = getattr(strategy, "weights", None) or fitted

    def __call__(self, predictions: list[Any]) -> Any:
        form, strategy, weights = self.task_type.form, self.strategy, self.weights
        if form is Form.BOXES:  # box_fusion's settings; fuse's defaults (box_fusion's too) under other strategies
            settings = {"iou": strategy.iou, "skip_score": strategy.skip_score, "method": strategy.method} if strategy.type == "box_fusion" else {}
            return [fuse([p[i] for p in predictions], weights=weights, **settings) for i in range(len(predictions[0]))]
        if strategy.type == "vote":
            if form is Form.CLASS_PROBABILITIES:
                classes = self.task_type.num_classes
                return torch.nn.functional.one_hot(vote([p.argmax(dim=1) for p in predictions], classes, weights), classes).float()
            return vote_multilabel(predictions, getattr(self.task_type.spec, "threshold", 0.5), weights)
        return self.task_type.scored(weighted_mean(predictions, weights))

    def alone(self, prediction: Any) -> Any:
        return self.task_type.scored(prediction)


class Samme:
    """Boosting, classification: the members' labels weighted by their SAMME weights."""

    def __init__(self, booster: Any):
        self.booster = booster

    def __call__(self, predictions: list[torch.Tensor]) -> torch.Tensor:
        return torch.from_numpy(self.booster.decision([p.argmax(dim=1).numpy() for p in predictions])).float()

    def alone(self, prediction: torch.Tensor) -> torch.Tensor:
        return prediction


class Residual:
    """Boosting, regression: the mean target plus the shrunken sum of the members' residual fits."""

    def __init__(self, booster: Any):
        self.booster = booster

    def __call__(self, predictions: list[torch.Tensor]) -> torch.Tensor:
        return torch.from_numpy(self.booster.predict([p.double().numpy() for p in predictions])).float()

    def alone(self, prediction: torch.Tensor) -> torch.Tensor:
        """A member fits residuals: alone, it predicts the mean target plus its fit."""
        return prediction + self.booster.init


class Stacked:
    """Stacking: the meta-model over the members' outputs."""

    def __init__(self, stacker: Any):
        self.stacker = stacker

    def __call__(self, predictions: list[torch.Tensor]) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.stacker.predict([p.double().numpy() for p in predictions]))).float()

    def alone(self, prediction: torch.Tensor) -> torch.Tensor:
        return prediction
