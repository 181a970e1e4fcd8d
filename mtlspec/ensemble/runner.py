"""Running an ensemble spec: train (or reuse) the members (members.py), fit what the strategy
fits (validation weights, boosting's sequence, stacking's meta-models), run the members together
on the evaluation split, combine per task (combiners.py), and report the members beside the ensemble."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch

from mtlspec.ensemble.box_fusion import fuse
from mtlspec.ensemble.members import boosted_members, given_members, load_member, member_predictions
from mtlspec.ensemble.report import write_reports
from mtlspec.errors import UsageError
from mtlspec.io import write_text_atomic
from mtlspec.report.manifest import manifest, spec_hash
from mtlspec.rundir import new_run_dir, now
from mtlspec.spec.resolved import resolved_yaml
from mtlspec.spec.root import Spec
from mtlspec.spec.validate import member_incompatibility
from mtlspec.spec.tasks import HIGHER_IS_BETTER


def _fit_weights(spec: Spec, members: list, data_root: Path) -> dict[str, list[float]]:
    """Weights fitted on the validation split for every task whose strategy is weighted_mean without weights."""
    from mtlspec.ensemble.fit_weights import WeightFitter

    ensemble = spec.ensemble
    todo = [t for t in spec.tasks if (s := ensemble.per_task.get(t, ensemble.strategy)).type == "weighted_mean" and s.weights is None]
    if not todo:
        return {}
    fitters = {t: WeightFitter(spec.tasks[t].type, len(members)) for t in todo}
    for batch, predictions in member_predictions(spec, members, "val", data_root, todo):
        for task in todo:
            fitters[task].update(predictions[task], batch["targets"][task], batch["has"][task])
    return {t: w for t, f in fitters.items() if (w := f.weights()) is not None}


def _out_of_bag(spec: Spec, members: list, data_root: Path) -> dict[str, dict[str, float]]:
    """Bagging's out-of-bag metrics: each training sample predicted by the members that did not draw it."""
    from mtlspec.data.build import IndexedSource, build_sources, training_view
    from mtlspec.ensemble.combine import oob_mean

    sources = build_sources(spec, "train", data_root)
    drawn = [{name: set(view.indices.tolist()) if isinstance(view, IndexedSource) else set(range(len(view)))
              for name, view in training_view(m_spec, sources).items()} for _, _, m_spec in members]
    task_types = members[0][1]
    metrics = {t: tt.metric() for t, tt in task_types.items()}
    for batch, predictions in member_predictions(spec, members, "train", data_root):
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
    return {t: _values(metric, spec.tasks[t].metrics) for t, metric in metrics.items()}


def _gains(ensemble: dict[str, float], members: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for metric, value in ensemble.items():
        values = [m[metric] for m in members if metric in m]
        sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
        best = max(values) if sign > 0 else min(values)
        out[metric] = {"over_best_member": sign * (value - best), "over_mean_member": sign * (value - sum(values) / len(values))}
    return out


def _combiners(spec: Spec, num_classes: dict[str, int], boosters: dict[str, Any],
               stackers: dict[str, Any], fitted: dict[str, list[float]]) -> dict[str, Any]:
    from mtlspec.ensemble import combiners

    out = {}
    for task, task_spec in spec.tasks.items():
        if task in boosters:
            out[task] = combiners.Samme(boosters[task]) if task_spec.type == "classification" else combiners.Residual(boosters[task])
        elif task in stackers:
            out[task] = combiners.Stacked(stackers[task])
        else:
            strategy = spec.ensemble.per_task.get(task, spec.ensemble.strategy)
            out[task] = combiners.Averaging(task_spec.type, strategy, num_classes[task], getattr(task_spec, "threshold", 0.5), fitted.get(task))
    return out


def _stackers(spec: Spec, members: list, run_dirs: list[Path], spec_file: str, out_root: Path, num_classes: dict[str, int], log: Callable[[str], None]) -> dict[str, Any]:
    """A meta-model per task whose strategy is stacking, fitted on out-of-fold predictions of the
    members (fold copies trained now or reused) or on their predictions for the validation split."""
    from mtlspec.ensemble.out_of_fold import out_of_fold
    from mtlspec.ensemble.stacking import Stacker

    ensemble = spec.ensemble
    chosen = {t: s for t in spec.tasks if (s := ensemble.per_task.get(t, ensemble.strategy)).type == "stacking"}
    out = {}
    on_val = [t for t, s in chosen.items() if s.fit_on == "validation"]
    if on_val:
        data_root = Path(spec_file).resolve().parent
        preds: dict[str, list[list[Any]]] = {t: [[] for _ in members] for t in on_val}
        targets: dict[str, list[Any]] = {t: [] for t in on_val}
        labelled: dict[str, list[Any]] = {t: [] for t in on_val}
        for batch, predictions in member_predictions(spec, members, "val", data_root, on_val):
            for t in on_val:
                for i, p in enumerate(predictions[t]):
                    preds[t][i].append(p.double())
                targets[t].append(batch["targets"][t])
                labelled[t].append(batch["has"][t])
        for t in on_val:
            out[t] = Stacker(spec.tasks[t].type, chosen[t].alpha).fit(
                [torch.cat(p).numpy() for p in preds[t]], torch.cat(targets[t]).numpy(), torch.cat(labelled[t]).numpy().astype(bool))
    for folds in sorted({s.folds for s in chosen.values() if s.fit_on == "out_of_fold"}):
        tasks = [t for t, s in chosen.items() if s.fit_on == "out_of_fold" and s.folds == folds]
        oof, targets_oof, labelled_oof = out_of_fold(spec, members, run_dirs, folds, tasks, spec_file, out_root, num_classes, log)
        for t in tasks:
            out[t] = Stacker(spec.tasks[t].type, chosen[t].alpha).fit(oof[t], targets_oof[t], labelled_oof[t])
    return out


def _values(metric: Any, wanted: Any) -> dict[str, float]:
    return {m: float(v) for m, v in metric.compute().items() if m in wanted}


def run_ensemble(result: Any, out_root: Path, log: Callable[[str], None] = print) -> tuple[Path, dict[str, Any]]:
    from mtlspec.data.build import bindings, build_sources

    spec: Spec = result.spec
    ensemble = spec.ensemble
    started = now()
    data_root = Path(result.file).resolve().parent
    num_classes = {b.name: b.num_classes for b in bindings(spec, build_sources(spec, "train", data_root))}
    boosters: dict[str, Any] = {}
    if ensemble.strategy.type == "boosting":
        loaded, boosters = boosted_members(spec, result.file, out_root, num_classes, log)
        chosen = [(d, c) for d, c, _ in loaded]
        members = [m for _, _, m in loaded]
    else:
        chosen = given_members(spec, result.file, out_root, log)
        members = [load_member(d, c, num_classes) for d, c in chosen]
    if len(chosen) < 2 and not boosters:
        raise UsageError(f"an ensemble needs at least two members; found {len(chosen)}")
    for _, _, member_spec in members:
        why = member_incompatibility(member_spec, spec, f"ensemble member {member_spec.name}")
        if why:
            raise UsageError(why)
    task_types = members[0][1]
    fitted = _fit_weights(spec, members, data_root)
    stackers = _stackers(spec, members, [d for d, _ in chosen], result.file, out_root, num_classes, log)
    combine = _combiners(spec, num_classes, boosters, stackers, fitted)
    metrics = {t: tt.metric() for t, tt in task_types.items()}
    member_metrics = [{t: m_tt[t].metric() for t in task_types} for _, m_tt, _ in members]
    staged = {t: [task_types[t].metric() for _ in members] for t in boosters}
    for batch, predictions in member_predictions(spec, members, spec.evaluation.split, data_root):
        for task, preds in predictions.items():
            target, has = batch["targets"][task], batch["has"][task]
            metrics[task].update(combine[task](preds), target, has)
            for own, pred in zip(member_metrics, preds):
                own[task].update(combine[task].alone(pred), target, has)
            for m, stage in enumerate(staged.get(task, [])):
                stage.update(combine[task](preds[: m + 1]), target, has)
    oob = _out_of_bag(spec, members, data_root) if ensemble.strategy.type == "bagging" else {}
    tasks = {}
    for task, metric in metrics.items():
        values = _values(metric, spec.tasks[task].metrics)
        member_values = [_values(own[task], values) for own in member_metrics]
        strategy = ensemble.per_task.get(task, ensemble.strategy).type
        tasks[task] = {"type": spec.tasks[task].type, "strategy": strategy,
                       "combined_by": _combined_by(spec, task, boosters, stackers),
                       "fitted_weights": fitted.get(task), "out_of_bag": oob.get(task),
                       "metrics": values, "members": member_values, "gain": _gains(values, member_values),
                       "higher_is_better": {m: HIGHER_IS_BETTER[m] for m in values}}
        if task in boosters:
            booster = boosters[task]
            tasks[task]["boosting"] = {"staged": [_values(s, values) for s in staged[task]], "stopped": booster.stopped,
                                       **({"member_weights": booster.alphas, "training_errors": booster.errors} if hasattr(booster, "alphas")
                                          else {"initial_value": booster.init, "learning_rate": booster.learning_rate})}
        if task in stackers:
            chosen_strategy = ensemble.per_task.get(task, ensemble.strategy)
            tasks[task]["stacking"] = {"fit_on": chosen_strategy.fit_on, "meta_model": type(stackers[task].models[0]).__name__,
                                       **({"folds": chosen_strategy.folds} if chosen_strategy.fit_on == "out_of_fold" else {})}
    run_dir = new_run_dir(out_root, spec.name, prefix="ensemble-")
    report = {"schema_version": 1, "name": spec.name, "kind": "ensemble", "split": spec.evaluation.split,
              "members": [str(c) for _, c in chosen], "tasks": tasks}
    write_text_atomic(run_dir / "spec.resolved.yaml", resolved_yaml(spec))
    member_manifest = json.loads((chosen[0][0] / "manifest.json").read_text()) if (chosen[0][0] / "manifest.json").is_file() else {}
    info = manifest(spec, result.file, "", spec_hash(spec), kind="ensemble", started=started, status="finished",
                    finished=now(), members=report["members"],
                    dataset_fingerprints=member_manifest.get("dataset_fingerprints", {}))  # the members share the ensemble's data
    write_text_atomic(run_dir / "manifest.json", json.dumps(info, indent=2) + "\n")
    write_reports(run_dir, report, spec.report.formats, spec.report.plots)
    return run_dir, report


def _combined_by(spec: Spec, task: str, boosters: dict, stackers: dict) -> str:
    """In words, for the report."""
    ensemble = spec.ensemble
    if task in boosters:
        return "AdaBoost SAMME" if spec.tasks[task].type == "classification" else "gradient boosting on residuals"
    if task in stackers:
        source = "out-of-fold predictions" if ensemble.per_task.get(task, ensemble.strategy).fit_on == "out_of_fold" else "validation predictions"
        return f"stacking: {type(stackers[task].models[0]).__name__.lower()} meta-model on {source}"
    strategy = ensemble.per_task.get(task, ensemble.strategy)
    if strategy.type in ("bagging", "boosting", "snapshot"):
        return "boxes fused (wbf)" if spec.tasks[task].type == "detection" else "mean"
    return strategy.type
