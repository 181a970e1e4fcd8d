"""Instance segmentation: a box, a class and a mask for each object, through Mask R-CNN's heads on
the shared pyramid (tasks/two_stage_head.py), scored as COCO does (pycocotools' `segm` evaluation on
run-length-encoded masks, and its `bbox` evaluation beside it)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch

from mtlspec.data.records import DataError
from mtlspec.tasks.base import Form, Metric
from mtlspec.tasks.objects import ObjectTask, coco_details, crowd_flags, no_detection_details


class InstanceSegmentation(ObjectTask):
    name = "instance_segmentation"
    form = Form.INSTANCES
    reads = "instance_masks"
    baseline_samples = 8  # its trivial prediction (no objects) reads none; a few show the task has labels

    def target(self, record):
        if "instance_masks" not in record:
            return None, False
        masks = np.asarray(record["instance_masks"], np.uint8)
        boxes = np.asarray(record["boxes"], np.float32).reshape(-1, 4)
        if len(masks) != len(boxes):
            raise DataError(f"{len(masks)} instance masks for {len(boxes)} boxes", record["meta"].get("file"), record["meta"].get("index"))
        return {"boxes": boxes, "labels": np.asarray(record["box_labels"], np.int64), "masks": masks, "crowd": crowd_flags(record, len(boxes))}, True

    def placeholder(self, image_size):
        return {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros((0,), np.int64), "masks": np.zeros((0, image_size, image_size), np.uint8),
                "crowd": np.zeros((0,), bool)}

    def output_problem(self, output, batch, image_size, strides):
        levels = output[0]
        if len(levels) != len(strides):
            return f"the head gives {len(levels)} levels for {len(strides)} strides"
        return None

    def build_head(self, vector_channels, pyramid_channels, strides, image_size):
        from mtlspec.tasks.two_stage_head import TwoStageAdapter

        self.head = TwoStageAdapter(self.spec.head, self.num_classes, pyramid_channels, strides, image_size, masks=True)
        return self.head

    def metric(self):
        return InstanceMetric(self.num_classes)

    def trivial_prediction(self, train_targets, count, image_size):
        return [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64),
                 "masks": torch.zeros(0, image_size, image_size, dtype=torch.bool)} for _ in range(count)]


def encode(mask: np.ndarray) -> dict:
    """A binary (H, W) mask as COCO's run-length encoding (counts as text, as results files hold it)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def coco_results(prediction: dict, image_id: int, category_ids: list[int] | None = None) -> list[dict]:
    """One image's instances as COCO results entries: bbox as [x, y, width, height], the mask as RLE."""
    out = []
    for box, score, label, mask in zip(np.asarray(prediction["boxes"]), np.asarray(prediction["scores"]),
                                       np.asarray(prediction["labels"]), np.asarray(prediction["masks"])):
        x1, y1, x2, y2 = (float(v) for v in box)
        category = category_ids[int(label)] if category_ids else int(label) + 1
        out.append({"image_id": image_id, "category_id": category, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(score),
                    "segmentation": encode(mask)})
    return out


class InstanceMetric(Metric):
    """COCO mask mAP (0.50:0.95), mask mAP50 and mAP75, and box mAP, over the labelled images,
    computed by pycocotools from the masks and boxes at the image size the model sees. Masks are
    kept run-length encoded from `update` on (a few hundred bytes an object, not H x W)."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.images: list[tuple[dict, list[dict]]] = []  # (size and truth with RLE masks, COCO results entries without image id)

    def update(self, prediction, target, has):
        for pred, true, labelled in zip(prediction, target, has.tolist()):
            if labelled:
                masks = np.asarray(true["masks"])
                truth = {"height": int(masks.shape[-2]), "width": int(masks.shape[-1]),
                         "objects": [(np.asarray(b, np.float64), int(lab), bool(c), encode(m), float(m.sum()))
                                     for b, lab, c, m in zip(np.asarray(true["boxes"]), np.asarray(true["labels"]),
                                                             np.asarray(true.get("crowd", np.zeros(len(masks), bool)), bool), masks)]}
                self.images.append((truth, coco_results(pred, 0)))

    def compute(self):
        if not self.images:
            return {}
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        images, annotations, detections = [], [], []
        for image_id, (truth, found) in enumerate(self.images, start=1):
            images.append({"id": image_id, "width": truth["width"], "height": truth["height"]})
            for box, label, crowd, rle, area in truth["objects"]:
                x1, y1, x2, y2 = (float(v) for v in box)
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": label + 1, "iscrowd": int(crowd),
                                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": area, "segmentation": rle})
            detections.extend({**d, "image_id": image_id} for d in found)
        if not detections:
            self.per_class = no_detection_details(self.num_classes, [a["category_id"] - 1 for a in annotations if not a["iscrowd"]])
            return {"mask_map": 0.0, "mask_map50": 0.0, "mask_map75": 0.0, "box_map": 0.0}
        truth = COCO()
        truth.dataset = {"images": images, "annotations": annotations, "categories": [{"id": c + 1} for c in range(self.num_classes)]}
        out = {}
        with contextlib.redirect_stdout(io.StringIO()):
            truth.createIndex()
            found = truth.loadRes(detections)
            for kind in ("segm", "bbox"):
                evaluation = COCOeval(truth, found, kind)
                evaluation.evaluate()
                evaluation.accumulate()
                evaluation.summarize()
                stats = [max(float(s), 0.0) for s in evaluation.stats[:3]]
                if kind == "segm":
                    out.update(mask_map=stats[0], mask_map50=stats[1], mask_map75=stats[2])
                    self.per_class = coco_details(evaluation)
                else:
                    out["box_map"] = stats[0]
        return out

    def details(self):
        """Per-class mask AP and the mask precision-recall curve at IoU 0.50 (see objects.coco_details)."""
        return getattr(self, "per_class", None)
