"""Evaluation: per-task metrics over a split, and what trivial predictors score on the same split."""

from __future__ import annotations

from typing import Any

import torch

from mtlspec.tasks.base import TaskType


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    def move(value: Any) -> Any:
        if torch.is_tensor(value):
            return value.to(device, non_blocking=True)
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, list):
            return [move(v) for v in value]
        return value

    return {k: (v if k == "meta" else move(v)) for k, v in batch.items()}


@torch.no_grad()
def evaluate(model: torch.nn.Module, task_types: dict[str, TaskType], loader: Any, device: torch.device,
             image_size: int, autocast: Any, details: dict[str, Any] | None = None) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Metrics per task (labelled samples only) and the mean loss per task over the split; each
    task's metric details (per-class scores, confusion, PR curves) put into `details` when given."""
    model.eval()
    metrics = {task: tt.metric() for task, tt in task_types.items()}
    loss_sums = {task: 0.0 for task in task_types}
    batches = 0
    for batch in loader:
        batch = to_device(batch, device)
        with autocast():
            outputs = model(batch["image"])
        for task, tt in task_types.items():
            has, target = batch["has"][task], batch["targets"][task]
            loss_sums[task] += float(tt.loss(outputs[task], target, has, batch["weight"][task]))
            prediction = tt.predict(outputs[task], image_size)
            metrics[task].update(_cpu(prediction), _cpu(target), has.cpu())
        batches += 1
    model.train()
    scores = {task: m.compute() for task, m in metrics.items()}
    if details is not None:
        details.update({task: found for task, m in metrics.items() if (found := m.details()) is not None})
    return scores, {t: s / max(batches, 1) for t, s in loss_sums.items()}


def _cpu(value: Any) -> Any:
    if torch.is_tensor(value):
        return value.detach().float().cpu() if value.is_floating_point() else value.cpu()
    if isinstance(value, list):
        return [_cpu(v) for v in value]
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    return value


def trivial_baselines(task_types: dict[str, TaskType], train_set: Any, loader: Any, image_size: int) -> dict[str, dict[str, float]]:
    """Metrics of predictors that ignore the image (majority class, label frequencies, mean value,
    background everywhere, mean depth, no boxes), fitted on the task's labelled training samples
    (every one for image-level labels; up to 500 spread over the dataset for maps)."""
    from mtlspec.data.dataset import task_targets

    train_targets = {task: task_targets(train_set, task, tt.baseline_samples) for task, tt in task_types.items()}
    metrics = {task: tt.metric() for task, tt in task_types.items()}
    for batch in loader:
        count = len(batch["meta"])
        for task, tt in task_types.items():
            if not train_targets[task]:
                continue
            prediction = tt.trivial_prediction(train_targets[task], count, image_size)
            metrics[task].update(prediction, batch["targets"][task], batch["has"][task])
    return {task: m.compute() for task, m in metrics.items() if train_targets[task]}
