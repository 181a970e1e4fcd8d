"""Depth: the pyramid decoder with a positive output, L1 / L2 / scale-invariant loss, abs/rel error and δ<1.25."""

from __future__ import annotations

import torch
from torch.nn import functional as F

import numpy as np

from mtlspec.tasks.base import Form, Metric, TaskType, masked_mean
from mtlspec.tasks.dense import PyramidDecoder


class Depth(TaskType):
    name = "depth"
    form = Form.VALUE_MAPS
    reads = "depth"

    def target(self, record):
        return (record["depth"], True) if "depth" in record else (None, False)

    def placeholder(self, image_size):
        return np.zeros((image_size, image_size), np.float32)

    def output_shape(self, batch, image_size):
        return (batch, 1, image_size, image_size)

    def build_head(self, vector_channels, pyramid_channels, strides, image_size):
        return PyramidDecoder(pyramid_channels, 1, image_size)

    def loss(self, output, target, has, weight):
        pred = F.softplus(output.squeeze(1))
        valid = (target > 0).to(pred.dtype)
        count = valid.flatten(1).sum(1).clamp(min=1)
        if self.spec.loss == "scale_invariant":
            diff = (torch.log(pred.clamp(min=1e-6)) - torch.log(target.clamp(min=1e-6))) * valid
            mean = diff.flatten(1).sum(1) / count
            per_sample = diff.pow(2).flatten(1).sum(1) / count - 0.5 * mean.pow(2)
        else:
            error = (pred - target).abs() if self.spec.loss == "l1" else (pred - target).pow(2)
            per_sample = (error * valid).flatten(1).sum(1) / count
        return masked_mean(per_sample, has, weight)

    def predict(self, output, image_size):
        return F.softplus(output.squeeze(1))

    def metric(self):
        return DepthMetric()

    def trivial_prediction(self, train_targets, count, image_size):
        values = torch.cat([torch.as_tensor(t)[torch.as_tensor(t) > 0].flatten() for t in train_targets])
        return torch.full((count, image_size, image_size), float(values.mean()))


class DepthMetric(Metric):
    def __init__(self):
        self.abs = self.rel = self.delta = 0.0
        self.count = 0

    def update(self, prediction, target, has):
        pred, true = prediction[has].float().cpu(), target[has].float().cpu()
        valid = true > 0
        p, t = pred[valid].clamp(min=1e-6), true[valid]
        self.abs += (p - t).abs().sum().item()
        self.rel += ((p - t).abs() / t).sum().item()
        self.delta += (torch.maximum(p / t, t / p) < 1.25).sum().item()
        self.count += int(valid.sum())

    def compute(self):
        if self.count == 0:
            return {}
        return {"abs_err": self.abs / self.count, "rel_err": self.rel / self.count, "delta1": self.delta / self.count}
