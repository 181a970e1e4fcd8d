"""The four ways a zero-shot head matches an image to a class description: their class embeddings,
scores and per-sample losses, as plain functions of tensors (tasks/zero_shot.py applies them).

An image's embedding `z` (N, A) lives in the attribute space of the class table `S` (K, A); the
losses see the seen classes' rows only, the scores every class's.

- DAP, Lampert, Nickisch & Harmeling, "Attribute-Based Classification for Zero-Shot Visual Object
  Categorization", TPAMI 2014 (CVPR 2009): `z` holds one logit per attribute, trained with binary
  cross-entropy against the true class's (binary) attributes; a class scores by
  sum_m log p(a_m = s_km | x) - log p(a_m = s_km), the attribute priors p(a_m) the mean over the
  training classes (their eq. 2 with the prior of their section 5.1). Continuous tables are
  binarised at each attribute's mean over the classes (as Xian et al. do for DAP).
- ESZSL, Romera-Paredes & Torr, "An embarrassingly simple approach to zero-shot learning", ICML
  2015: min_V ||X^T V S - Y||^2 + gamma ||V S||^2 + lambda ||X^T V||^2 + gamma lambda ||V||^2 with
  Y in {-1, 1} over the seen classes; closed form V = (X X^T + gamma I)^-1 X Y S^T (S S^T + lambda
  I)^-1 on fixed features (`eszsl_closed_form`, which the tests hold the loss to). Here the
  objective is split per sample (the data terms) plus the penalty on the head's weights scaled to
  one sample (`eszsl_penalty`), so a mean over minibatches estimates the paper's objective / N.
- ALE, Akata, Perronnin, Harchaoui & Schmid, "Label-Embedding for Image Classification", TPAMI 2016
  (CVPR 2013): compatibility F(x, y) = z . s_y, with the weighted approximate ranking loss
  beta_r / r sum_k [1 + F(x, k) - F(x, y)]_+ over the r classes violating the margin, beta_r =
  sum_{i<=r} 1/i; computed exactly over the classes (they sample, for 1000 classes).
- SJE, Akata, Reed, Walter, Lee & Schiele, "Evaluation of Output Embeddings for Fine-Grained Image
  Classification", CVPR 2015: the same compatibility with the structured hinge
  max_k (Delta(y, k) + F(x, k)) - F(x, y), Delta = 1 for k != y.

The bilinear methods' class rows are standardised per attribute with the seen classes' mean and
spread, then L2-normalised (Akata et al.; Xian et al. for all of them). Without the centring, a
table of positive shares (like AwA2's continuous one) points every class the same way; centred on
the unseen classes too, the -1 targets of ESZSL's squared loss (and the ranking losses' pushes
away from the wrong seen classes) push every image towards the unseen classes' side, which then
take every generalized prediction.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

PRIOR_FLOOR = 1e-3  # DAP's attribute priors and posteriors are kept inside [floor, 1 - floor]: log 0 is no score


def class_embeddings(values: torch.Tensor, method: str, seen: torch.Tensor) -> torch.Tensor:
    """The class table (K, A) as the method uses it: DAP's binary attributes, or rows standardised
    with the seen classes' mean and spread of each attribute, then L2-normalised."""
    if method == "dap":
        return (values > values.mean(dim=0, keepdim=True)).to(values.dtype) if not _binary(values) else values.clone()
    spread = values[seen].std(dim=0, keepdim=True) if int(seen.sum()) > 1 else torch.ones_like(values[:1])
    standard = (values - values[seen].mean(dim=0, keepdim=True)) / torch.where(spread > 0, spread, torch.ones_like(spread))
    return F.normalize(standard, dim=1)


def _wide(t: torch.Tensor) -> torch.Tensor:
    """At least float32 (autocast's half-precision outputs are widened; float64 stays float64)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _binary(values: torch.Tensor) -> bool:
    return bool(((values == 0) | (values == 1)).all())


def dap_scores(logits: torch.Tensor, attributes: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """log p(y = k | x) up to a constant per image (N, K): the attributes' posteriors agreeing with
    each class's over the attributes' priors (Lampert et al. eq. 2); `attributes` binary (K, A),
    `seen` the mask of training classes, whose mean gives the priors."""
    p = torch.sigmoid(_wide(logits)).clamp(PRIOR_FLOOR, 1 - PRIOR_FLOOR)
    a = attributes.to(p.dtype)
    prior = a[seen].mean(dim=0).clamp(PRIOR_FLOOR, 1 - PRIOR_FLOOR)
    log_post = torch.log(p) @ a.T + torch.log1p(-p) @ (1 - a).T  # (N, K)
    log_prior = (torch.log(prior) * a + torch.log1p(-prior) * (1 - a)).sum(dim=1)  # (K,)
    return log_post - log_prior


def dap_loss(logits: torch.Tensor, attributes: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per sample: the mean binary cross-entropy of the attribute logits against the true class's attributes."""
    return F.binary_cross_entropy_with_logits(_wide(logits), attributes[target].to(_wide(logits).dtype), reduction="none").mean(dim=1)


def bilinear_scores(z: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
    """F(x, k) = z . s_k for every class (N, K)."""
    z = _wide(z)
    return z @ embeddings.to(z.dtype).T


def eszsl_loss(z: torch.Tensor, seen_embeddings: torch.Tensor, target: torch.Tensor, lam: float) -> torch.Tensor:
    """Per sample: ||z S^T - y||^2 + lambda ||z||^2, y = +1 at the true (seen) class and -1 elsewhere."""
    scores = bilinear_scores(z, seen_embeddings)
    y = -torch.ones_like(scores)
    y.scatter_(1, target[:, None], 1.0)
    return ((scores - y) ** 2).sum(dim=1) + lam * (_wide(z) ** 2).sum(dim=1)


def eszsl_penalty(weight: torch.Tensor, seen_embeddings: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """gamma (||V S||^2 + lambda ||V||^2) for the head's map V (torch's (A, D) weight is V^T)."""
    v = _wide(weight)
    return gamma * ((seen_embeddings.to(v.dtype) @ v) ** 2).sum() + gamma * lam * (v ** 2).sum()


def eszsl_closed_form(x: torch.Tensor, y: torch.Tensor, s: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """The paper's V (D, A) in its own notation: X (D, m) features, Y (m, z) in {-1, 1}, S (A, z)."""
    d, a = x.shape[0], s.shape[0]
    left = torch.linalg.solve(x @ x.T + gamma * torch.eye(d, dtype=x.dtype), x @ y @ s.T)
    return torch.linalg.solve((s @ s.T + lam * torch.eye(a, dtype=x.dtype)).T, left.T).T


def ale_loss(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per sample: the weighted approximate ranking loss over the classes of `scores` (N, K)."""
    true = scores.gather(1, target[:, None])
    margins = (1.0 + scores - true).clamp_min(0.0)
    margins = margins.scatter(1, target[:, None], 0.0)
    rank = (margins > 0).sum(dim=1)
    harmonic = torch.cumsum(1.0 / torch.arange(1, scores.shape[1] + 1, dtype=scores.dtype, device=scores.device), 0)
    beta = torch.where(rank > 0, harmonic[(rank - 1).clamp_min(0)] / rank.clamp_min(1), torch.zeros_like(rank, dtype=scores.dtype))
    return beta * margins.sum(dim=1)


def sje_loss(scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per sample: max_k (Delta(y, k) + F(x, k)) - F(x, y), the structured hinge."""
    delta = torch.ones_like(scores).scatter(1, target[:, None], 0.0)
    return (delta + scores).max(dim=1).values - scores.gather(1, target[:, None]).squeeze(1)
