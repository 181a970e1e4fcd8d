"""Temporal action localization's mAP as ActivityNet scores it (Heilbron et al., CVPR 2015; the
`compute_average_precision_detection` of its evaluation code): per class, predictions of every clip
in descending score; each is a true positive when some not-yet-matched ground-truth segment of its
clip and class overlaps it by at least the tIoU threshold (the best-overlapping one is taken),
else a false positive; AP is the area under the precision-recall curve with precision made
monotone (VOC's all-point interpolation); mAP is the mean over the classes that have ground
truth, and `map` averages it over tIoU 0.50:0.05:0.95."""

from __future__ import annotations

import numpy as np

THRESHOLDS = tuple(np.round(np.linspace(0.5, 0.95, 10), 2))


def tiou(segment: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Temporal IoU of one [start, end] with each row of others (M, 2)."""
    inter = np.clip(np.minimum(segment[1], others[:, 1]) - np.maximum(segment[0], others[:, 0]), 0, None)
    union = (segment[1] - segment[0]) + (others[:, 1] - others[:, 0]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under the precision-recall curve, precision made non-increasing in recall."""
    mprec = np.concatenate([[0.0], precision, [0.0]])
    mrec = np.concatenate([[0.0], recall, [1.0]])
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    changed = np.nonzero(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[changed] - mrec[changed - 1]) * mprec[changed]))


def average_precision(truth: list[np.ndarray], predicted: list[tuple[int, float, np.ndarray]], threshold: float) -> float:
    """AP of one class: `truth[clip]` (G, 2) segments, `predicted` (clip, score, [start, end])."""
    positives = sum(len(t) for t in truth)
    if positives == 0:
        return float("nan")
    if not predicted:
        return 0.0
    order = sorted(range(len(predicted)), key=lambda i: -predicted[i][1])  # stable: ties keep their order
    used = [np.zeros(len(t), bool) for t in truth]
    tp = np.zeros(len(order))
    for rank, i in enumerate(order):
        clip, _, segment = predicted[i]
        if len(truth[clip]) == 0:
            continue
        overlaps = tiou(segment, truth[clip])
        for j in np.argsort(-overlaps, kind="stable"):
            if overlaps[j] < threshold:
                break
            if not used[clip][j]:
                used[clip][j] = True
                tp[rank] = 1
                break
    tp_sum = np.cumsum(tp)
    fp_sum = np.cumsum(1 - tp)
    return interpolated_ap(tp_sum / (tp_sum + fp_sum), tp_sum / positives)


def localization_map(truth: list[np.ndarray], predictions: list[dict], num_classes: int,
                     thresholds: tuple[float, ...] = THRESHOLDS) -> dict[float, tuple[float, list[float]]]:
    """Per threshold: (mAP over classes with ground truth, AP per class (nan: no ground truth)).
    `truth[clip]` (G, 3) rows [class, start, end]; `predictions[clip]` {"segments" (M, 2),
    "scores" (M,), "labels" (M,)}."""
    out = {}
    for threshold in thresholds:
        aps = []
        for c in range(num_classes):
            class_truth = [t[t[:, 0] == c, 1:3] for t in truth]
            predicted = [(clip, float(s), seg) for clip, p in enumerate(predictions)
                         for seg, s, label in zip(p["segments"], p["scores"], p["labels"]) if int(label) == c]
            aps.append(average_precision(class_truth, predicted, threshold))
        valid = [a for a in aps if not np.isnan(a)]
        out[threshold] = (float(np.mean(valid)) if valid else 0.0, aps)
    return out
