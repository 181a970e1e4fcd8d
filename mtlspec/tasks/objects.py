"""Objects in an image, as the detection and instance segmentation tasks read them: what both task
types share (classes and names from the dataset's boxes, targets as per-image dicts), which objects
are crowd regions (COCO's iscrowd), and the objects that train."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mtlspec.tasks.base import TaskType


class ObjectTask(TaskType):
    """A task whose targets are the objects of an image (boxes and labels, and masks for instances)."""

    mean_over_labelled = False  # MMDetection's losses normalise by their own counts

    @classmethod
    def dataset_classes(cls, spec, source):
        return source.box_classes()

    @classmethod
    def class_names(cls, spec, source):
        return source.box_names() if hasattr(source, "box_names") else None

    @classmethod
    def category_ids(cls, spec, source):
        return source.box_category_ids() if hasattr(source, "box_category_ids") else None

    def collate(self, targets):
        return [{k: torch.from_numpy(np.asarray(v)) for k, v in t.items()} for t in targets]

    def describe(self):
        return f"{self.name}, {self.spec.head.type}"

    def __getstate__(self):
        """Data-loader workers need the data side only: the head (and its weights) stays behind."""
        return {k: v for k, v in self.__dict__.items() if k != "head"}

    def loss(self, output, target, has, weight):
        # MMDetection averages over positive locations or sampled RoIs; per-sample weights do not reach these losses.
        with without_autocast(output):
            return self.head.loss(in_float32(output), target, has)

    def predict(self, output, image_size):
        with without_autocast(output):
            return self.head.predict(in_float32(output))


def in_float32(outputs: Any) -> Any:
    """A head's outputs (tensors, nested in tuples and lists) with floating tensors in float32.

    MMDetection's losses and post-processing call mmcv's compiled ops (sigmoid focal loss, NMS,
    RoIAlign), whose CUDA kernels take float32 and float16 but not bfloat16: on an H100, a bf16
    autocast run stopped with "sigmoid_focal_loss_forward_cuda_kernel not implemented for
    'BFloat16'" (docs/gpu.md). So under autocast a dense head's convolutions run in low precision
    and its loss and box decoding in float32, as mixed precision intends for reductions and losses.
    (A two-stage head's outputs are the pyramid itself: its RPN, RoI and mask heads then run in
    float32 whole, correct but without autocast's speed.)"""
    if torch.is_tensor(outputs):
        return outputs.float() if outputs.is_floating_point() else outputs
    if isinstance(outputs, (tuple, list)):
        return type(outputs)(in_float32(o) for o in outputs)
    return outputs


def without_autocast(outputs: Any) -> Any:
    """A context with autocast off on the device of the first tensor among `outputs`."""
    first = outputs
    while isinstance(first, (tuple, list)) and first:
        first = first[0]
    device = first.device.type if torch.is_tensor(first) else "cpu"
    return torch.autocast(device_type=device, enabled=False)


def crowd_flags(record: dict, count: int) -> np.ndarray:
    """Which objects are crowd regions (COCO's iscrowd): left out of the loss, ignored in matching."""
    return np.asarray(record["crowd"], bool).reshape(-1) if "crowd" in record else np.zeros(count, bool)


def without_crowd(target: dict) -> dict:
    """A target's objects that train: crowd regions dropped (MMDetection's COCO loader ignores them too)."""
    if "crowd" not in target or not bool(target["crowd"].any()):
        return target
    keep = ~target["crowd"].bool()
    return {k: v[keep] for k, v in target.items() if k != "crowd"}


def coco_details(evaluation) -> dict:
    """Per class, AP over IoU 0.50:0.95 and AP at IoU 0.50, and the precision-recall curve at IoU
    0.50 (COCO's 101 recall points; all areas, 100 detections an image), from an accumulated
    COCOeval. `curve` is the mean over the classes that have ground truth, as mAP50 averages them;
    a class without ground truth scores None."""
    precision = evaluation.eval["precision"][:, :, :, 0, -1]  # (IoU thresholds, recall points, classes)
    at50 = list(evaluation.params.iouThrs).index(0.5)
    per_class, per_class50, curves = [], [], []
    for k in range(precision.shape[2]):
        valid = precision[:, :, k] > -1
        per_class.append(float(precision[:, :, k][valid].mean()) if valid.any() else None)
        curve = precision[at50, :, k]
        per_class50.append(float(curve[curve > -1].mean()) if (curve > -1).any() else None)
        curves.append([float(v) for v in np.clip(curve, 0.0, None)] if (curve > -1).any() else None)
    present = [c for c in curves if c is not None]
    return {"ap": per_class, "ap50": per_class50, "recall_thresholds": [float(r) for r in evaluation.params.recThrs],
            "precision50": [float(v) for v in np.mean(present, axis=0)] if present else None,
            "precision50_per_class": curves}


def no_detection_details(num_classes: int, labels: list) -> dict:
    """coco_details when nothing was detected: AP 0 and precision 0 for the classes with ground
    truth (None for the others), as COCOeval scores them."""
    seen = {int(label) for label in labels}
    zero = [0.0] * 101
    return {"ap": [0.0 if k in seen else None for k in range(num_classes)], "ap50": [0.0 if k in seen else None for k in range(num_classes)],
            "recall_thresholds": [float(r) for r in np.linspace(0.0, 1.0, 101)], "precision50": zero if seen else None,
            "precision50_per_class": [zero if k in seen else None for k in range(num_classes)]}
