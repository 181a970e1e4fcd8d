"""The training loop: batches -> per-task losses -> weighting -> step; checkpoints; metrics.jsonl."""

from __future__ import annotations

import contextlib
import functools
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from mtlspec.data.build import build_dataset, describe, scan
from mtlspec.data.dataset import collate_fn
from mtlspec.data.sampling import epoch_order
from mtlspec.model.builder import build_model
from mtlspec.train import checkpoint as ckpt
from mtlspec.train.evaluate import to_device, evaluate, trivial_baselines
from mtlspec.train.optim import build_optimizer, build_scheduler
from mtlspec.train.jacobian import assign, task_jacobian
from mtlspec.weighting import METHODS, GradientAggregator


class TrainingError(Exception):
    """The run cannot go on (a loss turned NaN, a checkpoint does not fit); the message says why and what is safe."""


@dataclass
class FitResult:
    metrics: dict[str, dict[str, float]]
    baselines: dict[str, dict[str, float]]
    history: list[dict[str, Any]]
    epochs_run: int
    stopped_early: bool
    device: str
    fingerprints: dict[str, str]
    splits: dict[str, dict[str, dict[str, Any]]]
    num_parameters: int
    wall_seconds: float
    split: str
    task_types: dict[str, str] = field(default_factory=dict)


def resolve_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise TrainingError("training.device is cuda but torch sees no CUDA device (see `mtlspec env`)")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def autocast_for(device: torch.device, precision: str) -> Callable[[], Any]:
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class BatchOrder(torch.utils.data.Sampler):
    """Batches of one epoch, in the order the sampling policy gives for (seed, epoch)."""

    def __init__(self, sizes: list[int], batch_size: int, policy: str, t: float, seed: int, max_steps: int | None):
        self.sizes, self.batch_size, self.policy, self.t, self.seed = sizes, batch_size, policy, t, seed
        self.max_steps, self.epoch = max_steps, 0

    def __iter__(self):
        order = epoch_order(self.sizes, self.policy, self.seed, self.epoch, self.t)
        batches = [order[i : i + self.batch_size].tolist() for i in range(0, len(order) - self.batch_size + 1, self.batch_size)]
        return iter(batches[: self.max_steps] if self.max_steps else batches)

    def __len__(self) -> int:
        n = sum(self.sizes) // self.batch_size
        return min(n, self.max_steps) if self.max_steps else n


def make_loader(dataset: Any, binds: Any, batch_size: int, workers: int, sampler: Any = None) -> torch.utils.data.DataLoader:
    """Batches in the sampler's order (training) or in dataset order (evaluation)."""
    if sampler is not None:
        return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_fn(binds), num_workers=workers)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn(binds), num_workers=workers)


def _stop_if_not_finite(losses: dict[str, torch.Tensor], step: int, epoch: int, last_good: Path | None) -> None:
    for task, loss in losses.items():
        if not torch.isfinite(loss.detach()).all():
            where = f"last good checkpoint: {last_good}" if last_good else "no checkpoint was written yet"
            raise TrainingError(f"the loss of task '{task}' is {loss.item()} at step {step} (epoch {epoch}); stopped, {where}")


def train_step(model: Any, task_types: dict, weighting: Any, optimizer: torch.optim.Optimizer, batch: dict,
               autocast: Callable[[], Any], grad_clip: float | None = None,
               check: Callable[[dict[str, torch.Tensor]], None] | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """One optimisation step: forward, per-task losses, the weighting method, backward, update."""
    with autocast():
        outputs = model(batch["image"])
        losses = {t: tt.loss(outputs[t], batch["targets"][t], batch["has"][t], batch["weight"][t]) for t, tt in task_types.items()}
    if check is not None:
        check(losses)
    optimizer.zero_grad(set_to_none=True)
    if isinstance(weighting, GradientAggregator):
        weights: dict[str, Any] = gradient_step(model, weighting, losses)
    else:
        weights = weighting.weights(losses)
        total = sum(weights[t] * losses[t].float() for t in losses) + weighting.extra_loss(losses)
        if hasattr(model.topology, "regularizer"):  # soft sharing's pull between the task networks
            total = total + model.topology.regularizer()
        total.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    if isinstance(weighting, GradientAggregator):
        weighting.after_step()
    else:
        after = None
        if weighting.needs_post_step_losses:
            with torch.no_grad(), autocast():
                again = model(batch["image"])
                after = {t: tt.loss(again[t], batch["targets"][t], batch["has"][t], batch["weight"][t]) for t, tt in task_types.items()}
        weighting.after_step(after)
    return losses, weights


def gradient_step(model: Any, method: GradientAggregator, losses: dict[str, torch.Tensor]) -> dict[str, float | None]:
    """Per-task gradients of the shared part -> the method's direction; task parameters get their own task's gradient."""
    tasks = list(losses)
    vector = torch.stack([losses[t].float() for t in tasks])
    if method.space == "representation":
        shared = [r for r in model.topology.representation if r.requires_grad]
    else:
        shared = [p for p in model.shared_parameters() if p.requires_grad]
    G = task_jacobian(vector, shared)
    direction = method.aggregate(G, vector.detach())
    private = [p for t in tasks for p in model.task_parameters(t) if p.requires_grad]
    if private:
        for p, g in zip(private, torch.autograd.grad(vector.sum(), private, retain_graph=True, allow_unused=True)):
            p.grad = g
    if method.space == "representation":
        chunks, offset = [], 0
        for r in shared:
            chunks.append(direction[offset : offset + r.numel()].view_as(r).to(r.dtype))
            offset += r.numel()
        torch.autograd.backward(shared, grad_tensors=chunks)
    else:
        assign(direction, shared)
    w = method.last_weights
    return {t: (None if w is None else float(w[i])) for i, t in enumerate(tasks)}


def _monitor_value(monitor: str, val_metrics: dict, val_losses: dict, spec: Any = None,
                   baseline_val: dict | None = None) -> tuple[float, bool]:
    """(value, higher_is_better) of the early-stopping monitor."""
    from mtlspec.report.delta_m import delta_m
    from mtlspec.spec.tasks import HIGHER_IS_BETTER

    if monitor == "val.loss":
        return sum(val_losses.values()), False
    if monitor == "val.delta_m":
        chosen = {t: {m: v for m, v in val_metrics[t].items() if m in spec.tasks[t].metrics} for t in val_metrics}
        value = delta_m(chosen, baseline_val or {})["value"]
        return (value if value is not None else float("-inf")), True
    _, task, metric = monitor.split(".")
    return val_metrics[task][metric], HIGHER_IS_BETTER[metric]


def fit(spec: Any, spec_hash: str, run_dir: Path, resume: dict[str, Any] | None = None, log: Callable[[str], None] = print,
        progress: Any = None, stop_after_epoch: int | None = None, data_root: Path = Path("."),
        baseline_val: dict[str, dict[str, float]] | None = None) -> FitResult:
    """Train the spec's model, checkpointing into run_dir (from a checkpoint's state when resuming);
    evaluate on the spec's split at the end."""
    started = time.perf_counter()
    seed_everything(spec.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    device = resolve_device(spec.training.device)
    autocast = autocast_for(device, spec.training.precision)
    train_set, binds = build_dataset(spec, "train", train=True, base=data_root)
    val_set, _ = build_dataset(spec, "val", train=False, base=data_root)
    test_set, _ = build_dataset(spec, spec.evaluation.split, train=False, base=data_root) if spec.evaluation.split != "val" else (val_set, binds)
    problems = scan({**train_set.sources, **{f"{n} ({split})": s for split, d in (("val", val_set), (spec.evaluation.split, test_set))
                                             for n, s in d.sources.items()}}, binds=binds)
    if problems:
        shown = "\n  ".join(f"dataset '{name}': {error}" for name, error in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise TrainingError(f"bad data found before training ({len(problems)} problem(s)):\n  {shown}{more}")
    num_classes = {b.name: b.num_classes for b in binds}
    model, task_types = build_model(spec, num_classes)
    model.to(device)
    weighting = METHODS[spec.weighting.type](list(spec.tasks), spec.weighting)
    optimizer = build_optimizer(spec.training.optimizer, list(model.parameters()))
    if weighting.parameters():  # the method's own learned weights, without weight decay
        optimizer.add_param_group({"params": weighting.parameters(), "weight_decay": 0.0})
    sampling = spec.data.sampling
    order = BatchOrder(train_set.sizes, spec.data.batch_size, sampling.type, getattr(sampling, "t", 2.0), spec.seed, spec.training.max_steps_per_epoch)
    steps_per_epoch = len(order)
    if steps_per_epoch == 0:
        raise TrainingError(f"data.batch_size {spec.data.batch_size} is larger than the training split ({len(train_set)} samples): "
                            f"no training step would run (the last, partial batch of an epoch is dropped)")
    scheduler = build_scheduler(spec.training.scheduler, optimizer, steps_per_epoch, spec.training.epochs)
    # With a cyclic schedule, the model at the end of each cycle is kept: snapshot ensembles use them.
    cycles = spec.training.scheduler.cycles if spec.training.scheduler.type == "cyclic" else 0
    snapshot_every = max(steps_per_epoch * spec.training.epochs // cycles, 1) if cycles else 0
    workers = spec.data.num_workers
    train_loader = make_loader(train_set, binds, spec.data.batch_size, workers, order)
    val_loader = make_loader(val_set, binds, spec.data.batch_size, workers)
    ckpt_dir = run_dir / "checkpoints"
    metrics_log = run_dir / "metrics.jsonl"
    history: list[dict[str, Any]] = []
    start_epoch, step, best, bad_epochs = 0, 0, None, 0

    if resume is not None:
        state = resume
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        weighting.load_state_dict(state["weighting"])
        ckpt.set_rng_state(state["rng"])
        start_epoch, step, best, bad_epochs, history = state["epoch"], state["step"], state["best"], state["bad_epochs"], state["history"]
        log(f"resumed after epoch {start_epoch}")

    last_good = ckpt.latest(ckpt_dir)
    stopped_early = False
    epoch = start_epoch
    model.train()
    with open(metrics_log, "a") as sink:
        for epoch in range(start_epoch, spec.training.epochs):
            order.epoch = epoch
            train_set.set_epoch(epoch)
            if progress is not None:
                progress.start_epoch(epoch, spec.training.epochs, steps_per_epoch)
            epoch_sums, epoch_steps = {t: 0.0 for t in task_types}, 0
            for batch in train_loader:
                batch = to_device(batch, device)
                check = functools.partial(_stop_if_not_finite, step=step + 1, epoch=epoch + 1, last_good=last_good)
                losses, weights = train_step(model, task_types, weighting, optimizer, batch, autocast, spec.training.grad_clip, check)
                scheduler.step()
                if snapshot_every and (step + 1) % snapshot_every == 0:  # the end of a learning-rate cycle
                    ckpt.save(ckpt_dir / f"snapshot-{(step + 1) // snapshot_every:03d}.pt", {"spec_hash": spec_hash, "step": step + 1, "model": model.state_dict()})
                for t, v in losses.items():
                    epoch_sums[t] += v.item()
                epoch_steps += 1
                step += 1
                row = {"kind": "step", "epoch": epoch + 1, "step": step, "lr": optimizer.param_groups[0]["lr"],
                       "loss": {t: v.item() for t, v in losses.items()},
                       "weight": {t: (float(w.detach()) if torch.is_tensor(w) else w) for t, w in weights.items()}}
                sink.write(json.dumps(row) + "\n")
                if progress is not None:
                    progress.step(row)
            if not isinstance(weighting, GradientAggregator):
                weighting.end_epoch({t: v / max(epoch_steps, 1) for t, v in epoch_sums.items()})
            record = {"kind": "epoch", "epoch": epoch + 1, "step": step}
            if (epoch + 1) % spec.evaluation.every_epochs == 0 or epoch + 1 == spec.training.epochs:
                val_metrics, val_losses = evaluate(model, task_types, val_loader, device, spec.data.image_size, autocast)
                record.update(val=val_metrics, val_loss=val_losses)
                stopping = spec.training.early_stopping
                if stopping is not None:
                    value, higher = _monitor_value(stopping.monitor, val_metrics, val_losses, spec, baseline_val)
                    improved = best is None or (value > best + stopping.min_delta if higher else value < best - stopping.min_delta)
                    best, bad_epochs = (value, 0) if improved else (best, bad_epochs + 1)
                    stopped_early = bad_epochs >= stopping.patience
            history.append(record)
            sink.write(json.dumps(record) + "\n")
            sink.flush()
            if progress is not None:
                progress.end_epoch(record)
            if (epoch + 1) % spec.training.checkpoint.every_epochs == 0 or epoch + 1 == spec.training.epochs or stopped_early:
                path = ckpt_dir / f"epoch-{epoch + 1:04d}.pt"
                diverged = ckpt.unhealthy(model)
                if diverged:  # a state no resume could continue from is never saved as one
                    where = f"last good checkpoint: {last_good}" if last_good else "no checkpoint was written"
                    raise TrainingError(f"training diverged by the end of epoch {epoch + 1}: {diverged}; stopped, {where} "
                                        f"(lower training.optimizer.lr, or set training.grad_clip)")
                ckpt.save(path, {
                    "spec_hash": spec_hash, "epoch": epoch + 1, "step": step, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "weighting": weighting.state_dict(), "rng": ckpt.rng_state(), "best": best,
                    "bad_epochs": bad_epochs, "history": history,
                })
                ckpt.prune(ckpt_dir, spec.training.checkpoint.keep)
                last_good = path
            if stopped_early:
                log(f"early stopping after epoch {epoch + 1}: {spec.training.early_stopping.monitor} has not improved for {bad_epochs} evaluations")
                break
            if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
                raise TrainingError(f"stopped after epoch {epoch + 1} as asked; resume from {last_good}")
    test_loader = make_loader(test_set, binds, spec.data.batch_size, workers)
    final, _ = evaluate(model, task_types, test_loader, device, spec.data.image_size, autocast)
    baselines = trivial_baselines(task_types, train_set, test_loader, spec.data.image_size)
    fingerprints = {name: src.fingerprint() for name, src in train_set.sources.items()}
    splits = {name: {"train": describe(src)} for name, src in train_set.sources.items()}
    for split, dataset in (("val", val_set), (spec.evaluation.split, test_set)):
        for name, src in dataset.sources.items():
            splits[name][split] = describe(src)
    return FitResult(
        metrics=final, baselines=baselines, history=history, epochs_run=epoch + 1, stopped_early=stopped_early,
        device=str(device), fingerprints=fingerprints, splits=splits, num_parameters=sum(p.numel() for p in model.parameters()),
        wall_seconds=time.perf_counter() - started, split=spec.evaluation.split,
        task_types={t: s.type for t, s in spec.tasks.items()},
    )
