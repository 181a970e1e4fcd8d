"""Zero-shot scores as Xian, Lampert, Schiele & Akata, "Zero-Shot Learning - A Comprehensive
Evaluation of the Good, the Bad and the Ugly" (TPAMI 2018), define them, with calibrated stacking's
seen-unseen curve (Chao, Changpinyo, Gong & Sha, "An Empirical Study and Analysis of Generalized
Zero-Shot Learning for Object Recognition in the Wild", ECCV 2016).

Every accuracy is per class: the mean over the classes of a group (present in the evaluated split)
of each class's share of correctly labelled samples (Xian et al. eq. 5), so frequent classes do
not dominate.
- zsl_top1: images of unseen classes, labelled among the unseen classes only (the ZSL setting).
- gzsl_u, gzsl_s: images of unseen (seen) classes, labelled among all classes (generalized ZSL);
  gzsl_h = 2 u s / (u + s), their harmonic mean (Xian et al. eq. 6), 0 when both are 0.
- ausuc: the area under the curve of (u, s) as a penalty on the seen classes' scores sweeps from
  -inf (everything labelled seen) to +inf (everything unseen): Chao et al.'s AUSUC, computed at
  every breakpoint of the sweep (each image's gap between its best seen and best unseen score)
  rather than on a grid, with the trapezoidal rule as they use it.
"""

from __future__ import annotations

from typing import Any

import torch

from mtlspec.tasks.base import Metric, confusion_details

CURVE_POINTS = 101  # points of the seen-unseen curve kept for the report


def per_class_accuracy(correct: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> float:
    """The mean over the classes in `target` of each class's accuracy (0 when there are no samples)."""
    if len(target) == 0:
        return 0.0
    classes = target.unique()
    return float(torch.stack([correct[target == c].double().mean() for c in classes]).mean())


def harmonic(u: float, s: float) -> float:
    return 2 * u * s / (u + s) if u + s > 0 else 0.0


def seen_unseen_curve(log_probs: torch.Tensor, target: torch.Tensor, seen: torch.Tensor) -> dict[str, list[float]]:
    """(penalty, u, s) at -inf and at each breakpoint of the seen-class penalty, in increasing penalty.

    With penalty g on the seen classes' scores, an image is labelled with its best seen class when
    its gap d = best seen - best unseen exceeds g, else with its best unseen class. Each image
    counts 1 / (its class's count x the classes of its group) so u and s are per-class accuracies."""
    scores = log_probs.double()
    best_seen, seen_label = scores.masked_fill(~seen, -float("inf")).max(dim=1)
    best_unseen, unseen_label = scores.masked_fill(seen, -float("inf")).max(dim=1)
    gap = best_seen - best_unseen
    is_seen = seen[target]
    weight = torch.zeros(len(target), dtype=torch.float64)
    for group in (is_seen, ~is_seen):
        classes = target[group].unique()
        for c in classes:
            members = target == c
            weight[members] = 1.0 / (int(members.sum()) * len(classes))
    seen_gain = torch.where(is_seen & (seen_label == target), weight, torch.zeros_like(weight))  # lost once g >= d
    unseen_gain = torch.where(~is_seen & (unseen_label == target), weight, torch.zeros_like(weight))  # won once g >= d
    order = torch.argsort(gap)
    thresholds, s_lost, u_won = gap[order], torch.cumsum(seen_gain[order], 0), torch.cumsum(unseen_gain[order], 0)
    keep = torch.ones(len(thresholds), dtype=torch.bool)  # ties: the last of each group of equal gaps holds the totals
    keep[:-1] = thresholds[1:] != thresholds[:-1]
    finite = keep & torch.isfinite(thresholds)
    s_total = float(seen_gain.sum())
    penalty = [-float("inf")] + thresholds[finite].tolist()
    u = [0.0] + u_won[finite].tolist()
    s = [s_total] + (s_total - s_lost[finite]).tolist()
    return {"penalty": penalty, "unseen": u, "seen": s}


def area(curve: dict[str, list[float]]) -> float:
    """The trapezoidal area under s as a function of u."""
    u, s = curve["unseen"], curve["seen"]
    return float(sum((u[i + 1] - u[i]) * (s[i + 1] + s[i]) / 2 for i in range(len(u) - 1)))


class ZeroShotMetric(Metric):
    def __init__(self, seen: torch.Tensor, calibration: float):
        self.seen, self.calibration = seen.cpu(), calibration
        self.probs: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []

    def update(self, prediction, target, has):
        self.probs.append(prediction[has].float().cpu())
        self.targets.append(target[has].cpu())

    def compute(self):
        probs, target = torch.cat(self.probs), torch.cat(self.targets)
        if len(target) == 0:
            return {}
        seen, num_classes = self.seen, probs.shape[1]
        is_seen = seen[target]
        predicted = probs.argmax(dim=1)
        among_unseen = probs.masked_fill(seen, -1.0).argmax(dim=1)
        u = per_class_accuracy((predicted == target)[~is_seen], target[~is_seen])
        s = per_class_accuracy((predicted == target)[is_seen], target[is_seen])
        self.confusion = torch.bincount(target * num_classes + predicted, minlength=num_classes**2).reshape(num_classes, num_classes)
        log_probs = torch.log(probs.double().clamp_min(1e-300))
        self.curve = seen_unseen_curve(log_probs, target, seen)
        out = {"zsl_top1": per_class_accuracy((among_unseen == target)[~is_seen], target[~is_seen]),
               "gzsl_u": u, "gzsl_s": s, "gzsl_h": harmonic(u, s), "ausuc": area(self.curve)}
        hs = [harmonic(a, b) for a, b in zip(self.curve["unseen"], self.curve["seen"])]
        best = max(range(len(hs)), key=hs.__getitem__)
        # the penalty just above breakpoint `best` (between it and the next one) realises that point
        above = self.curve["penalty"][best + 1] if best + 1 < len(hs) else self.curve["penalty"][best] + 1.0
        at = self.curve["penalty"][best]
        self.best = {"h": hs[best], "u": self.curve["unseen"][best], "s": self.curve["seen"][best],
                     "calibration": None if at == -float("inf") else self.calibration + (at + above) / 2}
        self.counts = {"unseen_images": int((~is_seen).sum()), "seen_images": int(is_seen.sum())}
        return out

    def details(self):
        """The confusion matrix with per-class recall (each class's GZSL accuracy) and precision,
        the seen-unseen curve (at most CURVE_POINTS of its points), and the best H along it: an
        oracle on this split, to choose `calibration` from on validation data, not a score."""
        confusion = getattr(self, "confusion", None)
        if confusion is None:
            return None
        curve = self.curve
        step = max(1, len(curve["unseen"]) // CURVE_POINTS)
        kept = sorted(set(range(0, len(curve["unseen"]), step)) | {len(curve["unseen"]) - 1})
        shown = {k: [None if v == -float("inf") else v + self.calibration if k == "penalty" else v for v in (curve[k][i] for i in kept)]
                 for k in ("penalty", "unseen", "seen")}
        return {**confusion_details(confusion), "seen_unseen_curve": shown, "best_h": self.best,
                "seen": [bool(v) for v in self.seen], **self.counts}
