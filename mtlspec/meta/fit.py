"""Meta-training as a run: outer steps over episodes of the training split, few-shot evaluation on
the validation split at evaluated epochs and on the spec's evaluation split at the end, with the
run directory's usual files (metrics.jsonl, resumable checkpoints, model.pt, reports).

Episodes are a function of (seed, epoch, step, episode), so a resumed run draws the same ones.
Training episodes come from the training classes (all but `held_out_classes`), evaluation episodes
from the held-out classes when there are any. Images are read without augmentation.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from mtlspec.build import Built
from mtlspec.inference.model_file import save_model
from mtlspec.meta import adapts, algorithm_for
from mtlspec.meta.episodes import EpisodeSampler, class_index, label_reader
from mtlspec.meta.functional import adapted, adapted_names, logits
from mtlspec.train import checkpoint as ckpt
from mtlspec.train.loop import FitResult, TrainingError, describe_splits, resolve_device, thread_count
from mtlspec.train.optim import build_optimizer, build_scheduler

Z95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval, as few-shot papers report


def episode_mode(model: torch.nn.Module) -> None:
    """Dropout and stochastic depth off, BatchNorm on each batch's own statistics (see functional.py)."""
    model.eval()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and type(module).train is torch.nn.Module.train:
            module.train()


def few_shot(model: torch.nn.Module, sampler: EpisodeSampler, task: str, count: int, steps: int, lr: float, adapt: str | list[str],
             device: torch.device, key: int = 0, vectorize: int = 0) -> dict[str, Any]:
    """Adapt to `count` episodes (from the same starting weights each time) and score each on its
    query set: mean accuracy, its 95% confidence interval (1.96 standard errors) and the episodes.
    `vectorize`: adapt that many episodes at once (torch.func.vmap; the same first-order
    adaptation), else one after another."""
    episode_mode(model)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    names = adapted_names(model, task, adapt)
    accuracies: list[float] = []
    if vectorize:
        from mtlspec.meta.vectorized import adapt_episodes

        for first in range(0, count, vectorize):
            episodes = [sampler.tensors(sampler.episode(key, e), device) for e in range(first, min(first + vectorize, count))]
            with torch.no_grad():
                accuracies += [float(a) for a in adapt_episodes(model, task, names, steps, lr, episodes)[1]]
    for e in range(len(accuracies), count):
        sx, sy, qx, qy = sampler.tensors(sampler.episode(key, e), device)
        start = {n: p.detach().requires_grad_(n in names) for n, p in params.items()}
        fast = adapted(model, start, names, task, sx, sy, steps, lr, create_graph=False)
        with torch.no_grad():
            accuracies.append(float((logits(model, fast, task, qx).argmax(1) == qy).float().mean()))
    values = np.asarray(accuracies)
    spread = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {"accuracy": float(values.mean()), "ci95": Z95 * spread / math.sqrt(len(values)), "episodes": len(values),
            "ways": sampler.ways, "shots": sampler.shots, "queries": sampler.queries}


def label_reading(built: Built, split: str) -> Any:
    """A split's samples with the task's labels as the dataset has them (all its classes; the
    model's head has `ways`), read without augmentation."""
    from mtlspec.data.build import build_dataset

    task = built.spec.meta.task
    section = built.spec.tasks[task]
    reader = label_reader(task, section, built.sources[section.dataset])
    return build_dataset(built.spec, split, False, built.data_root, reader, sources=built.sources if split == "train" else None)


def class_sets(meta: Any, sampler_classes: list[int] | None = None) -> tuple[list[int] | None, list[int] | None]:
    """(training classes, evaluation classes): None means every class of the task."""
    held = sorted(set(meta.held_out_classes))
    if not held:
        return None, None
    return [c for c in (sampler_classes or []) if c not in held], held


def fit_meta(built: Built, spec_hash: str, run_dir: Path, resume: dict[str, Any] | None = None, log: Callable[[str], None] = print,
             callbacks: list | tuple = (), baseline_val: Any = None) -> FitResult:
    """Meta-train what `seeded_build` made; evaluate few-shot on the spec's split at the end."""
    started = time.perf_counter()
    previous, threads = torch.get_num_threads(), thread_count(built.spec)
    torch.set_num_threads(threads)
    try:
        result = MetaTrainer(built, spec_hash, run_dir, log, list(callbacks), resume).run(started)
    finally:
        torch.set_num_threads(previous)
    result.threads = threads
    return result


class MetaTrainer:
    def __init__(self, built: Built, spec_hash: str, run_dir: Path, log: Callable[[str], None], callbacks: list, resume: dict | None):
        spec, meta = built.spec, built.spec.meta
        self.built, self.spec, self.meta, self.task = built, spec, meta, meta.task
        self.spec_hash, self.run_dir, self.log, self.callbacks = spec_hash, run_dir, log, callbacks
        torch.use_deterministic_algorithms(True, warn_only=True)
        self.device = resolve_device(spec.training.device)
        self.model = built.model.to(self.device)
        self.algorithm = algorithm_for(meta)
        shape = meta.episodes
        self.train_set, self.val_set, self.test_set = (label_reading(built, split) for split in ("train", "val", spec.evaluation.split))
        every = class_index(self.train_set, self.task)  # read once: it names the classes and indexes the training samples
        train_classes, eval_classes = class_sets(meta, sorted(every))
        self.train_sampler = EpisodeSampler(self.train_set, self.task, shape.ways, shape.shots, shape.queries, spec.seed, train_classes,
                                            "training split", every)
        named = eval_classes is not None  # held-out classes are the evaluation: each one is used, or it is an error
        self.val_sampler = EpisodeSampler(self.val_set, self.task, shape.ways, shape.shots, shape.queries, spec.seed + 1, eval_classes,
                                          "validation split", every_class=named)
        self.test_sampler = EpisodeSampler(self.test_set, self.task, shape.ways, shape.shots, shape.queries, spec.seed + 2, eval_classes,
                                           f"{spec.evaluation.split} split", every_class=named)
        self.optimizer = build_optimizer(spec.training.optimizer, [p for p in self.model.parameters() if p.requires_grad])
        self.steps_per_epoch = meta.steps_per_epoch
        self.scheduler = build_scheduler(spec.training.scheduler, self.optimizer, self.steps_per_epoch, spec.training.epochs)
        self.ckpt_dir = run_dir / "checkpoints"
        self.history: list[dict[str, Any]] = []
        self.epoch, self.step = 0, 0
        if resume is not None:
            self.model.load_state_dict(resume["model"])
            self.optimizer.load_state_dict(resume["optimizer"])
            self.scheduler.load_state_dict(resume["scheduler"])
            ckpt.set_rng_state(resume["rng"])
            self.epoch, self.step, self.history = resume["epoch"], resume["step"], resume["history"]
            log(f"resumed after epoch {self.epoch}")

    def _each(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook, lambda *a: None)(*args)

    def _few_shot(self, sampler: EpisodeSampler, key: int) -> dict[str, Any]:
        meta = self.meta
        return few_shot(self.model, sampler, self.task, meta.eval_episodes, meta.inner_steps, meta.inner_lr, adapts(meta), self.device, key,
                        vectorize=meta.meta_batch if meta.vectorize else 0)

    def run(self, started: float) -> FitResult:
        spec, meta = self.spec, self.meta
        with open(self.run_dir / "metrics.jsonl", "a") as sink:
            for epoch in range(self.epoch, spec.training.epochs):
                self._each("start_epoch", epoch, spec.training.epochs, self.steps_per_epoch)
                for _ in range(self.steps_per_epoch):
                    self.model.train()  # after few_shot's episode_mode: dropout and stochastic depth on, as in training
                    episodes = [self.train_sampler.tensors(self.train_sampler.episode(epoch, self.step, b), self.device) for b in range(meta.meta_batch)]
                    self.optimizer.zero_grad(set_to_none=True)
                    loss, accuracy = self.algorithm.meta_gradient(self.model, self.task, episodes)
                    if not math.isfinite(loss):
                        raise TrainingError(f"the query loss is not finite at step {self.step + 1} (epoch {epoch + 1}); lower meta.inner_lr "
                                            f"or training.optimizer.lr")
                    if spec.training.grad_clip:
                        torch.nn.utils.clip_grad_norm_(self.model.parameters(), spec.training.grad_clip)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.step += 1
                    row = {"kind": "step", "epoch": epoch + 1, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
                           "loss": {self.task: loss}, "weight": {self.task: 1.0}, "query_accuracy": accuracy}
                    sink.write(json.dumps(row) + "\n")
                    self._each("step", row)
                record: dict[str, Any] = {"kind": "epoch", "epoch": epoch + 1, "step": self.step}
                if (epoch + 1) % spec.evaluation.every_epochs == 0 or epoch + 1 == spec.training.epochs:
                    scored = self._few_shot(self.val_sampler, epoch + 1)
                    record["val"] = {self.task: {"accuracy": scored["accuracy"], "ci95": scored["ci95"]}}
                self.history.append(record)
                self.epoch = epoch + 1
                sink.write(json.dumps(record) + "\n")
                sink.flush()
                self._each("end_epoch", record)
                if (epoch + 1) % spec.training.checkpoint.every_epochs == 0 or epoch + 1 == spec.training.epochs:
                    self._checkpoint()
        self._save_model()
        final = self._few_shot(self.test_sampler, 0)
        return FitResult(
            metrics={self.task: {"accuracy": final["accuracy"]}}, baselines={self.task: {"accuracy": 1.0 / meta.episodes.ways}},
            history=self.history, epochs_run=self.epoch, stopped_early=False, device=str(self.device),
            fingerprints={name: src.fingerprint() for name, src in self.train_set.sources.items()},
            splits=describe_splits(self.train_set, {"val": self.val_set, spec.evaluation.split: self.test_set}),
            num_parameters=sum(p.numel() for p in self.model.parameters()), wall_seconds=time.perf_counter() - started,
            split=spec.evaluation.split, task_types={t: s.type for t, s in spec.tasks.items()},
            few_shot={self.task: {**final, "algorithm": meta.algorithm, "held_out_classes": list(meta.held_out_classes)}})

    def _checkpoint(self) -> None:
        diverged = ckpt.unhealthy(self.model)
        if diverged:
            raise TrainingError(f"meta-training diverged by the end of epoch {self.epoch}: {diverged}; lower training.optimizer.lr")
        path = self.ckpt_dir / f"epoch-{self.epoch:04d}.pt"
        ckpt.save(path, {"spec_hash": self.spec_hash, "epoch": self.epoch, "step": self.step, "model": self.model.state_dict(),
                         "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(), "rng": ckpt.rng_state(),
                         "history": self.history})
        ckpt.prune(self.ckpt_dir, self.spec.training.checkpoint.keep)
        self._each("checkpointed", self.epoch, path)

    def _save_model(self) -> None:
        tasks = {self.task: {"type": self.spec.tasks[self.task].type, "num_classes": self.meta.episodes.ways, "names": None, "category_ids": None}}
        save_model(self.run_dir, self.model, self.spec_hash, self.epoch, f"the last epoch ({self.epoch}); a meta-learned initialisation",
                   tasks, self.spec.data.image_size)
