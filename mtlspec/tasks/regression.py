"""Regression: one value from pooled features, L1 / L2 / smooth-L1 loss, MAE and RMSE."""

from __future__ import annotations

import torch
from torch.nn import functional as F

import math

from mtlspec.tasks.base import Form, ImageLabelTask, Metric, masked_mean
from mtlspec.tasks.classification import VectorHead

LOSSES = {"l1": F.l1_loss, "l2": F.mse_loss, "smooth_l1": F.smooth_l1_loss}


class Regression(ImageLabelTask):
    name = "regression"
    form = Form.VALUES
    replaceable_target = True

    def decode(self, value, file, sample):
        if not math.isfinite(float(value)):
            raise self._fail(f"= {value!r} is not a finite number", file, sample)
        return float(value)

    def placeholder(self, image_size):
        return 0.0

    def collate(self, targets):
        return torch.tensor(targets, dtype=torch.float32)

    def output_shape(self, batch, image_size):
        return (batch, 1)

    def build_head(self, vector_channels, pyramid_channels, strides, image_size):
        return VectorHead(vector_channels, 1)

    def loss(self, output, target, has, weight):
        return masked_mean(LOSSES[self.spec.loss](output.squeeze(1), target, reduction="none"), has, weight)

    def predict(self, output, image_size):
        return output.squeeze(1)

    def metric(self):
        return RegressionMetric()

    def trivial_prediction(self, train_targets, count, image_size):
        return torch.full((count,), float(sum(train_targets) / max(len(train_targets), 1)))


class RegressionMetric(Metric):
    def __init__(self):
        self.errors: list[torch.Tensor] = []

    def update(self, prediction, target, has):
        self.errors.append((prediction[has].float() - target[has].float()).cpu())

    def compute(self):
        errors = torch.cat(self.errors)
        if len(errors) == 0:
            return {}
        return {"mae": errors.abs().mean().item(), "rmse": errors.pow(2).mean().sqrt().item()}
