"""Tracking the boxes of a clip over its frames (MMDetection's ByteTracker, through the one door
to its registry) and scoring the tracks as MOTChallenge does: MOTA (CLEAR MOT, Bernardin &
Stiefelhagen, 2008) and IDF1 (Ristani et al., ECCV workshops 2016), computed by the motmetrics
package from per-frame matches at IoU 0.5, and HOTA (Luiten et al., IJCV 2021: the geometric mean
of detection and association accuracy, averaged over IoU thresholds 0.05 to 0.95) with its DetA
and AssA, computed by TrackEval (the benchmarks' reference code, packaged as `trackeval`).

Each clip is tracked from a fresh tracker; its ground-truth and predicted ids are made unique
across clips (clip number x 1,000,000 + id), so one accumulator holds the whole split and no
track runs from one clip into the next; for HOTA each clip is a sequence of its own, combined as
TrackEval combines a benchmark's sequences.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

MATCH_IOU = 0.5  # MOTChallenge's: a box matches a true box it overlaps by at least this IoU
CROWD_TRACK = -2  # the track id a crowd region has in the truth (data/formats/video_boxes.py CROWD)
CLIP_IDS = 1_000_000


def byte_tracker(spec: Any) -> Any:
    """MMDetection's ByteTracker with the spec's settings."""
    from mtlspec.openmmlab import build_tracker

    return build_tracker(dict(type="ByteTracker", motion=dict(type="KalmanFilter"),
                              obj_score_thrs=dict(high=spec.score_high, low=spec.score_low), init_track_thr=spec.init_score,
                              weight_iou_with_det_scores=True,
                              match_iou_thrs=dict(high=spec.match_iou_high, low=spec.match_iou_low, tentative=spec.match_iou_tentative),
                              num_frames_retain=spec.frames_retained))


def track_clip(tracker: Any, frames: list[dict[str, torch.Tensor]]) -> list[dict[str, np.ndarray]]:
    """The tracked boxes of each frame of one clip ({"boxes", "scores", "labels", "ids"}), from its
    per-frame detections ({"boxes", "scores", "labels"})."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    out = []
    for frame_id, found in enumerate(frames):  # frame 0 resets the tracker: a new clip
        sample = DetDataSample(metainfo={"frame_id": frame_id})
        sample.pred_instances = InstanceData(bboxes=torch.as_tensor(found["boxes"], dtype=torch.float32).reshape(-1, 4),
                                             scores=torch.as_tensor(found["scores"], dtype=torch.float32).reshape(-1),
                                             labels=torch.as_tensor(found["labels"], dtype=torch.int64).reshape(-1))
        tracked = tracker.track(sample)
        out.append({"boxes": tracked.bboxes.numpy(), "scores": tracked.scores.numpy(), "labels": tracked.labels.numpy(),
                    "ids": tracked.instances_id.numpy()})
    return out


def iou_matrix(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """IoU between each true box (rows) and each predicted box (columns), xyxy."""
    truth, predicted = np.asarray(truth, np.float64).reshape(-1, 4), np.asarray(predicted, np.float64).reshape(-1, 4)
    lt = np.maximum(truth[:, None, :2], predicted[None, :, :2])
    rb = np.minimum(truth[:, None, 2:], predicted[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda b: np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)  # noqa: E731
    union = area(truth)[:, None] + area(predicted)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def iou_distances(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """1 - IoU between each true box (rows) and each predicted box (columns), xyxy; NaN (no
    match possible) below MATCH_IOU, as motmetrics' own iou_matrix gives."""
    iou = iou_matrix(truth, predicted)
    return np.where(iou >= MATCH_IOU, 1 - iou, np.nan)


def hota_sequence(truth: list[dict[str, Any]], tracked: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """One clip in the form TrackEval's metrics read a sequence: per frame the true and the
    tracked ids (each numbered 0.. within the clip) and the IoU between their boxes."""
    true_ids = [np.asarray(t["track_ids"], np.int64).reshape(-1) for t in truth]
    found_ids = [np.asarray(f["ids"], np.int64).reshape(-1) for f in tracked]
    true_index = {i: n for n, i in enumerate(sorted({int(i) for ids in true_ids for i in ids}))}
    found_index = {i: n for n, i in enumerate(sorted({int(i) for ids in found_ids for i in ids}))}
    return {
        "num_timesteps": len(truth), "num_gt_ids": len(true_index), "num_tracker_ids": len(found_index),
        "num_gt_dets": sum(len(ids) for ids in true_ids), "num_tracker_dets": sum(len(ids) for ids in found_ids),
        "gt_ids": [np.asarray([true_index[int(i)] for i in ids], np.int64) for ids in true_ids],
        "tracker_ids": [np.asarray([found_index[int(i)] for i in ids], np.int64) for ids in found_ids],
        "similarity_scores": [iou_matrix(t["boxes"], f["boxes"]) for t, f in zip(truth, tracked)],
    }


def without_ignored(truth: dict[str, Any], tracked: dict[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A frame's truth without its regions to ignore (`crowd`), and its tracked boxes without those
    on one, as TrackEval prepares a benchmark's data: tracked and true boxes are matched one to one
    (Hungarian, IoU at least 0.5) and a tracked box matched to a region to ignore is dropped (MOT's
    distractors); a crowd region (track id -2, COCO's iscrowd) also drops every other tracked box
    lying more than half inside it (TrackEval's crowd-ignore regions, COCO's crowd matching)."""
    ignored = np.asarray(truth.get("crowd", np.zeros(len(np.asarray(truth["track_ids"]).reshape(-1)), bool)), bool).reshape(-1)
    if not ignored.any():
        return truth, tracked
    from scipy.optimize import linear_sum_assignment

    true_boxes, found_boxes = np.asarray(truth["boxes"], np.float64).reshape(-1, 4), np.asarray(tracked["boxes"], np.float64).reshape(-1, 4)
    iou = iou_matrix(true_boxes, found_boxes)
    score = np.where(iou >= MATCH_IOU - np.finfo(float).eps, iou, 0.0)
    rows, cols = linear_sum_assignment(-score)
    keep_found = np.ones(len(found_boxes), bool)
    keep_found[[int(c) for r, c in zip(rows, cols) if score[r, c] > 0 and ignored[r]]] = False
    matched = {int(c) for r, c in zip(rows, cols) if score[r, c] > 0}
    crowds = true_boxes[ignored & (np.asarray(truth["track_ids"]).reshape(-1) == CROWD_TRACK)]
    if len(crowds) and len(found_boxes):
        lt = np.maximum(found_boxes[:, None, :2], crowds[None, :, :2])
        rb = np.minimum(found_boxes[:, None, 2:], crowds[None, :, 2:])
        inside = np.prod(np.clip(rb - lt, 0, None), axis=2) / np.maximum(np.prod(found_boxes[:, 2:] - found_boxes[:, :2], axis=1), 1e-9)[:, None]
        for c in np.nonzero((inside > 0.5).any(axis=1))[0]:
            if int(c) not in matched:
                keep_found[c] = False
    kept_truth = {"boxes": true_boxes[~ignored], "track_ids": np.asarray(truth["track_ids"]).reshape(-1)[~ignored]}
    kept_found = {k: (np.asarray(v)[keep_found] if k in ("boxes", "ids", "scores", "labels") else v) for k, v in tracked.items()}
    return kept_truth, kept_found


def hota_metric() -> Any:
    """TrackEval's HOTA (its alphas 0.05, 0.10, ..., 0.95)."""
    from trackeval.metrics.hota import HOTA

    return HOTA()


class TrackScores:
    """Per-frame matches of every clip in one motmetrics accumulator; `compute()` gives MOTA, IDF1
    and the counts behind them."""

    def __init__(self) -> None:
        import motmetrics

        self.accumulator = motmetrics.MOTAccumulator(auto_id=True)
        self.clips = 0
        self.hota: dict[int, dict] = {}  # TrackEval's HOTA fields of each clip

    def add_clip(self, truth: list[dict[str, Any]], tracked: list[dict[str, np.ndarray]]) -> None:
        """One clip: per frame the true boxes and track ids ({"boxes", "track_ids"}, and "crowd":
        regions to ignore) and the tracked boxes ({"boxes", "ids"})."""
        pairs = [without_ignored(true, found) for true, found in zip(truth, tracked)]
        truth, tracked = [t for t, _ in pairs], [f for _, f in pairs]
        offset = self.clips * CLIP_IDS
        for true, found in zip(truth, tracked):
            true_ids = [offset + int(i) for i in np.asarray(true["track_ids"]).reshape(-1)]
            found_ids = [offset + int(i) for i in np.asarray(found["ids"]).reshape(-1)]
            self.accumulator.update(true_ids, found_ids, iou_distances(true["boxes"], found["boxes"]))
        self.hota[self.clips] = hota_metric().eval_sequence(hota_sequence(truth, tracked))
        self.clips += 1

    def compute(self) -> dict[str, float]:
        import motmetrics

        summary = motmetrics.metrics.create().compute(self.accumulator, metrics=["mota", "idf1", "num_switches", "num_false_positives",
                                                                                  "num_misses", "num_objects"], name="all")
        row = summary.loc["all"]
        hota = hota_metric().combine_sequences(self.hota) if self.hota else {"HOTA": np.zeros(1), "DetA": np.zeros(1), "AssA": np.zeros(1)}
        mota, idf1 = float(row["mota"]), float(row["idf1"])
        if int(row["num_objects"]) == 0:  # undefined (motmetrics: NaN or -inf); TrackEval's convention, its max(1, .) denominators
            mota, idf1 = -float(row["num_false_positives"]), 0.0
        return {"mota": mota, "idf1": idf1, "hota": float(np.mean(hota["HOTA"])),
                "deta": float(np.mean(hota["DetA"])), "assa": float(np.mean(hota["AssA"])), "id_switches": int(row["num_switches"]),
                "false_positives": int(row["num_false_positives"]), "misses": int(row["num_misses"]), "objects": int(row["num_objects"])}
