"""Running an ensemble spec: train (or reuse) the members, run them together on the evaluation
split, combine their predictions per task, and report the members beside the ensemble."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import yaml

from mtlspec.ensemble.box_fusion import fuse
from mtlspec.ensemble.combine import vote, vote_multilabel, weighted_mean
from mtlspec.errors import UsageError
from mtlspec.io import write_text_atomic
from mtlspec.spec.root import Spec
from mtlspec.spec.tasks import HIGHER_IS_BETTER


def member_specs(spec: Spec) -> list[Spec]:
    data = spec.model_dump(mode="json")
    data["ensemble"], data["matrix"] = None, None
    out = []
    for seed in spec.ensemble.members.seeds:
        one = dict(data, seed=seed, name=f"{spec.name}.seed{seed}")
        out.append(Spec.model_validate(one))
    return out


def _train_or_reuse(single: Spec, spec_file: str, out_root: Path, log: Callable[[str], None]) -> Path:
    from mtlspec.run import train_or_reuse

    return Path(train_or_reuse(single, spec_file, out_root, log, f"ensemble: member {single.name}")["run_dir"])


def _members(spec: Spec, spec_file: str, out_root: Path, log: Callable[[str], None]) -> list[tuple[Path, Path]]:
    """(run directory, checkpoint) of every member."""
    from mtlspec.train.checkpoint import latest

    members, strategy = spec.ensemble.members, spec.ensemble.strategy
    if strategy.type == "bagging":  # members on bootstrap samples of the training split
        data = spec.model_dump(mode="json")
        data["ensemble"], data["matrix"] = None, None
        specs = []
        for i in range(strategy.n_members):
            one = {**data, "name": f"{spec.name}.bag{i}", "seed": spec.seed + i}
            one["data"] = {**data["data"], "bootstrap": i}
            specs.append(Spec.model_validate(one))
        dirs = [_train_or_reuse(single, spec_file, out_root, log) for single in specs]
        return [(d, latest(d / "checkpoints")) for d in dirs]
    if strategy.type == "snapshot":  # one run with a cyclic schedule; a member per cycle
        data = spec.model_dump(mode="json")
        data["ensemble"], data["matrix"], data["name"] = None, None, f"{spec.name}.cyclic"
        run_dir = _train_or_reuse(Spec.model_validate(data), spec_file, out_root, log)
        return [(run_dir, p) for p in sorted((run_dir / "checkpoints").glob("snapshot-*.pt"))]
    if members.type == "runs":
        base = Path(spec_file).resolve().parent
        dirs = [base / p for p in members.paths]
    else:
        dirs = [_train_or_reuse(single, spec_file, out_root, log) for single in member_specs(spec)]
    out = []
    for d in dirs:
        checkpoint = latest(d / "checkpoints")
        if checkpoint is None:
            raise UsageError(f"ensemble member {d} has no checkpoint")
        out.append((d, checkpoint))
    return out


def _load_member(run_dir: Path, checkpoint: Path, num_classes: dict[str, int]) -> tuple[Any, dict[str, Any], Spec]:
    from mtlspec.model.builder import build_model

    member_spec = Spec.model_validate(yaml.safe_load((run_dir / "spec.resolved.yaml").read_text()))
    model, task_types = build_model(member_spec, num_classes)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    model.eval()
    return model, task_types, member_spec


def _prediction(kind: str, task_type: Any, output: Any, image_size: int) -> Any:
    if kind == "segmentation":
        return output.softmax(dim=1)
    return task_type.predict(output, image_size)


def _member_predictions(spec: Spec, members: list, split: str, data_root: Path, tasks: list[str] | None = None) -> Iterator[tuple[dict, dict[str, list[Any]]]]:
    """Over a split, batch by batch: (batch, {task: each member's prediction}); segmentation as probabilities."""
    from mtlspec.data.build import build_dataset
    from mtlspec.train.loop import make_loader

    dataset, binds = build_dataset(spec, split, train=False, base=data_root)
    for batch in make_loader(dataset, binds, spec.data.batch_size, 0):
        with torch.no_grad():
            outputs = [model(batch["image"]) for model, _, _ in members]
        yield batch, {task: [_prediction(spec.tasks[task].type, m_tt[task], out[task], spec.data.image_size)
                             for out, (_, m_tt, _) in zip(outputs, members)] for task in (tasks or list(spec.tasks))}


def _combine(kind: str, strategy: Any, predictions: list[Any], num_classes: int, threshold: float,
             fitted: list[float] | None = None) -> Any:
    weights = getattr(strategy, "weights", None) or fitted
    if kind == "detection":  # box_fusion's settings, or its defaults for snapshot ensembles
        iou, skip, method = getattr(strategy, "iou", 0.55), getattr(strategy, "skip_score", 0.0), getattr(strategy, "method", "wbf")
        return [fuse([p[i] for p in predictions], iou, skip, method, weights) for i in range(len(predictions[0]))]
    if strategy.type == "vote":
        if kind == "classification":
            labels = vote([p.argmax(dim=1) for p in predictions], num_classes, weights)
            return torch.nn.functional.one_hot(labels, num_classes).float()
        return vote_multilabel(predictions, threshold, weights)
    mean = weighted_mean(predictions, weights)  # mean, weighted_mean and snapshot average the members
    return mean.argmax(dim=1) if kind == "segmentation" else mean


def _fit_weights(spec: Spec, members: list, data_root: Path) -> dict[str, list[float]]:
    """Weights fitted on the validation split for every task whose strategy is weighted_mean without weights."""
    from mtlspec.ensemble.fit_weights import WeightFitter

    ensemble = spec.ensemble
    todo = [t for t in spec.tasks if (s := ensemble.per_task.get(t, ensemble.strategy)).type == "weighted_mean" and s.weights is None]
    if not todo:
        return {}
    fitters = {t: WeightFitter(spec.tasks[t].type, len(members)) for t in todo}
    for batch, predictions in _member_predictions(spec, members, "val", data_root, todo):
        for task in todo:
            fitters[task].update(predictions[task], batch["targets"][task], batch["has"][task])
    return {t: w for t, f in fitters.items() if (w := f.weights()) is not None}


def _out_of_bag(spec: Spec, members: list, data_root: Path) -> dict[str, dict[str, float]]:
    """Bagging's out-of-bag metrics: each training sample predicted by the members that did not draw it."""
    from mtlspec.data.build import bootstrap_indices, build_sources
    from mtlspec.ensemble.combine import oob_mean

    sizes = {name: len(src) for name, src in build_sources(spec, "train", data_root).items()}
    drawn = [{name: set(bootstrap_indices(n, m_spec.data.bootstrap).tolist()) for name, n in sizes.items()} for _, _, m_spec in members]
    task_types = members[0][1]
    metrics = {t: tt.metric() for t, tt in task_types.items()}
    for batch, predictions in _member_predictions(spec, members, "train", data_root):
        out_of_bag = torch.tensor([[meta["index"] not in d[meta["dataset"]] for d in drawn] for meta in batch["meta"]])
        known = out_of_bag.any(dim=1)
        for task, preds in predictions.items():
            kind = spec.tasks[task].type
            has = batch["has"][task] & known
            if kind == "detection":
                combined = [fuse([p[i] for p, o in zip(preds, out_of_bag[i]) if o] or [p[i] for p in preds]) for i in range(len(preds[0]))]
            else:
                combined = oob_mean(preds, out_of_bag)
                combined = combined.argmax(dim=1) if kind == "segmentation" else combined
            metrics[task].update(combined, batch["targets"][task], has)
    return {t: {m: float(v) for m, v in metric.compute().items() if m in spec.tasks[t].metrics} for t, metric in metrics.items()}


def _gains(ensemble: dict[str, float], members: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for metric, value in ensemble.items():
        values = [m[metric] for m in members if metric in m]
        sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
        best = max(values) if sign > 0 else min(values)
        out[metric] = {"over_best_member": sign * (value - best), "over_mean_member": sign * (value - sum(values) / len(values))}
    return out


def run_ensemble(result: Any, out_root: Path, log: Callable[[str], None] = print) -> tuple[Path, dict[str, Any]]:
    from mtlspec.data.build import bindings, build_sources

    spec: Spec = result.spec
    ensemble = spec.ensemble
    chosen = _members(spec, result.file, out_root, log)
    if len(chosen) < 2:
        raise UsageError(f"an ensemble needs at least two members; found {len(chosen)}")
    data_root = Path(result.file).resolve().parent
    num_classes = {b.name: b.num_classes for b in bindings(spec, build_sources(spec, "train", data_root))}
    members = [_load_member(d, c, num_classes) for d, c in chosen]
    for _, _, member_spec in members:
        if member_spec.data.datasets != spec.data.datasets or set(member_spec.tasks) != set(spec.tasks):
            raise UsageError("every ensemble member must be trained on this spec's datasets and tasks")
    task_types = members[0][1]
    fitted = _fit_weights(spec, members, data_root)
    metrics = {t: tt.metric() for t, tt in task_types.items()}
    member_metrics = [{t: m_tt[t].metric() for t in task_types} for _, m_tt, _ in members]
    for batch, predictions in _member_predictions(spec, members, spec.evaluation.split, data_root):
        for task, preds in predictions.items():
            kind = spec.tasks[task].type
            strategy = ensemble.per_task.get(task, ensemble.strategy)
            combined = _combine(kind, strategy, preds, num_classes[task], getattr(spec.tasks[task], "threshold", 0.5), fitted.get(task))
            metrics[task].update(combined, batch["targets"][task], batch["has"][task])
            for own, pred in zip(member_metrics, preds):
                alone = pred.argmax(dim=1) if kind == "segmentation" else pred
                own[task].update(alone, batch["targets"][task], batch["has"][task])
    oob = _out_of_bag(spec, members, data_root) if ensemble.strategy.type == "bagging" else {}
    tasks = {}
    for task, metric in metrics.items():
        values = {m: float(v) for m, v in metric.compute().items() if m in spec.tasks[task].metrics}
        member_values = [{m: float(v) for m, v in own[task].compute().items() if m in values} for own in member_metrics]
        tasks[task] = {"type": spec.tasks[task].type, "strategy": ensemble.per_task.get(task, ensemble.strategy).type,
                       "fitted_weights": fitted.get(task), "out_of_bag": oob.get(task),
                       "metrics": values, "members": member_values, "gain": _gains(values, member_values),
                       "higher_is_better": {m: HIGHER_IS_BETTER[m] for m in values}}
    run_dir = out_root / spec.name / ("ensemble-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    report = {"schema_version": 1, "name": spec.name, "kind": "ensemble", "split": spec.evaluation.split,
              "members": [str(c) for _, c in chosen], "tasks": tasks}
    write_text_atomic(run_dir / "ensemble.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(run_dir / "ensemble.md", _markdown(report))
    return run_dir, report


def _markdown(report: dict[str, Any]) -> str:
    lines = [f"# Ensemble: {report['name']}", "", f"{len(report['members'])} members, evaluated on the `{report['split']}` split.", "",
             "| task | strategy | metric | " + " | ".join(f"member {i + 1}" for i in range(len(report["members"]))) + " | ensemble | gain over best | gain over mean |",
             "|---|---|---|" + "---|" * (len(report["members"]) + 3)]
    for task, t in report["tasks"].items():
        for metric, value in t["metrics"].items():
            members = " | ".join(f"{m.get(metric, float('nan')):.4f}" for m in t["members"])
            g = t["gain"][metric]
            lines.append(f"| {task} | {t['strategy']} | {metric} | {members} | {value:.4f} | {g['over_best_member']:+.4f} | {g['over_mean_member']:+.4f} |")
    lines += ["", "Gains are signed so that positive is better, whichever direction the metric improves in."]
    return "\n".join(lines) + "\n"
