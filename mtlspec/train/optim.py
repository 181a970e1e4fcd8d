"""Optimizers and per-step learning-rate schedules from the spec."""

from __future__ import annotations

import math
from typing import Any

import torch


def build_optimizer(spec: Any, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if spec.type == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay, nesterov=spec.nesterov)
    if spec.type == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)


def lr_factor(spec: Any, step: int, steps_per_epoch: int, epochs: int) -> float:
    """The learning-rate multiplier after `step` optimizer steps."""
    total = max(steps_per_epoch * epochs, 1)
    warmup = getattr(spec, "warmup_steps", 0)
    if warmup and step < warmup:
        return (step + 1) / warmup
    if spec.type == "constant":
        return 1.0
    if spec.type == "step":
        return spec.gamma ** (step // max(spec.step_epochs * steps_per_epoch, 1))
    if spec.type == "cyclic":
        cycle = max(total // spec.cycles, 1)
        return 0.5 * (1 + math.cos(math.pi * (step % cycle) / cycle))
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return spec.min_lr_ratio + (1 - spec.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(spec: Any, optimizer: torch.optim.Optimizer, steps_per_epoch: int, epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(spec, step, steps_per_epoch, epochs))
