"""Evaluation: per-task metrics over a split, and what trivial predictors score on the same split."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from mtlspec import distributed
from mtlspec.distributed import World
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
             image_size: int, autocast: Any, details: dict[str, Any] | None = None,
             world: World = World()) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Metrics per task (labelled samples only) and the mean loss per task over the split; each
    task's metric details (per-class scores, confusion, PR curves) put into `details` when given.
    With several ranks, `loader` holds this rank's batches (make_loader's `shard`): rank 0 gathers
    every rank's predictions and scores them in the single-process batch order, then every rank
    receives the scores."""
    model.eval()
    scorer = _Scorer(task_types)
    found = []  # with several ranks: (batch number in the split, {task: (loss, prediction, target, has)}), on the CPU
    with distributed.rank_local() if world.active else contextlib.nullcontext():
        for index, batch in enumerate(loader):
            batch = to_device(batch, device)
            with autocast():
                outputs = model(batch["image"], batch.get("text"))
            per_task = {}
            for task, tt in task_types.items():
                has, target = batch["has"][task], batch["targets"][task]
                loss = float(tt.loss(outputs[task], target, has, batch["weight"][task]))
                per_task[task] = (loss, _cpu(tt.predict(outputs[task], image_size)), _cpu(target), has.cpu())
            if world.active:
                found.append((index * world.size + world.rank, per_task))
            else:
                scorer.add(per_task)  # one process: scored as it goes, nothing kept
    model.train()
    if world.active:
        everything = distributed.gather_to_main(found, world)
        if everything is not None:
            for _, per_task in sorted((item for part in everything for item in part), key=lambda item: item[0]):
                scorer.add(per_task)
    result = scorer.result(details is not None) if world.main else None
    scores, losses, found_details = distributed.from_main(result, world)
    if details is not None:
        details.update(found_details)
    return scores, losses


class _Scorer:
    """The metrics and mean losses of a split, from its batches in order."""

    def __init__(self, task_types: dict[str, TaskType]):
        self.metrics = {task: tt.metric() for task, tt in task_types.items()}
        self.loss_sums = {task: 0.0 for task in task_types}
        self.batches = 0

    def add(self, per_task: dict[str, tuple]) -> None:
        for task, (loss, prediction, target, has) in per_task.items():
            self.loss_sums[task] += loss
            self.metrics[task].update(prediction, target, has)
        self.batches += 1

    def result(self, with_details: bool) -> tuple[dict, dict, dict]:
        scores = {task: m.compute() for task, m in self.metrics.items()}
        found = {task: d for task, m in self.metrics.items() if (d := m.details()) is not None} if with_details else {}
        return scores, {t: s / max(self.batches, 1) for t, s in self.loss_sums.items()}, found


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
            prediction = tt.trivial_for_batch(train_targets[task], batch["targets"][task], count, image_size)
            metrics[task].update(prediction, batch["targets"][task], batch["has"][task])
    return {task: m.compute() for task, m in metrics.items() if train_targets[task]}
