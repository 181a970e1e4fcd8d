"""Semantic segmentation: the pyramid decoder, per-pixel cross-entropy (255 ignored), mIoU and pixel accuracy."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from mtlspec.data.records import IGNORE_INDEX
import numpy as np

from mtlspec.tasks.base import Form, Metric, TaskType, confusion_details, masked_mean
from mtlspec.tasks.dense import PyramidDecoder


class Segmentation(TaskType):
    name = "segmentation"
    form = Form.CLASS_MAPS
    reads = "mask"

    @classmethod
    def dataset_classes(cls, spec, source):
        return source.mask_classes()

    @classmethod
    def class_names(cls, spec, source):
        return source.mask_names() if hasattr(source, "mask_names") else None

    def target(self, record):
        return (record["mask"], True) if "mask" in record else (None, False)

    def placeholder(self, image_size):
        return np.full((image_size, image_size), IGNORE_INDEX, np.int64)

    def output_shape(self, batch, image_size):
        return (batch, self.num_classes, image_size, image_size)

    def member_prediction(self, output, image_size):
        return output.softmax(dim=1)

    def scored(self, combined):
        return combined.argmax(dim=1)

    def build_head(self, vector_channels, pyramid_channels, strides, image_size):
        return PyramidDecoder(pyramid_channels, self.num_classes, image_size)

    def loss(self, output, target, has, weight):
        pixels = F.cross_entropy(output, target, ignore_index=IGNORE_INDEX, reduction="none")
        valid = (target != IGNORE_INDEX).flatten(1).sum(1).clamp(min=1)
        per_sample = pixels.flatten(1).sum(1) / valid
        return masked_mean(per_sample, has, weight)

    def predict(self, output, image_size):
        return output.argmax(dim=1)

    def metric(self):
        return SegmentationMetric(self.num_classes)

    def trivial_prediction(self, train_targets, count, image_size):
        counts = torch.zeros(self.num_classes, dtype=torch.int64)
        for mask in train_targets:
            m = torch.as_tensor(mask)
            counts += torch.bincount(m[m != IGNORE_INDEX].flatten(), minlength=self.num_classes)[: self.num_classes]
        return torch.full((count, image_size, image_size), int(counts.argmax()), dtype=torch.int64)


class SegmentationMetric(Metric):
    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, prediction, target, has):
        pred, true = prediction[has].cpu().flatten(), target[has].cpu().flatten()
        keep = true != IGNORE_INDEX
        index = true[keep] * self.num_classes + pred[keep]
        self.confusion += torch.bincount(index, minlength=self.num_classes**2).reshape(self.num_classes, self.num_classes)

    def compute(self):
        c = self.confusion.double()
        if c.sum() == 0:
            return {}
        tp = c.diag()
        union = c.sum(0) + c.sum(1) - tp
        present = union > 0
        return {"miou": (tp[present] / union[present]).mean().item(), "pixel_accuracy": (tp.sum() / c.sum()).item()}

    def details(self):
        """The pixel confusion matrix, each class's recall and precision, and its IoU (None where it never occurs)."""
        if self.confusion.sum() == 0:
            return None
        c = self.confusion.double()
        union = c.sum(0) + c.sum(1) - c.diag()
        return {**confusion_details(self.confusion), "iou": [float(a / b) if b else None for a, b in zip(c.diag(), union)]}
