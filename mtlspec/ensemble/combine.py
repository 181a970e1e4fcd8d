"""Combining members' predictions: soft voting (weighted mean of probabilities or values) and hard
voting (weighted mode of the labels), per task type.

Semantics follow scikit-learn's VotingClassifier: soft = argmax of the weighted average of
probabilities; hard = the label with the largest total weight (ties go to the lowest label).
"""

from __future__ import annotations

import torch


def weighted_mean(values: list[torch.Tensor], weights: list[float] | None = None) -> torch.Tensor:
    """The weighted average of the members' probabilities or values (weights normalised)."""
    w = torch.tensor(weights if weights is not None else [1.0] * len(values), dtype=torch.float64)
    w = w / w.sum()
    return sum(wi * v.double() for wi, v in zip(w, values)).to(values[0].dtype)


def vote(labels: list[torch.Tensor], num_classes: int, weights: list[float] | None = None) -> torch.Tensor:
    """(N,) labels per member -> (N,) the label with the largest total weight; ties to the lowest."""
    w = weights if weights is not None else [1.0] * len(labels)
    tally = torch.zeros(labels[0].shape[0], num_classes, dtype=torch.float64)
    for wi, lab in zip(w, labels):
        tally.scatter_add_(1, lab.long().view(-1, 1), torch.full((len(lab), 1), float(wi), dtype=torch.float64))
    return tally.argmax(dim=1)


def vote_multilabel(scores: list[torch.Tensor], threshold: float, weights: list[float] | None = None) -> torch.Tensor:
    """Per label, the weighted majority of the members' yes/no decisions (as 0/1 scores)."""
    w = torch.tensor(weights if weights is not None else [1.0] * len(scores), dtype=torch.float64)
    yes = sum(wi * (s >= threshold).double() for wi, s in zip(w, scores))
    return (yes > w.sum() / 2).to(scores[0].dtype)


def oob_mean(values: list[torch.Tensor], out_of_bag: torch.Tensor) -> torch.Tensor:
    """Per sample, the mean over the members that did not train on it (bagging's out-of-bag
    prediction). values[m]: (N, ...); out_of_bag: (N, M) booleans. Rows with no such member are 0."""
    stacked = torch.stack([v.double() for v in values], dim=1)  # (N, M, ...)
    mask = out_of_bag.double().view(*out_of_bag.shape, *([1] * (stacked.dim() - 2)))
    count = mask.sum(dim=1).clamp(min=1)
    return ((stacked * mask).sum(dim=1) / count).to(values[0].dtype)
