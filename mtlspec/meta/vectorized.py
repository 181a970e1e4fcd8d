"""The first-order algorithms with the episodes' inner loops vectorised by torch.func.vmap
(`meta.vectorize: true`): first-order MAML (Finn et al., ICML 2017, section 5.2) and Reptile
(Nichol, Achiam and Schulman, 2018), the same updates as maml.py and reptile.py compute episode by
episode (tested against them), 27% faster for first-order MAML on the bench's model
(bench/meta_step.py).

Second-order MAML and ANIL are not vectorised: their meta-gradient differentiates through the
inner gradient, and through BatchNorm that double backward under vmap is off (1.1e-3 of the largest
entry against finite differences on a smooth model, where the looped loop agrees to 1e-8).

BatchNorm normalises each episode's batch by its own statistics, as in the looped loop; vmap
cannot update running statistics, so they are taken off the modules while the vectorised loop
runs (they are never updated by meta-training anyway) and put back after.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

from mtlspec.meta.functional import adapted_names


@contextlib.contextmanager
def batch_statistics_only(model: torch.nn.Module) -> Iterator[None]:
    saved = []
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            saved.append((m, m.track_running_stats, m.running_mean, m.running_var, m.num_batches_tracked))
            m.track_running_stats, m.running_mean, m.running_var, m.num_batches_tracked = False, None, None, None
    try:
        yield
    finally:
        for m, track, mean, var, count in saved:
            m.track_running_stats, m.running_mean, m.running_var, m.num_batches_tracked = track, mean, var, count


def adapt_episodes(model: torch.nn.Module, task: str, names: list[str], steps: int, lr: float,
                   episodes: list[tuple[torch.Tensor, ...]], start: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, ...]:
    """Adapt to every episode at once (`steps` of plain gradient descent on each support set,
    changing `names` only, each inner gradient a constant) and score each on its query set:
    (query losses, query accuracies, adapted weights stacked by episode). `start`: the weights
    adaptation begins from (the model's by default; give them with a graph for first-order MAML)."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    fixed = {n: p for n, p in params.items() if n not in names}

    def logits(fast: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, {**fixed, **fast}, (x,))[task]

    def episode(first, sx, sy, qx, qy):
        fast = first
        for _ in range(steps):
            g = grad(lambda q: F.cross_entropy(logits(q, sx), sy))(fast)
            fast = {n: fast[n] - lr * g[n].detach() for n in fast}  # the inner gradient is a constant: first order
        out = logits(fast, qx)
        return F.cross_entropy(out, qy), (out.argmax(1) == qy).float().mean(), fast

    stacked = [torch.stack(parts) for parts in zip(*episodes)]
    first = start if start is not None else {n: params[n].detach() for n in names}
    with batch_statistics_only(model):
        return vmap(episode, in_dims=(None, 0, 0, 0, 0))(first, *stacked)


class VectorizedFirstOrder:
    """`algorithm`: "fomaml" or "reptile"; `adapt`: what the inner loop changes (as maml.py)."""

    def __init__(self, meta: Any, algorithm: str, adapt: str | list[str] = "all"):
        self.meta, self.algorithm, self.adapt = meta, algorithm, adapt

    def meta_gradient(self, model: torch.nn.Module, task: str, episodes: list[tuple[torch.Tensor, ...]]) -> tuple[float, float]:
        """Accumulate the update into `.grad` (first-order MAML: the mean over episodes of the query
        loss's gradient at the adapted weights; Reptile: theta minus the mean adapted weights);
        (mean query loss, mean query accuracy)."""
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        names = adapted_names(model, task, self.adapt)
        steps, lr = self.meta.inner_steps, self.meta.inner_lr
        if self.algorithm == "fomaml":
            losses, accuracy, _ = adapt_episodes(model, task, names, steps, lr, episodes, start={n: params[n] for n in names})
            losses.mean().backward()
        else:
            with torch.no_grad():
                losses, accuracy, fast = adapt_episodes(model, task, names, steps, lr, episodes)
                for n in names:
                    step = params[n] - fast[n].mean(0)
                    params[n].grad = step if params[n].grad is None else params[n].grad + step
        return float(losses.detach().mean()), float(accuracy.mean())
