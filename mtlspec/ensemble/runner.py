"""Running an ensemble spec: train (or reuse) the members (members.py, through the orchestrator's
`train_or_reuse`), fit what the strategy fits (validation weights, boosting's sequence, stacking's
meta-models), run the members together on the evaluation split, combine per task (combiners.py),
and report the members beside the ensemble."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import torch

from mtlspec.ensemble.box_fusion import fuse
from mtlspec.ensemble.members import Member, TrainOrReuse, boosted_members, given_members, load_member, member_predictions
from mtlspec.ensemble.report import write_ensemble_reports
from mtlspec.errors import UsageError
from mtlspec.io import write_text_atomic
from mtlspec.language.root import Spec
from mtlspec.language.tasks import directions
from mtlspec.language.validate import member_incompatibility
from mtlspec.language.resolved import resolved_yaml
from mtlspec.report.manifest import manifest, spec_hash
from mtlspec.rundir import new_run_dir, now
from mtlspec.tasks.base import Form

Log = Callable[[str], None]


def _fit_weights(spec: Spec, members: list[Member], data_root: Path) -> dict[str, list[float]]:
    """Weights fitted on the validation split for every task whose strategy is weighted_mean without weights."""
    from mtlspec.ensemble.fit_weights import WeightFitter

    todo = [t for t in spec.tasks if (s := spec.ensemble.strategy_for(t)).type == "weighted_mean" and s.weights is None]
    if not todo:
        return {}
    fitters = {t: WeightFitter(members[0].task_types[t].form, len(members)) for t in todo}
    for batch, predictions in member_predictions(spec, members, "val", data_root, todo):
        for task in todo:
            fitters[task].update(predictions[task], batch["targets"][task], batch["has"][task])
    return {t: w for t, f in fitters.items() if (w := f.weights()) is not None}


def _out_of_bag(spec: Spec, members: list[Member], data_root: Path) -> dict[str, dict[str, float]]:
    """Bagging's out-of-bag metrics: each training sample predicted by the members that did not draw it."""
    from mtlspec.data.build import IndexedSource, build_sources, training_view
    from mtlspec.ensemble.combine import oob_mean

    sources = build_sources(spec, "train", data_root)
    drawn = [{name: set(view.indices.tolist()) if isinstance(view, IndexedSource) else set(range(len(view)))
              for name, view in training_view(member.spec, sources).items()} for member in members]
    task_types = members[0].task_types
    metrics = {t: tt.metric() for t, tt in task_types.items()}
    for batch, predictions in member_predictions(spec, members, "train", data_root):
        out_of_bag = torch.tensor([[meta["index"] not in d[meta["dataset"]] for d in drawn] for meta in batch["meta"]])
        known = out_of_bag.any(dim=1)
        for task, preds in predictions.items():
            tt = task_types[task]
            if tt.form is Form.BOXES:
                combined = [fuse([p[i] for p, o in zip(preds, out_of_bag[i]) if o] or [p[i] for p in preds]) for i in range(len(preds[0]))]
            else:
                combined = tt.scored(oob_mean(preds, out_of_bag))
            metrics[task].update(combined, batch["targets"][task], batch["has"][task] & known)
    return {t: _values(metric, spec.tasks[t].metrics) for t, metric in metrics.items()}


def _gains(ensemble: dict[str, float], members: list[dict[str, float]], higher: dict[str, bool]) -> dict[str, dict[str, float]]:
    out = {}
    for metric, value in ensemble.items():
        values = [m[metric] for m in members if metric in m]
        sign = 1.0 if higher[metric] else -1.0
        best = max(values) if sign > 0 else min(values)
        out[metric] = {"over_best_member": sign * (value - best), "over_mean_member": sign * (value - sum(values) / len(values))}
    return out


def _combiners(spec: Spec, task_types: dict[str, Any], boosters: dict[str, Any], stackers: dict[str, Any],
               fitted: dict[str, list[float]]) -> dict[str, Any]:
    from mtlspec.ensemble import combiners

    out = {}
    for task, tt in task_types.items():
        if task in boosters:
            out[task] = combiners.Samme(boosters[task]) if tt.form is Form.CLASS_PROBABILITIES else combiners.Residual(boosters[task])
        elif task in stackers:
            out[task] = combiners.Stacked(stackers[task])
        else:
            out[task] = combiners.Averaging(tt, spec.ensemble.strategy_for(task), fitted.get(task))
    return out


def _stackers(spec: Spec, members: list[Member], spec_file: str, out_root: Path, sources: dict[str, Any], log: Log,
              train_or_reuse: TrainOrReuse) -> dict[str, Any]:
    """A meta-model per task whose strategy is stacking, fitted on out-of-fold predictions of the
    members (fold copies trained now or reused) or on their predictions for the validation split."""
    from mtlspec.ensemble.out_of_fold import out_of_fold
    from mtlspec.ensemble.stacking import Stacker

    chosen = {t: s for t in spec.tasks if (s := spec.ensemble.strategy_for(t)).type == "stacking"}
    forms = {t: members[0].task_types[t].form for t in chosen}
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
            out[t] = Stacker(forms[t], chosen[t].alpha).fit(
                [torch.cat(p).numpy() for p in preds[t]], torch.cat(targets[t]).numpy(), torch.cat(labelled[t]).numpy().astype(bool))
    for folds in sorted({s.folds for s in chosen.values() if s.fit_on == "out_of_fold"}):
        tasks = [t for t, s in chosen.items() if s.fit_on == "out_of_fold" and s.folds == folds]
        oof, targets_oof, labelled_oof = out_of_fold(spec, members, folds, tasks, spec_file, out_root, sources, log, train_or_reuse)
        for t in tasks:
            out[t] = Stacker(forms[t], chosen[t].alpha).fit(oof[t], targets_oof[t], labelled_oof[t])
    return out


def _values(metric: Any, wanted: Any) -> dict[str, float]:
    return {m: float(v) for m, v in metric.compute().items() if m in wanted}


def _members(spec: Spec, spec_file: str, out_root: Path, task_types: dict[str, Any], sources: dict[str, Any], log: Log,
             train_or_reuse: TrainOrReuse) -> tuple[list[Member], dict[str, Any]]:
    """The members, trained or reused and loaded, each checked to fit this spec; and boosting's boosters."""
    boosters: dict[str, Any] = {}
    if spec.ensemble.strategy.type == "boosting":
        members, boosters = boosted_members(spec, spec_file, out_root, task_types, sources, log, train_or_reuse)
    else:
        members = [load_member(d, c, sources) for d, c in given_members(spec, spec_file, out_root, log, train_or_reuse)]
    if len(members) < 2 and not boosters:
        raise UsageError(f"an ensemble needs at least two members; found {len(members)}")
    for member in members:
        why = member_incompatibility(member.spec, spec, f"ensemble member {member.spec.name}")
        if why:
            raise UsageError(why)
    return members, boosters


def _evaluate(spec: Spec, members: list[Member], combine: dict[str, Any], boosters: dict[str, Any], data_root: Path) -> tuple[dict, list, dict]:
    """The ensemble's metrics, each member's alone, and boosting's after 1..M members, on the evaluation split."""
    task_types = members[0].task_types
    metrics = {t: tt.metric() for t, tt in task_types.items()}
    member_metrics = [{t: member.task_types[t].metric() for t in task_types} for member in members]
    staged = {t: [task_types[t].metric() for _ in members] for t in boosters}
    for batch, predictions in member_predictions(spec, members, spec.evaluation.split, data_root):
        for task, preds in predictions.items():
            target, has = batch["targets"][task], batch["has"][task]
            metrics[task].update(combine[task](preds), target, has)
            for own, pred in zip(member_metrics, preds):
                own[task].update(combine[task].alone(pred), target, has)
            for m, stage in enumerate(staged.get(task, [])):
                stage.update(combine[task](preds[: m + 1]), target, has)
    return metrics, member_metrics, staged


def run_ensemble(request: Any, out_root: Path, log: Log, train_or_reuse: TrainOrReuse) -> tuple[Path, dict[str, Any]]:
    """Train (or reuse) and combine the members of `request.spec`'s ensemble; write its directory."""
    from mtlspec.build import build_task_types
    from mtlspec.data.build import build_sources

    spec: Spec = request.spec
    started = now()
    data_root = Path(request.file).resolve().parent
    sources = build_sources(spec, "train", data_root)
    task_types = build_task_types(spec, sources, data_root)
    members, boosters = _members(spec, request.file, out_root, task_types, sources, log, train_or_reuse)
    fitted = _fit_weights(spec, members, data_root)
    stackers = _stackers(spec, members, request.file, out_root, sources, log, train_or_reuse)
    combine = _combiners(spec, task_types, boosters, stackers, fitted)
    metrics, member_metrics, staged = _evaluate(spec, members, combine, boosters, data_root)
    oob = _out_of_bag(spec, members, data_root) if spec.ensemble.strategy.type == "bagging" else {}
    tasks = {}
    for task, metric in metrics.items():
        values = _values(metric, spec.tasks[task].metrics)
        member_values = [_values(own[task], values) for own in member_metrics]
        tasks[task] = {"type": spec.tasks[task].type, "strategy": spec.ensemble.strategy_for(task).type,
                       "combined_by": _combined_by(spec, task, task_types[task], boosters, stackers),
                       "fitted_weights": fitted.get(task), "out_of_bag": oob.get(task),
                       "metrics": values, "members": member_values, "gain": _gains(values, member_values, directions(spec)[task]),
                       "higher_is_better": {m: directions(spec)[task][m] for m in values}}
        if task in boosters:
            booster = boosters[task]
            tasks[task]["boosting"] = {"staged": [_values(s, values) for s in staged[task]], "stopped": booster.stopped,
                                       **({"member_weights": booster.alphas, "training_errors": booster.errors} if hasattr(booster, "alphas")
                                          else {"initial_value": booster.init, "learning_rate": booster.learning_rate})}
        if task in stackers:
            chosen = spec.ensemble.strategy_for(task)
            tasks[task]["stacking"] = {"fit_on": chosen.fit_on, "meta_model": type(stackers[task].models[0]).__name__,
                                       **({"folds": chosen.folds} if chosen.fit_on == "out_of_fold" else {})}
    run_dir = new_run_dir(out_root, spec.name, prefix="ensemble-")
    report = {"schema_version": 1, "name": spec.name, "kind": "ensemble", "split": spec.evaluation.split,
              "members": [str(m.checkpoint) for m in members], "tasks": tasks}
    write_text_atomic(run_dir / "spec.resolved.yaml", resolved_yaml(spec))
    first = members[0].run_dir / "manifest.json"
    member_manifest = json.loads(first.read_text()) if first.is_file() else {}
    info = manifest(spec, request.file, "", spec_hash(spec), kind="ensemble", started=started, status="finished",
                    finished=now(), members=report["members"],
                    dataset_fingerprints=member_manifest.get("dataset_fingerprints", {}))  # the members share the ensemble's data
    write_text_atomic(run_dir / "manifest.json", json.dumps(info, indent=2) + "\n")
    write_ensemble_reports(run_dir, report, spec.report.formats, spec.report.plots)
    return run_dir, report


def _combined_by(spec: Spec, task: str, task_type: Any, boosters: dict, stackers: dict) -> str:
    """In words, for the report."""
    if task in boosters:
        return "AdaBoost SAMME" if task_type.form is Form.CLASS_PROBABILITIES else "gradient boosting on residuals"
    strategy = spec.ensemble.strategy_for(task)
    if task in stackers:
        source = "out-of-fold predictions" if strategy.fit_on == "out_of_fold" else "validation predictions"
        return f"stacking: {type(stackers[task].models[0]).__name__.lower()} meta-model on {source}"
    if strategy.type in ("bagging", "boosting", "snapshot"):
        return "boxes fused (wbf)" if task_type.form is Form.BOXES else "mean"
    return strategy.type
