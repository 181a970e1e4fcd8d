"""Detection: any MMDetection dense head (through the adapter), its own losses, COCO mAP via pycocotools."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch

from mtlspec.tasks.base import Form, Metric
from mtlspec.tasks.objects import ObjectTask, coco_details, crowd_flags, no_detection_details


class Detection(ObjectTask):
    name = "detection"
    form = Form.BOXES
    reads = "boxes"
    baseline_samples = 8  # its trivial prediction (no boxes) reads none; a few show the task has labels

    def target(self, record):
        if "boxes" not in record:
            return None, False
        boxes = np.asarray(record["boxes"], np.float32).reshape(-1, 4)
        return {"boxes": boxes, "labels": np.asarray(record["box_labels"], np.int64), "crowd": crowd_flags(record, len(boxes))}, True

    def placeholder(self, image_size):
        return {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros((0,), np.int64), "crowd": np.zeros((0,), bool)}

    def output_problem(self, output, batch, image_size, strides):
        """The head's outputs (scores, boxes, ...): one level per stride, each of the stride's size."""
        levels = output[0]
        if len(levels) != len(strides):
            return f"the head gives {len(levels)} levels for {len(strides)} strides"
        for level, stride in zip(levels, strides):
            if tuple(level.shape[-2:]) != (-(-image_size // stride),) * 2:
                return f"a level of shape {tuple(level.shape)} does not match stride {stride}"
        return None

    def build_head(self, vector_channels, pyramid_channels, strides, image_size):
        from mtlspec.tasks.dense_head import DenseHeadAdapter

        if self.spec.head.type == "FasterRCNN":  # the two-stage head: RPN and RoI heads
            from mtlspec.tasks.two_stage_head import TwoStageAdapter

            self.head = TwoStageAdapter(self.spec.head, self.num_classes, pyramid_channels, strides, image_size)
            return self.head
        fields = self.spec.head.model_dump()
        self.head = DenseHeadAdapter(fields, self.num_classes, pyramid_channels, strides, image_size)
        return self.head

    def metric(self):
        return DetectionMetric(self.num_classes)

    def trivial_prediction(self, train_targets, count, image_size):
        empty = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}
        return [dict(empty) for _ in range(count)]


class DetectionMetric(Metric):
    """COCO box mAP (0.50:0.95), mAP50 and mAP75 over the labelled images, computed by pycocotools."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.images: list[tuple[dict, dict]] = []

    def update(self, prediction, target, has):
        for pred, true, labelled in zip(prediction, target, has.tolist()):
            if labelled:
                self.images.append((pred, true))

    def compute(self):
        if not self.images:
            return {}
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        images, annotations, detections = [], [], []
        for image_id, (pred, true) in enumerate(self.images, start=1):
            images.append({"id": image_id, "width": 1, "height": 1})
            crowd = np.asarray(true.get("crowd", np.zeros(len(true["labels"]), bool)), bool)
            for box, label, is_crowd in zip(np.asarray(true["boxes"]), np.asarray(true["labels"]), crowd):
                x1, y1, x2, y2 = (float(v) for v in box)
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label) + 1,
                                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": int(is_crowd)})
            for box, score, label in zip(np.asarray(pred["boxes"]), np.asarray(pred["scores"]), np.asarray(pred["labels"])):
                x1, y1, x2, y2 = (float(v) for v in box)
                detections.append({"image_id": image_id, "category_id": int(label) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score)})
        if not detections:
            self.per_class = no_detection_details(self.num_classes, [a["category_id"] - 1 for a in annotations if not a["iscrowd"]])
            return {"map": 0.0, "map50": 0.0, "map75": 0.0}
        truth = COCO()
        truth.dataset = {"images": images, "annotations": annotations, "categories": [{"id": c + 1} for c in range(self.num_classes)]}
        with contextlib.redirect_stdout(io.StringIO()):
            truth.createIndex()
            found = truth.loadRes(detections)
            evaluation = COCOeval(truth, found, "bbox")
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        stats = [max(float(s), 0.0) for s in evaluation.stats[:3]]
        self.per_class = coco_details(evaluation)
        return {"map": stats[0], "map50": stats[1], "map75": stats[2]}

    def details(self):
        """Per-class box AP and the precision-recall curve at IoU 0.50 (see objects.coco_details)."""
        return getattr(self, "per_class", None)
