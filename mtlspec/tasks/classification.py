"""Classification: a linear head on pooled features, cross-entropy, accuracy / top-k / macro-F1."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mtlspec.tasks.base import Form, ImageLabelTask, Metric, confusion_details, masked_mean


class VectorHead(nn.Module):
    """A small MLP over the pooled feature vector."""

    def __init__(self, channels: int, outputs: int, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, outputs))

    def forward(self, features: dict[str, Any]) -> torch.Tensor:
        return self.net(features["vector"])


class Classification(ImageLabelTask):
    name = "classification"
    episodic = True
    form = Form.CLASS_PROBABILITIES

    @classmethod
    def dataset_classes(cls, spec, source):
        return source.label_classes(spec.label)

    def decode(self, value, file, sample):
        number = float(value)
        if not math.isfinite(number) or not number.is_integer():
            raise self._fail(f"= {value!r} is not a class index (a whole number from 0)", file, sample)
        if not 0 <= number < self.num_classes:
            raise self._fail(f"= {int(number)} is outside 0..{self.num_classes - 1}", file, sample)
        return int(number)

    def placeholder(self, image_size):
        return 0

    def collate(self, targets):
        return torch.tensor(targets, dtype=torch.int64)

    def build_head(self, vector_channels, pyramid_channels, strides, image_size):
        return VectorHead(vector_channels, self.num_classes)

    def loss(self, output, target, has, weight):
        return masked_mean(F.cross_entropy(output, target, reduction="none"), has, weight)

    def predict(self, output, image_size):
        return output.softmax(dim=1)

    def metric(self):
        return ClassificationMetric(self.num_classes, self.spec.top_k)

    def trivial_prediction(self, train_targets, count, image_size):
        majority = Counter(int(t) for t in train_targets).most_common(1)[0][0]
        probs = torch.full((count, self.num_classes), 0.0)
        probs[:, majority] = 1.0
        return probs


class ClassificationMetric(Metric):
    def __init__(self, num_classes: int, top_k: int):
        self.num_classes, self.top_k = num_classes, min(top_k, num_classes)
        self.probs: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []

    def update(self, prediction, target, has):
        self.probs.append(prediction[has].float().cpu())
        self.targets.append(target[has].cpu())

    def compute(self):
        probs, target = torch.cat(self.probs), torch.cat(self.targets)
        if len(target) == 0:
            return {}
        pred = probs.argmax(dim=1)
        self.confusion = torch.bincount(target * self.num_classes + pred, minlength=self.num_classes**2).reshape(self.num_classes, self.num_classes)
        topk = probs.topk(self.top_k, dim=1).indices
        f1s = []
        for c in range(self.num_classes):
            tp = ((pred == c) & (target == c)).sum().item()
            fp = ((pred == c) & (target != c)).sum().item()
            fn = ((pred != c) & (target == c)).sum().item()
            if tp + fp + fn:
                f1s.append(2 * tp / (2 * tp + fp + fn))
        return {
            "accuracy": (pred == target).float().mean().item(),
            "top_k": (topk == target[:, None]).any(dim=1).float().mean().item(),
            "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0,
        }

    def details(self):
        """The confusion matrix (rows: true class, columns: predicted) and each class's recall and precision."""
        confusion = getattr(self, "confusion", None)
        return None if confusion is None else confusion_details(confusion)

