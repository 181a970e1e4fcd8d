"""Per-task gradients of the shared part, as one (T x P) matrix, for gradient-based weighting.

One backward pass per task (`torch.autograd.grad` of that task's loss), which also gives the
task's own parameters their gradient, so no pass over the heads is spent twice. On this project's
CPUs a loop of passes is faster than one batched pass (`is_grads_batched`, vmap over T unit
vectors): 51 ms against 82 ms for 4 tasks, 121 against 182 for 8 (`bench/gradient_methods.py --backward`);
`batched_task_jacobian` is kept for the measurement.
"""

from __future__ import annotations

import torch


def task_gradients(losses: list[torch.Tensor], shared: list[torch.Tensor], own: list[list[torch.Tensor]],
                   keep_graph: bool = False) -> torch.Tensor:
    """Row t is the gradient of losses[t] with respect to `shared`; the parameters in own[t] get
    their .grad from the same pass. The graph is freed after the last pass unless `keep_graph`."""
    size = sum(x.numel() for x in shared)
    reference = shared[0] if shared else losses[0]
    # at least float32: under bf16/fp16 autocast a representation's gradients arrive in half precision,
    # and a Gramian of half-precision rows is off by 1e-3 of |g_i||g_j| (MGDA's weights moved by 2x)
    dtype = torch.promote_types(reference.dtype, torch.float32) if reference.is_floating_point() else torch.float32
    G = torch.zeros(len(losses), size, dtype=dtype, device=reference.device)
    for t, (loss, params) in enumerate(zip(losses, own)):
        grads = torch.autograd.grad(loss, [*shared, *params], retain_graph=keep_graph or t < len(losses) - 1, allow_unused=True)
        for p, g in zip(params, grads[len(shared):]):
            p.grad = g if g is not None else torch.zeros_like(p)
        offset = 0
        for x, g in zip(shared, grads[: len(shared)]):  # written into its row once (no concatenation, no stacking)
            if g is not None:
                G[t, offset : offset + x.numel()] = g.reshape(-1)
            offset += x.numel()
    return G


def batched_task_jacobian(losses: torch.Tensor, inputs: list[torch.Tensor]) -> torch.Tensor:
    """The same rows in one batched backward (vmap over the T unit vectors), where every op in the
    graph supports it; the graph is kept."""
    eye = torch.eye(len(losses), dtype=losses.dtype, device=losses.device)
    grads = torch.autograd.grad(losses, inputs, grad_outputs=eye, is_grads_batched=True, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros(len(losses), *x.shape, dtype=x.dtype, device=x.device)).reshape(len(losses), -1)
                      for g, x in zip(grads, inputs)], dim=1)


def task_jacobian(losses: torch.Tensor, inputs: list[torch.Tensor]) -> torch.Tensor:
    """Row t is the gradient of losses[t] with respect to `inputs` (graph kept)."""
    return task_gradients(list(losses), inputs, [[] for _ in losses], keep_graph=True)


def assign(direction: torch.Tensor, params: list[torch.Tensor]) -> None:
    """Write a flat direction into the .grad of each parameter (views of it, no copy)."""
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = direction[offset : offset + n].view_as(p).to(p.dtype)
        offset += n
