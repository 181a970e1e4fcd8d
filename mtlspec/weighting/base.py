"""The one protocol every weighting method follows, and its two kinds.

The trainer calls `backward(model, losses)` (the gradients of one step land in `.grad`; returns
the task weights for the log), then `after_step(recompute)` after the optimizer step, and
`end_epoch(mean_losses)` after each epoch; it never asks which kind a method is.

- `LossWeighting` maps the task losses (and their history) to weights; its backward is that of
  the weighted sum (plus `extra_loss`, for methods that learn their weights, and the model's own
  extra loss).
- `GradientAggregator` is a function `aggregate(G, losses) -> g` from the matrix of per-task
  gradients of the shared part (T x P) to one update direction, independent of any model, so
  each can be tested alone against an independent implementation. Its backward computes G
  (`gradient_step`); task-specific parameters get their own task's gradient.

Under fp16 the trainer passes `scale` (a GradScaler's factor, a 0-d tensor on the device): every
.grad a backward leaves is then `scale` times the true gradient, for the scaler to unscale and
check. A loss weighting scales its weighted sum; a gradient method scales each task's loss, then
aggregates the unscaled rows (the methods are not all scale-equivariant: Nash-MTL's direction is
invariant to a common factor, PCGrad's is proportional to it) and scales the direction back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

import numpy as np
import torch

from mtlspec.weighting.jacobian import assign, task_gradients

Losses = dict[str, torch.Tensor]


class Weighting(ABC):
    """What the trainer drives."""

    def __init__(self, tasks: list[str], spec: Any):
        self.tasks, self.spec = tasks, spec

    @abstractmethod
    def backward(self, model: Any, losses: Losses, present: dict[str, bool] | None = None,
                 scale: torch.Tensor | None = None, ranks: Any = None) -> dict[str, Any]:
        """Set every parameter's .grad for this step (times `scale` where given); return each
        task's weight (None where a method has none, or the task was absent: `present[task]`
        False, no labelled sample in the batch) for metrics.jsonl. `ranks` (several processes:
        distributed.Ranks) averages a gradient method's per-task gradient matrix over the ranks
        before it acts, and makes an fp16 overflow anywhere an overflow everywhere."""

    def after_step(self, recompute: Callable[[], Losses]) -> None:
        """After the optimizer step; `recompute()` gives the batch's losses under the new weights."""

    def end_epoch(self, mean_losses: dict[str, float]) -> None:
        """Called with each epoch's mean training loss per task (DWA keeps a history)."""

    def parameters(self) -> list[torch.nn.Parameter]:
        """Learned parameters the trainer's optimizer updates (no weight decay)."""
        return []

    def gradient_cosines(self) -> dict[str, float] | None:
        """The cosine between each two task gradients of the last step ("a|b" -> value), for the
        log; None for methods that never form per-task gradients (the loss weightings: measuring
        them would cost one extra backward pass per task)."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Methods without state have nothing to restore."""


class LossWeighting(Weighting):
    """Weights for the task losses of one step."""

    needs_post_step_losses = False  # FAMO compares each step's losses before and after the update

    @abstractmethod
    def weights(self, losses: Losses) -> dict[str, torch.Tensor]:
        """One weight per task (tensors; methods with learned weights keep them in the graph)."""

    def extra_loss(self, losses: Losses) -> torch.Tensor | float:
        """A term added to the weighted sum (UW's regulariser); 0 for most methods."""
        return 0.0

    def backward(self, model, losses, present=None, scale=None, ranks=None):
        weights = self.weights(losses)
        total = sum(weights[t] * losses[t].float() for t in losses) + self.extra_loss(losses) + model.extra_loss()
        (total if scale is None else total * scale).backward()
        return weights

    def after_step(self, recompute):
        self.after_update(recompute() if self.needs_post_step_losses else None)

    def after_update(self, losses_after: Losses | None) -> None:
        """Called after each optimizer step, with the batch's losses recomputed when asked for."""


class GradientAggregator(Weighting):
    """Combines per-task gradients of the shared part into one direction, from the gradients of
    the tasks present in the batch (`active`: a task without a labelled sample takes no part).

    Most methods are a function of the Gramian alone: `weights(K, losses, active)` -> w, and the
    direction is G^T w (K = G G^T of the active rows, in float64). Methods that need the rows
    themselves (per coordinate, or a history of gradients) override `aggregate`."""

    def __init__(self, tasks: list[str], spec: Any):
        super().__init__(tasks, spec)
        self.space = getattr(spec, "space", "params")
        self.last_weights: torch.Tensor | None = None  # w of g = G^T w, for the active tasks
        self.last_gramian: np.ndarray | None = None  # K of the active tasks, when the method formed it
        self.last_cosines: dict[str, float] | None = None

    def weights(self, K: np.ndarray, losses: np.ndarray, active: list[int]) -> np.ndarray:
        """The weights of the active tasks' gradients. K: their Gramian (float64); losses: theirs;
        active: their indices among all the spec's tasks (for methods with per-task state)."""
        raise NotImplementedError(f"{type(self).__name__} aggregates the gradient rows themselves")

    def aggregate(self, G: torch.Tensor, losses: torch.Tensor, active: list[int] | None = None) -> torch.Tensor:
        """G: (T', P) gradients of the active tasks; losses: (T',) detached. Returns the (P,) direction."""
        active = list(range(len(G))) if active is None else active
        self.last_gramian = gramian(G)
        w = self.weights(self.last_gramian, losses.detach().double().cpu().numpy(), active)
        return weighted(G, torch.as_tensor(w), self)

    def gradient_cosines(self):
        return self.last_cosines

    def backward(self, model, losses, present=None, scale=None, ranks=None):
        return gradient_step(model, self, losses, present, scale, ranks)

    def after_step(self, recompute):
        self.after_update()

    def after_update(self) -> None:
        """Called after each optimizer step (GradNorm renormalises its weights)."""


def gramian(G: torch.Tensor, chunk: int = 1 << 12) -> np.ndarray:
    """K = G G^T, as float64: products over blocks of 4,096 columns in G's own precision, summed in
    float64. Measured on float32 rows (8 x 4M): off by at most 2.3e-8 |g_i| |g_j| (blocks of
    65,536 columns: 1.2e-6; the rounding of the gradients themselves is 6e-8); 0.37 s for the
    40 x 11.2M gradients of a ResNet-18 on 2 cores, against 0.33 s for 65,536-column blocks."""
    K = torch.zeros(len(G), len(G), dtype=torch.float64, device=G.device)
    for start in range(0, G.shape[1], chunk):
        block = G[:, start : start + chunk]
        K += (block @ block.T).double()
    return K.cpu().numpy()


def gradient_step(model: Any, method: GradientAggregator, losses: Losses, present: dict[str, bool] | None = None,
                  scale: torch.Tensor | None = None, ranks: Any = None) -> dict[str, float | None]:
    """Per-task gradients of the shared part (one backward pass per task present, which also gives
    its own parameters their gradient) -> the method's direction. A task absent from the batch
    (no labelled sample) takes no part: weight None, its own parameters no gradient (None), so the
    optimizer leaves them as they are for that step. With `scale` (fp16's loss scale) the rows are
    computed scaled, aggregated unscaled, and the direction scaled back; rows that overflowed are
    passed on as they are, for the GradScaler to skip the step, and the method's state is left alone.
    With `ranks` (several processes) the matrix is averaged over the ranks before anything reads
    it, and an overflow on any rank counts on all (the scaler skips the step everywhere)."""
    tasks = list(losses)
    active = [i for i, t in enumerate(tasks) if present is None or present[t]]
    if method.space == "representation":
        shared = [r for r in model.topology.representation if r.requires_grad]
    else:
        shared = [p for p in model.shared_parameters() if p.requires_grad]
    own = {t: [p for p in model.task_parameters(t) if p.requires_grad] for t in tasks}
    for i, t in enumerate(tasks):
        if i not in active:
            for p in own[t]:
                p.grad = None  # no gradient at all: optimizers skip it (no momentum or weight decay step either)
    if not active:
        zero = torch.zeros(sum(x.numel() for x in shared), dtype=shared[0].dtype if shared else torch.float32,
                           device=shared[0].device if shared else None)
        direction, weights = zero, []
        method.last_cosines = {}
    else:
        keep = method.space == "representation"  # the direction is back-propagated through the representation afterwards
        G = task_gradients([losses[tasks[i]] if scale is None else losses[tasks[i]] * scale for i in active], shared,
                           [own[tasks[i]] for i in active], keep_graph=keep)
        if ranks is not None:
            G = ranks.mean_rows(G)
        finite = scale is None or _all_finite(G, [p for i in active for p in own[tasks[i]]])
        if ranks is not None and scale is not None:
            finite = ranks.all(finite)
        if not finite:  # fp16 overflow: the step is skipped
            direction, weights = G.sum(0), None
            method.last_cosines = {}
        else:
            if scale is not None:
                G = G / scale
            vector = torch.stack([losses[tasks[i]].detach().float() for i in active])
            own_rows = type(method).aggregate is not GradientAggregator.aggregate  # it may change G's rows in place: K first
            K = gramian(G) if own_rows else None
            direction = method.aggregate(G, vector, active)
            method.last_cosines = cosines(method.last_gramian if K is None else K, [tasks[i] for i in active])
            weights = None if method.last_weights is None else [float(v) for v in method.last_weights]
            if scale is not None:
                direction = direction * scale
                for p in method.parameters():  # a method's own gradient (GradNorm's weights), scaled like every other for the scaler to unscale
                    if p.grad is not None:
                        p.grad.mul_(scale.to(p.grad.device, p.grad.dtype))
    if method.space == "representation":
        chunks, offset = [], 0
        for r in shared:
            chunks.append(direction[offset : offset + r.numel()].view_as(r).to(r.dtype))
            offset += r.numel()
        if active:
            torch.autograd.backward(shared, grad_tensors=chunks)
    else:
        assign(direction, shared)
    out: dict[str, float | None] = {t: None for t in tasks}
    if weights is not None:
        out.update({tasks[i]: w for i, w in zip(active, weights)})
    return out


def _all_finite(G: torch.Tensor, parameters: list[torch.Tensor]) -> bool:
    """Whether the scaled rows and the task parameters' scaled gradients all stayed finite: where
    one overflowed the GradScaler skips the step, so the method must not act (or learn) on it."""
    found = [torch.isfinite(G).all(), *(torch.isfinite(p.grad).all() for p in parameters if p.grad is not None)]
    return bool(torch.stack(found).all())


def cosines(K: np.ndarray, names: list[str]) -> dict[str, float]:
    """cos(g_i, g_j) = K_ij / sqrt(K_ii K_jj) for each pair i < j ("a|b"); None for a zero gradient."""
    out = {}
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            norm = float(np.sqrt(K[i, i] * K[j, j]))
            out[f"{names[i]}|{names[j]}"] = min(1.0, max(-1.0, float(K[i, j] / norm))) if norm > 0 else None  # rounding may pass ±1
    return out


def weighted(G: torch.Tensor, w: torch.Tensor, method: GradientAggregator) -> torch.Tensor:
    """g = G^T w, remembering w for the report."""
    method.last_weights = w.detach().clone()
    return w.to(device=G.device, dtype=G.dtype) @ G
