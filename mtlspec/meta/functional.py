"""The model as a function of its parameters (torch.func.functional_call), and the inner loop
every algorithm adapts with.

BatchNorm layers stay in training mode throughout, normalising each batch by its own statistics
(as the reference implementation of MAML does); the running statistics are never updated by
meta-training or adaptation: each call gets copies of the buffers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.func import functional_call
from torch.nn import functional as F


def logits(model: torch.nn.Module, params: dict[str, torch.Tensor], task: str, images: torch.Tensor) -> torch.Tensor:
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    return functional_call(model, {**params, **buffers}, (images,))[task]


def adapted(model: torch.nn.Module, params: dict[str, torch.Tensor], names: list[str], task: str, images: torch.Tensor,
            labels: torch.Tensor, steps: int, lr: float, create_graph: bool) -> dict[str, torch.Tensor]:
    """The parameters after `steps` steps of gradient descent on the support set's cross-entropy,
    changing only `names`. With create_graph the result stays differentiable with respect to the
    starting parameters (second-order MAML); without, each step's gradient is a constant
    (first-order MAML, Reptile, evaluation)."""
    fast = dict(params)
    for _ in range(steps):
        loss = F.cross_entropy(logits(model, fast, task, images), labels)
        grads = torch.autograd.grad(loss, [fast[n] for n in names], create_graph=create_graph, allow_unused=True)
        fast.update({n: fast[n] - lr * g for n, g in zip(names, grads) if g is not None})
    return fast


def adapted_names(model: Any, task: str, adapt: str | list[str]) -> list[str]:
    """The parameters the inner loop changes: every trainable one ("all"), the task's head
    ("heads"), or those under any of a list of name prefixes ("heads" there is the task's head).
    ValueError when a prefix names no trainable parameter."""
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    if adapt == "all":
        return trainable
    prefixes = [f"heads.{task}" if p in ("heads", "head") else p.rstrip(".") for p in ([adapt] if isinstance(adapt, str) else adapt)]
    for prefix in prefixes:
        if not any(n == prefix or n.startswith(prefix + ".") for n in trainable):
            parts = sorted({".".join(n.split(".")[:3]) for n in trainable})
            raise ValueError(f"meta.adapt: '{prefix}' names no trainable parameter; parts of this model: {', '.join(parts[:12])}"
                             + (", ..." if len(parts) > 12 else ""))
    return [n for n in trainable if any(n == p or n.startswith(p + ".") for p in prefixes)]
