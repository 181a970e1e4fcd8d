"""An ensemble's members: which runs they are (trained now or reused by spec hash), loading them,
and running them together over a split.

Members come from `ensemble.members` (seeds of this spec, other spec files, run directories) or
from the strategy: bagging (bootstrap replicas), snapshot (one cyclic run) and boosting (a
sequence; see `boosted_members`). Stacking's out-of-fold copies are made in `out_of_fold`.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import yaml

from mtlspec.errors import UsageError
from mtlspec.io import write_bytes_atomic
from mtlspec.spec.ensemble import BOOSTED_TASK_TYPES
from mtlspec.spec.root import Spec

Log = Callable[[str], None]


def derived(spec: Spec, name: str, **changes: Any) -> Spec:
    """A plain (no ensemble, no matrix) copy of the spec under another name; `data_*` keys change
    data fields. The data seed is pinned: whatever seed a member trains with, it sees the same
    datasets and splits as the ensemble (so it never trains on the split the ensemble evaluates)."""
    data = spec.model_dump(mode="json")
    data.update(ensemble=None, matrix=None, name=name)
    data["data"] = {**data["data"], "seed": spec.data_seed()}
    for key, value in changes.items():
        if key.startswith("data_"):
            data["data"] = {**data["data"], key[5:]: value}
        else:
            data[key] = value
    return Spec.model_validate(data)


def member_specs(spec: Spec) -> list[Spec]:
    return [derived(spec, f"{spec.name}.seed{seed}", seed=seed) for seed in spec.ensemble.members.seeds]


def train_or_reuse(single: Spec, spec_file: str, out_root: Path, log: Log) -> Path:
    from mtlspec.run import train_or_reuse as run_or_reuse

    return Path(run_or_reuse(single, spec_file, out_root, log, f"ensemble: member {single.name}")["run_dir"])


def with_checkpoint(run_dir: Path) -> tuple[Path, Path]:
    from mtlspec.train.checkpoint import latest

    checkpoint = latest(run_dir / "checkpoints")
    if checkpoint is None:
        raise UsageError(f"ensemble member {run_dir} has no checkpoint")
    return run_dir, checkpoint


def given_members(spec: Spec, spec_file: str, out_root: Path, log: Log) -> list[tuple[Path, Path]]:
    """(run directory, checkpoint) of every member: those ensemble.members names, bagging's, or snapshot's."""
    from mtlspec.spec import validate_file

    members, strategy = spec.ensemble.members, spec.ensemble.strategy
    base = Path(spec_file).resolve().parent
    if strategy.type == "bagging":  # members on bootstrap samples of the training split
        singles = [derived(spec, f"{spec.name}.bag{i}", seed=spec.seed + i, data_bootstrap=i) for i in range(strategy.n_members)]
        return [with_checkpoint(train_or_reuse(s, spec_file, out_root, log)) for s in singles]
    if strategy.type == "snapshot":  # one run with a cyclic schedule; a member per cycle
        run_dir = train_or_reuse(derived(spec, f"{spec.name}.cyclic"), spec_file, out_root, log)
        return [(run_dir, p) for p in sorted((run_dir / "checkpoints").glob("snapshot-*.pt"))]
    if members.type == "runs":
        return [with_checkpoint(base / p) for p in members.paths]
    if members.type == "specs":
        out = []
        for path in members.paths:
            (result,) = validate_file(base / path)
            if result.spec is None:
                raise UsageError(f"ensemble member spec {base / path} is not valid: run `mtlspec validate` on it")
            single = derived(result.spec, result.spec.name)
            out.append(with_checkpoint(train_or_reuse(single, str(base / path), out_root, log)))
        return out
    return [with_checkpoint(train_or_reuse(s, spec_file, out_root, log)) for s in member_specs(spec)]


def load_member(run_dir: Path, checkpoint: Path, num_classes: dict[str, int]) -> tuple[Any, dict[str, Any], Spec]:
    from mtlspec.model.builder import build_model
    from mtlspec.train.checkpoint import read

    member_spec = Spec.model_validate(yaml.safe_load((run_dir / "spec.resolved.yaml").read_text()))
    model, task_types = build_model(member_spec, num_classes)
    state = read(checkpoint)
    model.load_state_dict(state["model"])
    model.eval()
    return model, task_types, member_spec


def _prediction(kind: str, task_type: Any, output: Any, image_size: int) -> Any:
    if kind == "segmentation":
        return output.softmax(dim=1)
    return task_type.predict(output, image_size)


def member_predictions(spec: Spec, members: list, split: str, data_root: Path, tasks: list[str] | None = None) -> Iterator[tuple[dict, dict[str, list[Any]]]]:
    """Over a split in dataset order, batch by batch: (batch, {task: each member's prediction});
    segmentation as probabilities."""
    from mtlspec.data.build import build_dataset
    from mtlspec.train.loop import make_loader

    dataset, binds = build_dataset(spec, split, train=False, base=data_root)
    for batch in make_loader(dataset, binds, spec.data.batch_size, 0):
        with torch.no_grad():
            outputs = [model(batch["image"]) for model, _, _ in members]
        yield batch, {task: [_prediction(spec.tasks[task].type, m_tt[task], out[task], spec.data.image_size)
                             for out, (_, m_tt, _) in zip(outputs, members)] for task in (tasks if tasks is not None else list(spec.tasks))}


def source_sizes(spec: Spec, data_root: Path) -> dict[str, int]:
    from mtlspec.data.build import build_sources

    return {name: len(src) for name, src in build_sources(spec, "train", data_root).items()}


def training_labels(spec: Spec, tasks: list[str], data_root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For classification and regression tasks: (targets, labelled) over their dataset's training
    samples, read from the labels alone (no image is decoded)."""
    from mtlspec.data.build import build_sources
    from mtlspec.data.dataset import labels_of

    sources = build_sources(spec, "train", data_root)
    out = {}
    for task in tasks:
        source = sources[spec.tasks[task].dataset]
        values = [labels_of(source, i).get(spec.tasks[task].label) for i in range(len(source))]
        out[task] = (np.array([0.0 if v is None else float(v) for v in values]), np.array([v is not None for v in values]))
    return out


def boosted_tasks(spec: Spec) -> list[str]:
    return [t for t, ts in spec.tasks.items() if ts.type in BOOSTED_TASK_TYPES and t not in spec.ensemble.per_task]


def _overrides_file(spec: Spec, out_root: Path, m: int, arrays: dict[str, np.ndarray]) -> Path:
    """Write a member's per-task weights and targets, named by their content (so the member spec's
    hash changes exactly when they do, and a finished member is reused)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    path = out_root / spec.name / "boosting" / f"member{m}-{hashlib.sha256(data).hexdigest()[:12]}.npz"
    if not path.is_file():
        write_bytes_atomic(path, data)
    return path.resolve()


def boosted_members(spec: Spec, spec_file: str, out_root: Path, num_classes: dict[str, int], log: Log) -> tuple[list, dict[str, Any]]:
    """Train (or reuse) boosting's members in sequence: each one's sample weights (classification)
    and residual targets (regression) come from the members before it, predicted on the training
    split. Returns the loaded members and the booster of each boosted task."""
    from mtlspec.ensemble.boosting import ResidualBoost, Samme

    strategy, data_root = spec.ensemble.strategy, Path(spec_file).resolve().parent
    tasks = boosted_tasks(spec)
    labels = training_labels(spec, tasks, data_root)
    boosters: dict[str, Any] = {}
    for t in tasks:
        target, labelled = labels[t]
        boosters[t] = (Samme(labelled, num_classes[t], strategy.learning_rate) if spec.tasks[t].type == "classification"
                       else ResidualBoost(target, labelled, strategy.learning_rate))
    members = []
    for m in range(strategy.n_members):
        arrays = {}
        for t, booster in boosters.items():
            key = f"{t}/{spec.tasks[t].dataset}"
            if isinstance(booster, Samme):
                arrays["weight/" + key] = booster.sample_weights().astype(np.float32)
            else:
                arrays["target/" + key] = booster.residuals().astype(np.float32)
        overrides = _overrides_file(spec, out_root, m, arrays)
        single = derived(spec, f"{spec.name}.boost{m}", seed=spec.seed + m, data_sample_overrides=str(overrides))
        run_dir, checkpoint = with_checkpoint(train_or_reuse(single, spec_file, out_root, log))
        member = load_member(run_dir, checkpoint, num_classes)
        members.append((run_dir, checkpoint, member))
        predicted = {t: np.zeros(len(labels[t][0])) for t in tasks}
        for batch, predictions in member_predictions(spec, [member], "train", data_root, tasks):
            for t in tasks:
                values = predictions[t][0]
                values = values.argmax(dim=1) if spec.tasks[t].type == "classification" else values
                for i, meta in enumerate(batch["meta"]):
                    if meta["dataset"] == spec.tasks[t].dataset:
                        predicted[t][meta["index"]] = float(values[i])
        for t, booster in boosters.items():
            if isinstance(booster, Samme):
                booster.add(predicted[t].astype(np.int64), labels[t][0].astype(np.int64), last=m == strategy.n_members - 1)
            else:
                booster.add(predicted[t])
        stopped = [t for t, b in boosters.items() if b.stopped]
        if len(stopped) == len(boosters):
            log(f"ensemble: boosting stopped after {m + 1} members ({'; '.join(f'{t}: {boosters[t].stopped}' for t in stopped)})")
            break
    return members, boosters
