"""Temporal localization: each event of a clip as (class, start, end), anchor-free on the sequence
of frame features (ActionFormer's single-scale form, Zhang et al., ECCV 2022).

Time is in frames of the window the model sees; frame t covers [t, t + 1). At each frame the head
gives a score per class and two distances, from the frame's centre back to the event's start and
on to its end. Training: a (frame, class) is positive when the frame lies inside an event of the
class (binary cross-entropy over every pair, or ActionFormer's sigmoid focal loss, Lin et al.,
ICCV 2017, normalised by the clip's positives: `class_loss`); each frame inside an event regresses that event's boundaries (the shortest, where
events overlap) with 1 - generalized tIoU. Prediction: a segment at every (frame, class), kept by
per-class non-maximum suppression. Metric: ActivityNet's mAP (temporal_localization_metric.py).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mtlspec.tasks.base import Form, ImageLabelTask, Metric, masked_mean
from mtlspec.tasks.temporal_localization_metric import THRESHOLDS, localization_map, tiou

PRIOR = 0.01  # the classes' starting probability (the focal-loss paper's bias initialisation)
FOCAL_ALPHA, FOCAL_GAMMA = 0.25, 2.0


class TemporalHead(nn.Module):
    """Temporal convolutions (kernel 3) over the frames' vectors, then per frame the class logits
    and the two boundary distances (softplus: positive, in frames)."""

    def __init__(self, channels: int, classes: int, hidden: int, layers: int):
        super().__init__()
        convs, width = [], channels
        for _ in range(layers):
            convs += [nn.Conv1d(width, hidden, 3, padding=1), nn.GroupNorm(1, hidden), nn.ReLU(inplace=True)]
            width = hidden
        self.trunk = nn.Sequential(*convs)
        self.classes = nn.Conv1d(hidden, classes, 3, padding=1)
        self.distances = nn.Conv1d(hidden, 2, 3, padding=1)
        nn.init.constant_(self.classes.bias, -math.log((1 - PRIOR) / PRIOR))

    def forward(self, features):
        x = self.trunk(features["sequence"].transpose(1, 2))  # (N, C, T): the frames' vectors
        return {"logits": self.classes(x).transpose(1, 2), "distances": F.softplus(self.distances(x)).transpose(1, 2)}


def frame_targets(events: torch.Tensor, frames: int, classes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For one clip's events (E, 3) [class, start, end): which (frame, class) pairs are inside an
    event (T, K), which frames are inside any (T,), and those frames' (start, end) of the shortest
    event containing them (T, 2)."""
    labels = torch.zeros(frames, classes)
    inside = torch.zeros(frames, dtype=torch.bool)
    bounds = torch.zeros(frames, 2)
    length = torch.full((frames,), float("inf"))
    for cls, start, end in events.tolist():
        lo, hi = int(math.floor(start)), int(math.ceil(end))
        for t in range(max(lo, 0), min(hi, frames)):
            if start <= t + 0.5 < end:
                labels[t, int(cls)] = 1.0
                inside[t] = True
                if end - start < length[t]:
                    length[t] = end - start
                    bounds[t] = torch.tensor([start, end])
    return labels, inside, bounds


def generalized_tiou_loss(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """1 - GIoU of 1-D segments (M, 2) [start, end]: 1 - IoU + (hull - union) / hull."""
    inter = (torch.minimum(predicted[:, 1], truth[:, 1]) - torch.maximum(predicted[:, 0], truth[:, 0])).clamp(min=0)
    union = (predicted[:, 1] - predicted[:, 0]) + (truth[:, 1] - truth[:, 0]) - inter
    hull = torch.maximum(predicted[:, 1], truth[:, 1]) - torch.minimum(predicted[:, 0], truth[:, 0])
    return 1 - inter / union.clamp(min=1e-6) + (hull - union) / hull.clamp(min=1e-6)


def focal_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sigmoid focal loss per element (alpha 0.25, gamma 2)."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    p_t = p * labels + (1 - p) * (1 - labels)
    alpha = FOCAL_ALPHA * labels + (1 - FOCAL_ALPHA) * (1 - labels)
    return alpha * ce * (1 - p_t) ** FOCAL_GAMMA


def nms_1d(segments: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Indices kept by greedy non-maximum suppression at this tIoU, highest score first."""
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        if order:
            overlaps = tiou(segments[i], segments[order])
            order = [j for j, o in zip(order, overlaps) if o <= threshold]
    return keep


class TemporalLocalization(ImageLabelTask):
    name = "temporal_localization"
    form = Form.SEGMENTS
    level = "clip"
    frames = 1  # the window's frames (data/clips.py), kept in model.pt
    baseline_samples = 500

    @classmethod
    def create(cls, task_name, spec, source, data_root):
        made = super().create(task_name, spec, source, data_root)
        made.frames = int(source.clip_length)
        return made

    def saved(self):
        return {"frames": self.frames}

    @classmethod
    def restore(cls, task_name, spec, saved):
        made = super().restore(task_name, spec, saved)
        made.frames = int(saved["frames"])
        return made

    @classmethod
    def dataset_classes(cls, spec, source):
        return source.label_classes(spec.label)

    @classmethod
    def class_names(cls, spec, source):
        names = getattr(source, "label_names", None)
        return names(spec.label) if names is not None else None

    def decode(self, value, file, sample):
        try:
            events = np.asarray(value, np.float64).reshape(-1, 3)
        except (TypeError, ValueError):
            raise self._fail(f"= {value!r} is not a list of [class, start, end] events", file, sample) from None
        for cls, start, end in events:
            if not float(cls).is_integer() or not 0 <= cls < self.num_classes:
                raise self._fail(f"has an event of class {cls:g}, outside 0..{self.num_classes - 1}", file, sample)
            if not 0 <= start < end <= self.frames:
                raise self._fail(f"has an event [{start:g}, {end:g}) that is not inside the clip's {self.frames} frames", file, sample)
        return events.astype(np.float32)

    def placeholder(self, image_size):
        return np.zeros((0, 3), np.float32)

    def collate(self, targets):
        return [torch.from_numpy(np.asarray(t, np.float32).reshape(-1, 3)) for t in targets]

    def build_head(self, vector_channels, pyramid_channels, strides, image_size):
        return TemporalHead(vector_channels, self.num_classes, self.spec.hidden, self.spec.layers)

    def output_problem(self, output, batch, image_size, strides):
        expected = (batch, self.frames, self.num_classes)
        if tuple(output["logits"].shape) != expected:
            return f"the head gives scores of shape {tuple(output['logits'].shape)}, expected {expected}"
        return None

    def describe(self):
        return f"{self.name}, temporal convolutions ({self.spec.layers} x {self.spec.hidden})"

    def loss(self, output, target, has, weight):
        logits, distances = output["logits"].float(), output["distances"].float()
        n, frames, classes = logits.shape
        centres = torch.arange(frames, device=logits.device, dtype=torch.float32) + 0.5
        per_clip = []
        for i in range(n):
            labels, inside, bounds = (x.to(logits.device) for x in frame_targets(target[i], frames, classes))
            if self.spec.class_loss == "focal":  # normalised by the clip's positives, as ActionFormer does
                loss = focal_loss(logits[i], labels).sum() / max(int(labels.sum()), 1)
            else:  # each frame's binary cross-entropies summed over the classes, averaged over the frames
                loss = F.binary_cross_entropy_with_logits(logits[i], labels, reduction="sum") / frames
            if inside.any():
                d = distances[i][inside]
                predicted = torch.stack([centres[inside] - d[:, 0], centres[inside] + d[:, 1]], dim=1)
                loss = loss + generalized_tiou_loss(predicted, bounds[inside]).mean()
            per_clip.append(loss)
        return masked_mean(torch.stack(per_clip), has, weight)

    def predict(self, output, image_size):
        scores = torch.sigmoid(output["logits"].float()).detach().cpu().numpy()
        distances = output["distances"].float().detach().cpu().numpy()
        return [self.segments(s, d) for s, d in zip(scores, distances)]

    def segments(self, scores: np.ndarray, distances: np.ndarray) -> dict[str, torch.Tensor]:
        """One clip's segments: one per (frame, class), per-class NMS, the highest `max_segments`."""
        frames, classes = scores.shape
        centres = np.arange(frames) + 0.5
        spans = np.stack([np.clip(centres - distances[:, 0], 0, frames), np.clip(centres + distances[:, 1], 0, frames)], 1)
        kept_segments, kept_scores, kept_labels = [], [], []
        for c in range(classes):
            keep = nms_1d(spans, scores[:, c], self.spec.nms_tiou)
            kept_segments += [spans[k] for k in keep]
            kept_scores += [scores[k, c] for k in keep]
            kept_labels += [c] * len(keep)
        order = np.argsort(-np.asarray(kept_scores), kind="stable")[: self.spec.max_segments]
        return {"segments": torch.tensor(np.asarray(kept_segments, np.float32).reshape(-1, 2)[order]),
                "scores": torch.tensor(np.asarray(kept_scores, np.float32)[order]),
                "labels": torch.tensor(np.asarray(kept_labels, np.int64)[order])}

    def metric(self):
        return LocalizationMetric(self.num_classes)

    def trivial_prediction(self, train_targets, count, image_size):
        """Each class's mean training event, scored by how often the class occurs: what a model that
        sees no frames predicts."""
        spans, counts = defaultdict(list), defaultdict(int)
        for events in train_targets:
            for cls, start, end in np.asarray(events).reshape(-1, 3):
                spans[int(cls)].append((start, end))
                counts[int(cls)] += 1
        total = max(sum(counts.values()), 1)
        classes = sorted(spans)
        segments = torch.tensor(np.asarray([np.mean(spans[c], axis=0) for c in classes], np.float32)).reshape(-1, 2)
        scores = torch.tensor([counts[c] / total for c in classes], dtype=torch.float32)
        labels = torch.tensor(classes, dtype=torch.int64)
        return [{"segments": segments, "scores": scores, "labels": labels} for _ in range(count)]


class LocalizationMetric(Metric):
    """ActivityNet's mAP over the labelled clips: averaged over tIoU 0.5:0.05:0.95, and at 0.5 and 0.75."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.truth: list[np.ndarray] = []
        self.predictions: list[dict] = []

    def update(self, prediction, target, has):
        for pred, true, labelled in zip(prediction, target, has.tolist()):
            if labelled:
                self.truth.append(np.asarray(true, np.float64).reshape(-1, 3))
                self.predictions.append({k: np.asarray(v) for k, v in pred.items()})

    def compute(self):
        if not self.truth:
            return {}
        self.found = localization_map(self.truth, self.predictions, self.num_classes)
        return {"map": float(np.mean([m for m, _ in self.found.values()])), "map50": self.found[0.5][0], "map75": self.found[0.75][0]}

    def details(self):
        """mAP at each tIoU threshold, and each class's AP at 0.5 (None: no event of the class)."""
        found = getattr(self, "found", None)
        if found is None:
            return None
        return {"thresholds": [float(t) for t in THRESHOLDS], "map_at": [found[t][0] for t in THRESHOLDS],
                "ap50": [None if np.isnan(a) else a for a in found[0.5][1]]}
