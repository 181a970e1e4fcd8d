"""Member weights fitted on the validation split, for `weighted_mean` without given weights.

- Probabilities (classification, multilabel per label, segmentation per pixel): the weights that
  maximise the likelihood of the true labels under the weighted mixture, i.e. minimise the
  negative log-likelihood of the weighted mean; found by the EM iteration for mixture weights.
- Values (regression, depth): the weights on the simplex minimising the squared error of the
  weighted mean; with sum w = 1 the error is w^T K w, K_mn = sum_i (p_mi - y_i)(p_ni - y_i),
  solved exactly by the min-norm QP of the weighting methods.
"""

from __future__ import annotations

import torch

from mtlspec.tasks.base import Form
from mtlspec.weighting.qp import simplex_min_norm

BY_VALUE = (Form.VALUES, Form.VALUE_MAPS)  # fitted by least squares; the other forms are probabilities


def mixture_weights(likelihoods: torch.Tensor, iterations: int = 500, tol: float = 1e-10) -> list[float]:
    """likelihoods: (S, M) probability each member gives the true label of each sample (or pixel)."""
    L = likelihoods.double().clamp(min=1e-12)
    w = torch.full((L.shape[1],), 1.0 / L.shape[1], dtype=torch.float64)
    for _ in range(iterations):
        responsibility = (L * w) / (L * w).sum(dim=1, keepdim=True)
        new = responsibility.mean(dim=0)
        if (new - w).abs().max() < tol:
            w = new
            break
        w = new
    return w.tolist()


def least_squares_weights(errors: list[torch.Tensor]) -> list[float]:
    """errors[m]: member m's prediction minus the truth, over the same samples (or pixels)."""
    E = torch.stack([e.double().flatten() for e in errors])
    return simplex_min_norm((E @ E.T).numpy()).tolist()


class WeightFitter:
    """Accumulates what each task's fit needs, batch by batch, over the validation split."""

    def __init__(self, form: Form, members: int):
        self.form, self.members = form, members
        self.parts: list[torch.Tensor] = []

    def update(self, predictions: list[torch.Tensor], target: torch.Tensor, has: torch.Tensor) -> None:
        if not has.any():
            return
        preds = [p[has].double() for p in predictions]
        truth = target[has]
        if self.form is Form.CLASS_PROBABILITIES:
            self.parts.append(torch.stack([p.gather(1, truth.long().view(-1, 1)).squeeze(1) for p in preds], dim=1))
        elif self.form is Form.CLASS_MAPS:
            valid = truth != 255
            labels = truth.clamp(max=preds[0].shape[1] - 1).long().unsqueeze(1)
            self.parts.append(torch.stack([p.gather(1, labels).squeeze(1)[valid] for p in preds], dim=1))
        elif self.form is Form.LABEL_PROBABILITIES:
            y = truth.double()
            self.parts.append(torch.stack([(p * y + (1 - p) * (1 - y)).flatten() for p in preds], dim=1))
        else:  # values: errors (maps only where the value is known, > 0)
            mask = truth > 0 if self.form is Form.VALUE_MAPS else torch.ones_like(truth, dtype=torch.bool)
            self.parts.append(torch.stack([(p - truth.double())[mask].flatten() for p in preds], dim=1))

    def weights(self) -> list[float] | None:
        if not self.parts:
            return None
        data = torch.cat(self.parts)
        if self.form in BY_VALUE:
            return least_squares_weights([data[:, m] for m in range(self.members)])
        return mixture_weights(data)
