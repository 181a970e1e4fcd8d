"""Fusing detections from several members per image.

- Weighted boxes fusion (Solovyev, Wang, Gabruseva, "Weighted boxes fusion", Image and Vision
  Computing 2021): boxes of one label, in descending score, join the first cluster whose fused
  box they overlap by more than `iou`; a cluster's box is the score-weighted mean of its boxes,
  its score the mean score times min(boxes, members) / members.
- NMS-merge: the same clusters, but each keeps its highest-scoring box and that score.
Boxes below `skip_score` are dropped first.
"""

from __future__ import annotations

import torch


def _iou(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    lt = torch.maximum(box[:2], boxes[:, :2])
    rb = torch.minimum(box[2:], boxes[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    area = (box[2:] - box[:2]).prod()
    areas = (boxes[:, 2:] - boxes[:, :2]).prod(dim=1)
    return inter / (area + areas - inter).clamp(min=1e-12)


def fuse(members: list[dict[str, torch.Tensor]], iou: float = 0.55, skip_score: float = 0.0, method: str = "wbf",
         weights: list[float] | None = None) -> dict[str, torch.Tensor]:
    """members: per member {"boxes" (n, 4), "scores" (n,), "labels" (n,)} for one image."""
    n_members = len(members)
    w = weights if weights is not None else [1.0] * n_members
    entries = []
    for m, pred in enumerate(members):
        for box, score, label in zip(pred["boxes"], pred["scores"], pred["labels"]):
            if float(score) >= skip_score:
                entries.append((float(score) * w[m], int(label), box.double()))
    entries.sort(key=lambda e: -e[0])
    out_boxes, out_scores, out_labels = [], [], []
    for label in sorted({e[1] for e in entries}):
        clusters: list[list[tuple[float, torch.Tensor]]] = []
        fused: list[torch.Tensor] = []
        for score, _, box in (e for e in entries if e[1] == label):
            match = -1
            if fused:
                overlaps = _iou(box, torch.stack(fused))
                best = int(overlaps.argmax())
                if float(overlaps[best]) > iou:
                    match = best
            if match < 0:
                clusters.append([(score, box)])
                fused.append(box.clone())
            else:
                clusters[match].append((score, box))
                scores = torch.tensor([s for s, _ in clusters[match]], dtype=torch.float64)
                fused[match] = (scores[:, None] * torch.stack([b for _, b in clusters[match]])).sum(0) / scores.sum()
        for cluster, box in zip(clusters, fused):
            scores = [s for s, _ in cluster]
            if method == "wbf":
                out_boxes.append(box)
                out_scores.append(sum(scores) / len(scores) * min(len(cluster), n_members) / n_members)
            else:
                out_boxes.append(cluster[0][1])
                out_scores.append(cluster[0][0])
            out_labels.append(label)
    if not out_boxes:
        return {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}
    return {"boxes": torch.stack(out_boxes).float(), "scores": torch.tensor(out_scores, dtype=torch.float32),
            "labels": torch.tensor(out_labels, dtype=torch.int64)}
