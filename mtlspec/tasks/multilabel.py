"""Multilabel: independent sigmoids over pooled features, binary cross-entropy, mAP and macro-F1."""

from __future__ import annotations

import torch
from torch.nn import functional as F

import numpy as np

from mtlspec.tasks.base import Form, ImageLabelTask, Metric, masked_mean
from mtlspec.tasks.classification import VectorHead


def average_precision(scores: torch.Tensor, positives: torch.Tensor) -> float:
    """AP of one label: the mean of precision at each positive, ranked by score (ties broken by order)."""
    order = torch.argsort(scores, descending=True, stable=True)
    hits = positives[order].float()
    if hits.sum() == 0:
        return float("nan")
    precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


class Multilabel(ImageLabelTask):
    name = "multilabel"
    episodic = True
    form = Form.LABEL_PROBABILITIES

    @classmethod
    def dataset_classes(cls, spec, source):
        return source.label_classes(spec.label)

    def decode(self, value, file, sample):
        vector = np.asarray(value, np.float32)
        if vector.shape != (self.num_classes,):
            raise self._fail(f"has {vector.size} entries, expected {self.num_classes}", file, sample)
        if not np.isfinite(vector).all():
            raise self._fail("holds a value that is not a finite number", file, sample)
        return vector

    def placeholder(self, image_size):
        return np.zeros(self.num_classes, np.float32)

    def build_head(self, vector_channels, pyramid_channels, strides, image_size):
        return VectorHead(vector_channels, self.num_classes)

    def loss(self, output, target, has, weight):
        per_sample = F.binary_cross_entropy_with_logits(output, target, reduction="none").mean(dim=1)
        return masked_mean(per_sample, has, weight)

    def predict(self, output, image_size):
        return output.sigmoid()

    def metric(self):
        return MultilabelMetric(self.spec.threshold)

    def trivial_prediction(self, train_targets, count, image_size):
        frequency = torch.as_tensor(sum(train_targets) / max(len(train_targets), 1), dtype=torch.float32)
        return frequency.expand(count, -1).clone()


class MultilabelMetric(Metric):
    def __init__(self, threshold: float):
        self.threshold = threshold
        self.scores: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []

    def update(self, prediction, target, has):
        self.scores.append(prediction[has].float().cpu())
        self.targets.append(target[has].cpu())

    def compute(self):
        scores, target = torch.cat(self.scores), torch.cat(self.targets) > 0.5
        if len(target) == 0:
            return {}
        aps = [average_precision(scores[:, j], target[:, j]) for j in range(target.shape[1])]
        self.per_label = {"ap": [a if a == a else None for a in aps]}
        aps = [a for a in aps if a == a]
        pred = scores >= self.threshold
        f1s = []
        for j in range(target.shape[1]):
            tp = (pred[:, j] & target[:, j]).sum().item()
            denom = 2 * tp + (pred[:, j] & ~target[:, j]).sum().item() + (~pred[:, j] & target[:, j]).sum().item()
            if denom:
                f1s.append(2 * tp / denom)
            self.per_label.setdefault("f1", []).append(2 * tp / denom if denom else None)
        return {"map": sum(aps) / len(aps) if aps else 0.0, "f1": sum(f1s) / len(f1s) if f1s else 0.0}

    def details(self):
        """Each label's average precision and F1 at the threshold (None for a label never present)."""
        return getattr(self, "per_label", None)
