"""Training what `build` made: batches -> per-task losses -> the weighting method's backward ->
step; checkpoints; metrics.jsonl; early stopping; the final evaluation. Observers (the progress
bar, tests that stop a run) are callbacks, not parameters of the loop."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from mtlspec.build import Built, build
from mtlspec.data.build import describe, scan
from mtlspec.inference.model_file import FILE as MODEL_FILE, save_model, vocabulary
from mtlspec.train import checkpoint as ckpt
from mtlspec import distributed
from mtlspec.distributed import World
from mtlspec.train.evaluate import evaluate, to_device, trivial_baselines
from mtlspec.train.optim import build_optimizer, build_scheduler
from mtlspec.train.preemption import Preempted, StopRequest, graceful_stop
from mtlspec.train.setup import (  # noqa: F401  (the names others import from here)
    TORCH_DEFAULT_THREADS, BatchOrder, TrainingError, autocast_for, grad_scaler_for, make_loader, resolve_device, seed_everything, thread_count,
)
from mtlspec.train.timing import TIMINGS_FILE, EpochClock
from mtlspec.weighting.base import gradient_step  # noqa: F401  (re-exported: ../shared/bench/libmtl_side_by_side.py imports it from here)


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
    threads: int = 0
    few_shot: dict[str, dict[str, Any]] = field(default_factory=dict)  # meta runs: per task, the few-shot evaluation
    details: dict[str, dict[str, Any]] = field(default_factory=dict)  # per task, the final evaluation's Metric.details() and class names


class Callback:
    """What an observer of a run may implement; every hook is optional. A hook that raises stops
    the run there (the run directory records the cause; its checkpoints stay resumable)."""

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None: ...

    def step(self, row: dict[str, Any]) -> None: ...

    def end_epoch(self, record: dict[str, Any]) -> None: ...

    def checkpointed(self, epoch: int, path: Path) -> None: ...


def seeded_build(spec: Any, data_root: Path, sources: dict[str, Any] | None = None) -> Built:
    """Seed every generator with the spec's seed, then build: the initial weights are a function of the seed."""
    seed_everything(spec.seed)
    return build(spec, data_root, sources)


def _stop_if_not_finite(losses: dict[str, torch.Tensor], step: int, epoch: int, last_good: Path | None) -> None:
    for task, loss in losses.items():
        if not torch.isfinite(loss.detach()).all():
            where = f"last good checkpoint: {last_good}" if last_good else "no checkpoint was written yet"
            raise TrainingError(f"the loss of task '{task}' is {loss.item()} at step {step} (epoch {epoch}); stopped, {where}")


def train_step(model: Any, task_types: dict, weighting: Any, optimizer: torch.optim.Optimizer, batch: dict,
               autocast: Callable[[], Any], grad_clip: float | None = None,
               check: Callable[[dict[str, torch.Tensor]], None] | None = None,
               scaler: Any = None, world: World = World(), present: dict[str, bool] | None = None,
               method_seed: int | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """One optimisation step: forward, per-task losses, the weighting method's backward, update.
    With a GradScaler (fp16) the backward leaves scaled gradients; they are unscaled before
    clipping, and a step whose gradients overflowed is skipped (the scaler then lowers its scale).
    With several ranks (mtlspec/distributed.py) the batch is this rank's shard: the loss values,
    the task presence, a gradient method's per-task rows and then all gradients are averaged over
    the ranks, so each takes the same step. `present`: which tasks have a labelled sample in the
    (global) batch, when the caller knows it already. `method_seed`: the weighting method draws its
    random numbers (RLW's weights, PCGrad's order, GradDrop's masks) from torch's generator seeded
    with it, then the generator is put back: the same draws on every rank, whatever else consumed
    random numbers there (dropout, MMDetection's RoI sampling)."""

    def task_losses() -> dict[str, torch.Tensor]:
        outputs = model(batch["image"], batch.get("text"))
        return {t: tt.loss(outputs[t], batch["targets"][t], batch["has"][t], batch["weight"][t]) for t, tt in task_types.items()}

    def recompute() -> dict[str, torch.Tensor]:
        with torch.no_grad(), autocast():
            found = task_losses()
            if not world.active:
                return found
            return distributed.global_losses(found, world, {t: batch["has"][t].sum() for t, tt in task_types.items() if tt.mean_over_labelled},
                                             {t for t, tt in task_types.items() if tt.whole_batch_loss})

    with autocast():
        losses = task_losses()
    device = next(model.parameters()).device
    if world.active:
        counts = {t: batch["has"][t].sum() for t, tt in task_types.items() if tt.mean_over_labelled}
        losses = distributed.global_losses(losses, world, counts, {t for t, tt in task_types.items() if tt.whole_batch_loss})
    if check is not None:
        check(losses)
    optimizer.zero_grad(set_to_none=True)
    if present is None:
        present = dict(zip(task_types, distributed.any_rank([bool(batch["has"][t].any()) for t in task_types], world, device)))
    scale = None if scaler is None else scaler.scale(torch.ones((), device=device))
    with _seeded(method_seed, device):
        weights = weighting.backward(model, losses, present, scale=scale, ranks=distributed.Ranks(world, device) if world.active else None)
    distributed.mean_gradients([p for group in optimizer.param_groups for p in group["params"]], world, device)
    if scaler is not None:
        scaler.unscale_(optimizer)
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler is None:
        optimizer.step()
    else:
        before = scaler.get_scale()
        scaler.step(optimizer)
        scaler.update()
    distributed.broadcast_buffers(model, world)
    if scaler is not None and scaler.get_scale() < before:  # an overflow: the scaler skipped the step, so the method learns nothing from it
        return losses, weights
    with _seeded(None if method_seed is None else method_seed + 1, device):
        weighting.after_step(recompute)
    return losses, weights


def _seeded(seed: int | None, device: torch.device) -> Any:
    """torch's generators (the CPU's, and the device's) seeded with `seed` within the block and put
    back after it; nothing when seed is None."""
    if seed is None:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def block():
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            yield

    return block()


def monitor_value(monitor: str, val_metrics: dict, val_losses: dict, spec: Any = None,
                  baseline_val: dict | None = None) -> tuple[float, bool]:
    """(value, higher_is_better) of the early-stopping monitor."""
    from mtlspec.language.tasks import directions
    from mtlspec.report.delta_m import delta_m

    if monitor == "val.loss":
        return sum(val_losses.values()), False
    if monitor == "val.delta_m":
        chosen = {t: {m: v for m, v in val_metrics[t].items() if m in spec.tasks[t].metrics} for t in val_metrics}
        value = delta_m(chosen, baseline_val or {}, directions(spec))["value"]
        return (value if value is not None else float("-inf")), True
    _, task, metric = monitor.split(".")
    return val_metrics[task][metric], directions(spec)[task][metric]


class Trainer:
    """One run's training state: the epochs, steps, best monitor value and history a checkpoint keeps."""

    def __init__(self, built: Built, spec_hash: str, run_dir: Path, log: Callable[[str], None], callbacks: list[Callback],
                 baseline_val: dict | None):
        spec = built.spec
        self.built, self.spec, self.spec_hash, self.run_dir, self.log = built, spec, spec_hash, run_dir, log
        self.callbacks, self.baseline_val = callbacks, baseline_val
        torch.use_deterministic_algorithms(True, warn_only=True)
        self.world = distributed.current()
        if self.world.rank > 0:  # the other ranks' dropout and sampling draw other numbers than rank 0's (the weights are built already)
            torch.manual_seed((spec.seed * 1_000_003 + 7919 * self.world.rank) % 2**63)
        self.device = resolve_device(spec.training.device, self.world.local_rank if self.world.active else None)
        self.autocast = autocast_for(self.device, spec.training.precision)
        self.scaler = grad_scaler_for(self.device, spec.training.precision)
        self.train_set = built.dataset("train", train=True)
        self.val_set = built.dataset("val")
        self.test_set = built.dataset(spec.evaluation.split) if spec.evaluation.split != "val" else self.val_set
        self._scan()
        self.model, self.weighting, self.task_types = built.model, built.weighting, built.task_types
        self.model.to(self.device)
        if spec.training.channels_last:
            self.model.use_channels_last()
        if spec.training.compile is not None:
            self.model.compile_shared(spec.training.compile.backend, spec.training.compile.mode)
        self.optimizer = build_optimizer(spec.training.optimizer, list(self.model.parameters()))
        if self.weighting.parameters():  # the method's own learned weights, without weight decay
            self.optimizer.add_param_group({"params": self.weighting.parameters(), "weight_decay": 0.0})
        sampling = spec.data.sampling
        self.order = BatchOrder(self.train_set.sizes, spec.data.batch_size, sampling.type, getattr(sampling, "t", 2.0), spec.seed,
                                spec.training.max_steps_per_epoch, self.world.rank, self.world.size)
        self.steps_per_epoch = len(self.order)
        if self.steps_per_epoch == 0:
            raise TrainingError(f"data.batch_size {spec.data.batch_size} is larger than the training split ({len(self.train_set)} samples): "
                                f"no training step would run (the last, partial batch of an epoch is dropped)")
        self.scheduler = build_scheduler(spec.training.scheduler, self.optimizer, self.steps_per_epoch, spec.training.epochs)
        # With a cyclic schedule, the model at the end of each cycle is kept: snapshot ensembles use them.
        cycles = spec.training.scheduler.cycles if spec.training.scheduler.type == "cyclic" else 0
        self.snapshot_every = max(self.steps_per_epoch * spec.training.epochs // cycles, 1) if cycles else 0
        workers = spec.data.num_workers
        pin = self.device.type == "cuda"  # page-locked batches: the copies to the GPU (non_blocking) overlap the step
        self.train_loader = make_loader(self.train_set, spec.data.batch_size, workers, self.order, pin=pin)
        self.shard = (self.world.rank, self.world.size)
        self.val_loader = make_loader(self.val_set, spec.data.batch_size, workers, shard=self.shard, pin=pin)
        self.ckpt_dir = run_dir / "checkpoints"
        self.vocabulary = vocabulary(built.task_types, built.sources)  # class names and ids for model.pt
        self.history: list[dict[str, Any]] = []
        self.epoch, self.step, self.best, self.bad_epochs, self.stopped_early = 0, 0, None, 0, False
        self.completed = 0  # epochs finished (a resumed run starts from its checkpoint's)
        self.batch = 0  # batches of the current epoch done (a checkpoint within an epoch resumes after them)
        self.epoch_losses: tuple[dict[str, float], dict[str, int]] | None = None  # that epoch's loss sums and counts so far
        self.stop = StopRequest()

    def _scan(self) -> None:
        """Every sample of every split checked before the first step (files, annotations, labels)."""
        splits = (("val", self.val_set), (self.spec.evaluation.split, self.test_set))
        problems = scan({**self.train_set.sources, **{f"{n} ({split})": s for split, d in splits for n, s in d.sources.items()}},
                        task_types=self.built.task_types)
        if problems:
            shown = "\n  ".join(f"dataset '{name}': {error}" for name, error in problems[:20])
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise TrainingError(f"bad data found before training ({len(problems)} problem(s)):\n  {shown}{more}")

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.weighting.load_state_dict(state["weighting"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        ckpt.set_rng_state(state["rng"])
        if self.world.rank > 0:  # the checkpoint holds rank 0's generator: this rank draws its own again
            torch.manual_seed((self.spec.seed * 1_000_003 + 7919 * self.world.rank + state["step"]) % 2**63)
        self.epoch, self.step, self.best, self.bad_epochs, self.history = state["epoch"], state["step"], state["best"], state["bad_epochs"], state["history"]
        self.completed, self.stopped_early = state["epoch"], bool(state.get("stopped_early", False))
        self.batch = int(state.get("batch", 0))
        if self.batch:
            self.epoch_losses = (dict(state["epoch_loss_sums"]), dict(state["epoch_loss_counts"]))
            self.log(f"resumed in epoch {self.epoch + 1}, after step {self.step} (batch {self.batch} of {self.steps_per_epoch})")
        else:
            self.log(f"resumed after epoch {self.epoch}")

    def _each(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook, lambda *a: None)(*args)

    def train(self) -> None:
        spec = self.spec
        self.last_good = ckpt.latest(self.ckpt_dir)
        self.model.train()
        with open(self.run_dir / "metrics.jsonl", "a") as sink, graceful_stop(self.log) as self.stop:
            for epoch in range(self.epoch, spec.training.epochs if not self.stopped_early else self.epoch):
                self.epoch = epoch
                self._train_epoch(epoch, sink)
                evaluating = time.perf_counter()
                record = self._end_epoch(epoch)
                self.completed = epoch + 1
                sink.write(json.dumps(record) + "\n")
                sink.flush()
                self.clock.write(self.run_dir / TIMINGS_FILE, time.perf_counter() - evaluating)
                self._each("end_epoch", record)
                stopping = self._agree_on_stop()
                if (epoch + 1) % spec.training.checkpoint.every_epochs == 0 or epoch + 1 == spec.training.epochs or self.stopped_early \
                        or stopping:
                    self._checkpoint(epoch)
                if stopping and epoch + 1 < spec.training.epochs and not self.stopped_early:
                    raise self._preempted(self.last_good)
                if self.stopped_early:
                    self.log(f"early stopping after epoch {epoch + 1}: {spec.training.early_stopping.monitor} has not improved for {self.bad_epochs} evaluations")
                    break
        if spec.training.early_stopping is None or not (self.run_dir / MODEL_FILE).is_file():
            self._save_model(self.completed - 1, f"the last epoch ({self.completed})")

    def _train_epoch(self, epoch: int, sink: Any) -> None:
        spec = self.spec
        self.order.epoch = epoch
        self.train_set.set_epoch(epoch)
        self._each("start_epoch", epoch, spec.training.epochs, self.steps_per_epoch)
        sums, counts = self.epoch_losses if self.batch else ({t: 0.0 for t in self.task_types}, {t: 0 for t in self.task_types})
        self.order.skip = self.batch  # a resume from within this epoch: its first batches are done
        every = spec.training.checkpoint.every_steps
        clock = EpochClock(epoch + 1, self.step, spec.data.batch_size)
        read_every = spec.training.log_every
        pending: list[tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]] = []  # steps not yet read from the device
        for batch in clock.batches(self.train_loader):
            # which tasks the (global) batch labels, read on the host before the copy
            present = dict(zip(self.task_types, distributed.any_rank([bool(batch["has"][t].any()) for t in self.task_types], self.world, self.device)))
            absent = [t for t, there in present.items() if not there]
            batch = to_device(batch, self.device)
            check = functools.partial(_stop_if_not_finite, step=self.step + 1, epoch=epoch + 1, last_good=self.last_good) if read_every == 1 else None
            scale_before = self.scaler.get_scale() if self.scaler is not None else None
            try:
                losses, weights = train_step(self.model, self.task_types, self.weighting, self.optimizer, batch, self.autocast,
                                             spec.training.grad_clip, check, self.scaler, self.world, present,
                                             method_seed=(spec.seed * 1_000_003 + 2 * self.step) % 2**63)
            except Exception:
                if pending:  # a NaN among the steps not yet read is the cause to report (a solver may choke on its gradients first)
                    self._write_steps(pending, sink, sums, counts, epoch)
                raise
            if self.scaler is None or self.scaler.get_scale() >= scale_before:  # a step fp16's scaler skipped leaves the schedule where it was
                self.scheduler.step()
            if self.snapshot_every and (self.step + 1) % self.snapshot_every == 0 and self.world.main:  # the end of a learning-rate cycle
                ckpt.save(self.ckpt_dir / f"snapshot-{(self.step + 1) // self.snapshot_every:03d}.pt",
                          {"spec_hash": self.spec_hash, "step": self.step + 1, "model": self.model.state_dict()})
            self.step += 1
            row: dict[str, Any] = {"kind": "step", "epoch": epoch + 1, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"]}
            if absent:  # no labelled sample in this batch: the task took no part in the update, weight None
                row["absent"] = absent
            cosines = self.weighting.gradient_cosines()
            if cosines is not None:
                row["cosine"] = cosines
            pending.append((row, {t: v.detach() for t, v in losses.items()},
                            {t: w.detach() if torch.is_tensor(w) else w for t, w in weights.items()}))
            self.batch += 1
            if len(pending) >= read_every or self.batch == self.steps_per_epoch:
                self._write_steps(pending, sink, sums, counts, epoch)
                pending = []
            stopping = self._agree_on_stop()
            boundary = self.batch < self.steps_per_epoch and (stopping or (every and self.step % every == 0))
            if boundary and pending:  # a checkpoint holds the epoch's loss sums of every step before it
                self._write_steps(pending, sink, sums, counts, epoch)
                pending = []
            if boundary:
                sink.flush()  # the checkpoint's rows are on disk before it
                path = self._checkpoint_within(epoch, sums, counts)
                if stopping:
                    raise self._preempted(path)
        self.order.skip, self.batch, self.epoch_losses = 0, 0, None
        self.weighting.end_epoch({t: v / max(counts[t], 1) for t, v in sums.items()})
        self.clock = clock

    def _write_steps(self, pending: list, sink: Any, sums: dict[str, float], counts: dict[str, int], epoch: int) -> None:
        """The pending steps' rows, from one read of their losses and weights off the device; the
        epoch's loss sums; a NaN loss among them stops the run naming its step."""
        tasks = list(self.task_types)
        # float64 holds float32, bfloat16 and float64 values exactly: the same numbers .item() would give
        losses = torch.stack([torch.stack([step[t].double().reshape(()) for t in tasks]) for _, step, _ in pending]).cpu().tolist()
        learned = [(i, t) for i, (_, _, w) in enumerate(pending) for t, v in w.items() if torch.is_tensor(v)]
        read = dict(zip(learned, torch.stack([pending[i][2][t].double().reshape(()) for i, t in learned]).cpu().tolist())) if learned else {}
        for i, ((row, _, weights), values) in enumerate(zip(pending, losses)):
            for t, v in zip(tasks, values):
                if not math.isfinite(v):
                    where = f"last good checkpoint: {self.last_good}" if self.last_good else "no checkpoint was written yet"
                    raise TrainingError(f"the loss of task '{t}' is {v} at step {row['step']} (epoch {epoch + 1}); stopped, {where}")
            absent = row.get("absent", [])
            for t, v in zip(tasks, values):
                if t not in absent:  # an epoch's mean loss is over the batches that had the task
                    sums[t] += v
                    counts[t] += 1
            row = {**{k: row[k] for k in ("kind", "epoch", "step", "lr")}, "loss": dict(zip(tasks, values)),
                   "weight": {t: None if t in absent else (read[(i, t)] if (i, t) in read else w) for t, w in weights.items()},
                   **{k: row[k] for k in ("absent", "cosine") if k in row}}
            sink.write(json.dumps(row) + "\n")
            self._each("step", row)

    def _agree_on_stop(self) -> bool:
        """Whether to stop here: a stop signal has come. With several ranks, to any of them (one
        small all-reduce), and the ranks act on this answer alone, never on a signal that lands
        after it, so all stop at the same step boundary and none waits in a collective the others left."""
        if not self.world.active:
            return self.stop.signal is not None
        agreed = distributed.any_rank([self.stop.signal is not None], self.world, self.device)[0]
        if agreed and self.stop.signal is None:
            self.stop.signal = "a stop signal to another rank"
        return agreed

    def _end_epoch(self, epoch: int) -> dict[str, Any]:
        """The epoch's record: the validation metrics and losses when it evaluates, and early stopping's verdict."""
        spec = self.spec
        record: dict[str, Any] = {"kind": "epoch", "epoch": epoch + 1, "step": self.step}
        if (epoch + 1) % spec.evaluation.every_epochs == 0 or epoch + 1 == spec.training.epochs:
            val_metrics, val_losses = evaluate(self.model, self.task_types, self.val_loader, self.device, spec.data.image_size, self.autocast,
                                               world=self.world)
            record.update(val=val_metrics, val_loss=val_losses)
            stopping = spec.training.early_stopping
            if stopping is not None:
                value, higher = monitor_value(stopping.monitor, val_metrics, val_losses, spec, self.baseline_val)
                best = self.best
                improved = best is None or (value > best + stopping.min_delta if higher else value < best - stopping.min_delta)
                value, improved = distributed.from_main((value, improved), self.world)  # rank 0 decides (it alone has the baseline run)
                self.best, self.bad_epochs = (value, 0) if improved else (best, self.bad_epochs + 1)
                self.stopped_early = self.bad_epochs >= stopping.patience
                if improved:
                    self._save_model(epoch, f"the best by {stopping.monitor} ({value:.6g} at epoch {epoch + 1})")
        self.history.append(record)
        return record

    def _save_model(self, epoch: int, selected: str) -> None:
        """model.pt: the weights prediction uses, from a healthy state only (rank 0's to write)."""
        if self.world.main and ckpt.unhealthy(self.model) is None:
            save_model(self.run_dir, self.model, self.spec_hash, epoch + 1, selected, self.vocabulary, self.spec.data.image_size)

    def _checkpoint(self, epoch: int) -> None:
        self._save_state(self.ckpt_dir / ckpt.epoch_file(epoch + 1), epoch + 1, f"the end of epoch {epoch + 1}")
        self._each("checkpointed", epoch + 1, self.last_good)

    def _checkpoint_within(self, epoch: int, sums: dict[str, float], counts: dict[str, int]) -> Path:
        """A checkpoint after this step, within epoch `epoch + 1` (every_steps, or a stop signal)."""
        path = self.ckpt_dir / ckpt.step_file(epoch, self.step)
        self._save_state(path, epoch, f"step {self.step}", batch=self.batch, epoch_loss_sums=sums, epoch_loss_counts=counts)
        return path

    def _save_state(self, path: Path, epochs_done: int, when: str, **within: Any) -> None:
        diverged = ckpt.unhealthy(self.model)
        if diverged:  # a state no resume could continue from is never saved as one
            where = f"last good checkpoint: {self.last_good}" if self.last_good else "no checkpoint was written"
            raise TrainingError(f"training diverged by {when}: {diverged}; stopped, {where} "
                                f"(lower training.optimizer.lr, or set training.grad_clip)")
        if not self.world.main:  # rank 0 writes the checkpoint (the ranks hold the same state)
            self.last_good = path
            return
        ckpt.save(path, {
            "spec_hash": self.spec_hash, "epoch": epochs_done, "step": self.step, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "weighting": self.weighting.state_dict(), "rng": ckpt.rng_state(), "best": self.best,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "bad_epochs": self.bad_epochs, "history": self.history, "stopped_early": self.stopped_early, **within,
        })
        ckpt.prune(self.ckpt_dir, self.spec.training.checkpoint.keep)
        self.last_good = path

    def _preempted(self, path: Path | None) -> Preempted:
        return Preempted(f"stopped by {self.stop.signal} after step {self.step} (epoch {self.epoch + 1}), checkpoint {path}; "
                         f"continue with: mtlspec run SPEC --resume {self.run_dir} (SPEC: the spec it was run from; for a matrix "
                         f"combination, a single-task baseline or an ensemble member, {self.run_dir / 'spec.resolved.yaml'})")

    def result(self, started: float) -> FitResult:
        """The final evaluation on the spec's split, beside what trivial predictors score there."""
        spec = self.spec
        test_loader = make_loader(self.test_set, spec.data.batch_size, spec.data.num_workers)
        details: dict[str, Any] = {}
        final, _ = evaluate(self.model, self.task_types, make_loader(self.test_set, spec.data.batch_size, spec.data.num_workers, shard=self.shard),
                            self.device, spec.data.image_size, self.autocast, details, self.world)
        baselines = trivial_baselines(self.task_types, self.train_set.unaugmented(), test_loader, spec.data.image_size)
        splits = describe_splits(self.train_set, {"val": self.val_set, spec.evaluation.split: self.test_set})
        return FitResult(
            metrics=final, baselines=baselines, history=self.history, epochs_run=self.completed, stopped_early=self.stopped_early,
            device=str(self.device), fingerprints={name: src.fingerprint() for name, src in self.train_set.sources.items()},
            splits=splits, num_parameters=sum(p.numel() for p in self.model.parameters()),
            wall_seconds=time.perf_counter() - started, split=spec.evaluation.split,
            task_types={t: s.type for t, s in spec.tasks.items()},
            details={t: {**found, "names": self.vocabulary[t]["names"]} for t, found in details.items()},
        )


def describe_splits(train_set: Any, others: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per dataset and split, its size and origin, for the manifest and the report."""
    splits = {name: {"train": describe(src)} for name, src in train_set.sources.items()}
    for split, dataset in others.items():
        for name, src in dataset.sources.items():
            splits[name][split] = describe(src)
    return splits


def fit(built: Built, spec_hash: str, run_dir: Path, resume: dict[str, Any] | None = None, log: Callable[[str], None] = print,
        callbacks: list[Callback] | tuple = (), baseline_val: dict[str, dict[str, float]] | None = None) -> FitResult:
    """Train what `build` made (build it with `seeded_build`), checkpointing into run_dir (from a
    checkpoint's state when resuming); evaluate on the spec's split at the end."""
    started = time.perf_counter()
    previous, threads = torch.get_num_threads(), thread_count(built.spec)
    torch.set_num_threads(threads)
    try:
        trainer = Trainer(built, spec_hash, run_dir, log, list(callbacks), baseline_val)
        if resume is not None:
            trainer.restore(resume)
        trainer.train()
        result = trainer.result(started)
    finally:
        torch.set_num_threads(previous)  # a process that runs several specs starts each from the same count
    result.threads = threads
    return result
