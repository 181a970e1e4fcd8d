"""An ensemble's members: which runs they are (trained now or reused by spec hash, through the
`train_or_reuse` the orchestrator hands in), loading them, and running them together over a split.

Members come from `ensemble.members` (seeds of this spec, other spec files, run directories) or
from the strategy: bagging (bootstrap replicas), snapshot (one cyclic run) and boosting (a
sequence; see `boosted_members`). Stacking's out-of-fold copies are made in `out_of_fold`.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import yaml

from mtlspec.errors import UsageError
from mtlspec.io import write_bytes_atomic
from mtlspec.language.ensemble import BOOSTED_TASK_TYPES
from mtlspec.language.root import Spec
from mtlspec.tasks.base import Form

Log = Callable[[str], None]
# The orchestrator's: (spec, spec file, runs root, log, "who: what") -> {"run_dir", "report"} of a finished run
TrainOrReuse = Callable[[Spec, str, Path, Log, str], dict[str, Any]]


@dataclass
class Member:
    """One trained member: where it is, its network (in eval mode), its task types and its spec."""

    run_dir: Path
    checkpoint: Path
    model: Any
    task_types: dict[str, Any]
    spec: Spec


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


def trained(train_or_reuse: TrainOrReuse, single: Spec, spec_file: str, out_root: Path, log: Log) -> Path:
    """The run directory of a member, trained now or reused."""
    return Path(train_or_reuse(single, spec_file, out_root, log, f"ensemble: member {single.name}")["run_dir"])


def with_checkpoint(run_dir: Path) -> tuple[Path, Path]:
    from mtlspec.train.checkpoint import latest

    checkpoint = latest(run_dir / "checkpoints")
    if checkpoint is None:
        raise UsageError(f"ensemble member {run_dir} has no checkpoint")
    return run_dir, checkpoint


def trained_members(spec: Spec, spec_file: str) -> list[tuple[Spec, str]]:
    """The member runs an ensemble trains itself, none depending on another (seeds, bagging's
    bootstrap members, member specs, snapshot's one cyclic run), each with the spec file its paths
    are relative to: what `given_members` trains one after another and `run --jobs` in parallel."""
    from mtlspec.language import validate_file

    members, strategy = spec.ensemble.members, spec.ensemble.strategy
    base = Path(spec_file).resolve().parent
    if strategy.type == "bagging":  # members on bootstrap samples of the training split
        return [(derived(spec, f"{spec.name}.bag{i}", seed=spec.seed + i, data_bootstrap=i), spec_file) for i in range(strategy.n_members)]
    if strategy.type == "snapshot":  # one run with a cyclic schedule; a member per cycle
        return [(derived(spec, f"{spec.name}.cyclic"), spec_file)]
    if members.type == "runs":
        return []
    if members.type == "specs":
        out = []
        for path in members.paths:
            (result,) = validate_file(base / path)
            if result.spec is None:
                raise UsageError(f"ensemble member spec {base / path} is not valid: run `mtlspec validate` on it")
            out.append((derived(result.spec, result.spec.name), str(base / path)))
        return out
    return [(s, spec_file) for s in member_specs(spec)]


def given_members(spec: Spec, spec_file: str, out_root: Path, log: Log, train_or_reuse: TrainOrReuse) -> list[tuple[Path, Path]]:
    """(run directory, checkpoint) of every member: those ensemble.members names, bagging's, or snapshot's."""
    if spec.ensemble.strategy.type == "snapshot":
        ((single, file),) = trained_members(spec, spec_file)
        run_dir = trained(train_or_reuse, single, file, out_root, log)
        return [(run_dir, p) for p in sorted((run_dir / "checkpoints").glob("snapshot-*.pt"))]
    if spec.ensemble.strategy.type != "bagging" and spec.ensemble.members.type == "runs":
        base = Path(spec_file).resolve().parent
        return [with_checkpoint(base / p) for p in spec.ensemble.members.paths]
    return [with_checkpoint(trained(train_or_reuse, single, file, out_root, log)) for single, file in trained_members(spec, spec_file)]


def load_member(run_dir: Path, checkpoint: Path, sources: dict[str, Any]) -> Member:
    """A member's network as its checkpoint left it, built from its resolved spec (with the class
    counts of the ensemble's training `sources`, which every member shares)."""
    from mtlspec.build import build
    from mtlspec.train.checkpoint import read

    member_spec = Spec.model_validate(yaml.safe_load((run_dir / "spec.resolved.yaml").read_text()))
    built = build(member_spec, run_dir, sources)
    built.model.load_state_dict(read(checkpoint)["model"])
    built.model.eval()
    return Member(run_dir, checkpoint, built.model, built.task_types, member_spec)


def member_predictions(spec: Spec, members: list[Member], split: str, data_root: Path, tasks: list[str] | None = None) -> Iterator[tuple[dict, dict[str, list[Any]]]]:
    """Over a split in dataset order, batch by batch: (batch, {task: each member's contribution}),
    as each task type gives it to ensembles (class maps as probabilities)."""
    from mtlspec.data.build import build_dataset
    from mtlspec.train.setup import make_loader

    task_types = members[0].task_types
    dataset = build_dataset(spec, split, False, data_root, task_types)
    for batch in make_loader(dataset, spec.data.batch_size, 0):
        with torch.no_grad():
            outputs = [member.model(batch["image"], batch.get("text")) for member in members]
        yield batch, {task: [member.task_types[task].member_prediction(out[task], spec.data.image_size) for out, member in zip(outputs, members)]
                      for task in (tasks if tasks is not None else list(spec.tasks))}


def training_labels(spec: Spec, tasks: list[str], sources: dict[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For boosted tasks (a class or a value per image): (targets, labelled) over their dataset's
    training samples, read from the labels alone (no image is decoded)."""
    from mtlspec.data.dataset import labels_of

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


def boosted_members(spec: Spec, spec_file: str, out_root: Path, task_types: dict[str, Any], sources: dict[str, Any], log: Log,
                    train_or_reuse: TrainOrReuse) -> tuple[list[Member], dict[str, Any]]:
    """Train (or reuse) boosting's members in sequence: each one's sample weights (a class per
    image: SAMME) and residual targets (a value per image: gradient boosting) come from the members
    before it, predicted on the training split. Returns the members and each boosted task's booster."""
    from mtlspec.ensemble.boosting import ResidualBoost, Samme

    strategy, data_root = spec.ensemble.strategy, Path(spec_file).resolve().parent
    tasks = boosted_tasks(spec)
    labels = training_labels(spec, tasks, sources)
    boosters: dict[str, Any] = {}
    for t in tasks:
        target, labelled = labels[t]
        boosters[t] = (Samme(labelled, task_types[t].num_classes, strategy.learning_rate) if task_types[t].form is Form.CLASS_PROBABILITIES
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
        member = load_member(*with_checkpoint(trained(train_or_reuse, single, spec_file, out_root, log)), sources)
        members.append(member)
        predicted = {t: np.zeros(len(labels[t][0])) for t in tasks}
        for batch, predictions in member_predictions(spec, [member], "train", data_root, tasks):
            for t in tasks:
                values = predictions[t][0]
                values = values.argmax(dim=1) if task_types[t].form is Form.CLASS_PROBABILITIES else values
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
