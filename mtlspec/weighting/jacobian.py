"""Per-task gradients of the shared part, as one (T x P) matrix, for gradient-based weighting."""

from __future__ import annotations

import torch


def task_jacobian(losses: torch.Tensor, inputs: list[torch.Tensor]) -> torch.Tensor:
    """Row t is the gradient of losses[t] with respect to `inputs`, flattened and concatenated.

    One batched backward (`is_grads_batched`, vmap over the T unit vectors) where every op in
    the graph supports it; otherwise T backward passes. The graph is kept for later passes.
    """
    T = len(losses)
    try:
        eye = torch.eye(T, dtype=losses.dtype, device=losses.device)
        grads = torch.autograd.grad(losses, inputs, grad_outputs=eye, is_grads_batched=True, retain_graph=True, allow_unused=True)
    except (RuntimeError, NotImplementedError):
        rows = [torch.autograd.grad(losses[t], inputs, retain_graph=True, allow_unused=True) for t in range(T)]
        grads = [torch.stack([row[k] if row[k] is not None else torch.zeros_like(inputs[k]) for row in rows]) for k in range(len(inputs))]
    return torch.cat([(g if g is not None else torch.zeros(T, *x.shape, dtype=x.dtype, device=x.device)).reshape(T, -1)
                      for g, x in zip(grads, inputs)], dim=1)


def assign(direction: torch.Tensor, params: list[torch.Tensor]) -> None:
    """Write a flat direction into the .grad of each parameter."""
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = direction[offset : offset + n].view_as(p).to(p.dtype).clone()
        offset += n
