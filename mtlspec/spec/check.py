"""Rules across sections that the schema alone cannot state, checked without torch or mmdet.

Each rule reads the raw data defensively, so it runs even when other parts of the spec are
malformed: a person sees every problem at once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from mtlspec.capabilities import IMPLEMENTED
from mtlspec.spec.diagnose import did_you_mean
from mtlspec.spec.ensemble import BOOSTED_TASK_TYPES, STRATEGY_TASK_TYPES, TRAINS_MEMBERS
from mtlspec.spec.model import FPN, NO_SHARED_PARAMETERS, SINGLE_REPRESENTATION
from mtlspec.spec.root import Spec
from mtlspec.spec.schema_walk import resolve, tags
from mtlspec.spec.data import MultiDigits, Splits, most_digits
from mtlspec.spec.dense_head_args import DEFAULT_NORM_GROUPS, HEAD_ARGUMENTS
from mtlspec.spec.tasks import COMPUTED_HEAD_FIELDS, default_metrics, metric_choices, task_sections
from mtlspec.spec.weighting import GRADIENT_METHODS

METRICS = {kind: metric_choices(kind) for kind in task_sections()}  # per task type: every metric it can report
LOSS_BASED_DEFAULT = "ew, uw, dwa, rlw, gls or famo"
FPN_CHANNELS = FPN.model_fields["out_channels"].default
# Learning rates above these are almost certainly a typo (1e3 for 1e-3): a warning, not an error.
USUAL_LR = {"sgd": 10.0, "adam": 1.0, "adamw": 1.0}
MULTIDIGITS_CANVAS = MultiDigits.model_fields["canvas"].default
MULTIDIGITS_TRAIN = Splits.model_fields["train"].default


@dataclass(frozen=True)
class Finding:
    path: tuple
    code: str
    message: str
    at: str = "value"  # "key" or "value": which to point at
    severity: str = "error"


def get_in(data: Any, *path: Any) -> Any:
    """The value at a path through nested mappings, or None where the path breaks off."""
    for seg in path:
        if not isinstance(data, dict):
            return None
        data = data.get(seg)
    return data


def _tag(node: Any) -> str | None:
    """The `type` tag of a mapping, when it is a string."""
    tag = node.get("type") if isinstance(node, dict) else None
    return tag if isinstance(tag, str) else None


def entries(value: Any) -> dict:
    """The entries of a mapping whose values are mappings (datasets, tasks ...); {} for anything else."""
    return {k: v for k, v in value.items() if isinstance(v, dict)} if isinstance(value, dict) else {}


def labels_provided(dataset: dict) -> dict[str, set[str] | None] | None:
    """Task type -> label names a dataset provides (None: any name); None when unknown."""
    kind = _tag(dataset)
    if kind == "multidigits":
        return {
            "classification": {"largest_digit", "smallest_digit", "num_digits"},
            "multilabel": {"present"},
            "regression": {"count", "mean_digit", "digit_sum"},
            "detection": set(),
            "segmentation": set(),
            "depth": set(),
        }
    if kind == "coco":
        attrs = dataset.get("attributes") or {}
        out: dict[str, set[str] | None] = {"detection": set(), "segmentation": set(), "multilabel": {"categories"}}
        for name, task_type in (attrs.items() if isinstance(attrs, dict) else []):
            out.setdefault(str(task_type), set()).add(name)  # type: ignore[union-attr]
        return out
    if kind == "attribute_table":
        columns = dataset.get("columns")
        known = set(columns) if isinstance(columns, list) else None
        return {"classification": known, "regression": known, "multilabel": {"attributes"}}
    if kind == "image_folder":
        return {"classification": {"class"}}
    if kind == "dense_folder":
        return {"segmentation": set(), "depth": set()}
    return None


def multidigits_classes(dataset: dict, task_type: str, label: Any) -> int | None:
    objects = dataset.get("objects") if isinstance(dataset.get("objects"), dict) else {}
    most = objects.get("max", 3) if isinstance(objects.get("max", 3), int) else None
    return {
        ("classification", "largest_digit"): 10,
        ("classification", "smallest_digit"): 10,
        ("classification", "num_digits"): None if most is None else most + 1,
        ("multilabel", "present"): 10,
        ("segmentation", None): 11,
    }.get((task_type, label))


def check_tasks(data: dict) -> list[Finding]:
    out: list[Finding] = []
    datasets = entries(get_in(data, "data", "datasets"))
    for name, task in entries(data.get("tasks")).items():
        if name in ("loss", "delta_m"):
            out.append(Finding(("tasks", name), "invalid-name", f"'{name}' is reserved (val.{name} is a monitor); choose another task name", "key"))
        ds_name, task_type = task.get("dataset"), _tag(task)
        if isinstance(ds_name, str) and isinstance(get_in(data, "data", "datasets"), dict) and ds_name not in datasets:
            known = list(datasets)
            out.append(Finding(("tasks", name, "dataset"), "unknown-dataset",
                               f"no dataset '{ds_name}' in data.datasets{did_you_mean(ds_name, known)}; defined: {', '.join(known) or 'none'}"))
        dataset = datasets.get(ds_name) if isinstance(ds_name, str) else None
        if dataset is None or not isinstance(task_type, str) or task_type not in METRICS:
            continue
        provided = labels_provided(dataset)
        if provided is None:
            continue
        if task_type not in provided:
            out.append(Finding(("tasks", name, "type"), "label-not-provided",
                               f"dataset '{ds_name}' ({dataset.get('type')}) has no labels for a {task_type} task; it provides: {', '.join(provided)}"))
            continue
        label, names = task.get("label"), provided[task_type]
        if isinstance(label, str) and names is not None and label not in names:
            out.append(Finding(("tasks", name, "label"), "label-not-provided",
                               f"dataset '{ds_name}' has no {task_type} label '{label}'{did_you_mean(label, sorted(names))}; it provides: {', '.join(sorted(names))}"))
        if _tag(dataset) == "multidigits":
            size_key = "num_labels" if task_type == "multilabel" else "num_classes"
            given = task.get(size_key)
            key = label if isinstance(label, str) and task_type != "segmentation" else None
            expected = multidigits_classes(dataset, task_type, key)
            if isinstance(given, int) and expected is not None and given != expected:
                out.append(Finding(("tasks", name, size_key), "incompatible",
                                   f"dataset '{ds_name}' gives {expected} classes for this label, not {given}; leave {size_key} out to take the dataset's"))
        head = task.get("head")
        if task_type == "detection" and isinstance(head, dict):
            out.extend(_check_head(data, name, head))
    return out


def _check_head(data: dict, task: str, head: dict) -> list[Finding]:
    """A dense head's fields against the head's constructor (MMDetection's, tabulated), and the
    GroupNorm its convolutions use against their channel count."""
    out = []
    where = ("tasks", task, "head")
    for field in COMPUTED_HEAD_FIELDS:
        if field in head:
            out.append(Finding(where + (field,), "computed-field", f"'{field}' is filled by the compiler from the model and the dataset; remove it", "key"))
    kind = _tag(head)
    if kind not in HEAD_ARGUMENTS:
        return out
    accepted = [a for a in HEAD_ARGUMENTS[kind] if a not in COMPUTED_HEAD_FIELDS]
    for field in head:
        if field != "type" and field not in COMPUTED_HEAD_FIELDS and field not in accepted:
            out.append(Finding(where + (field,), "unknown-key", f"{kind} takes no argument '{field}'{did_you_mean(field, accepted)}", "key"))
    norm = head.get("norm_cfg", {"type": "GN", "num_groups": DEFAULT_NORM_GROUPS.get(kind)} if DEFAULT_NORM_GROUPS.get(kind) else None)
    groups = norm.get("num_groups") if isinstance(norm, dict) and norm.get("type") == "GN" else None
    if "feat_channels" in head:
        channels, named = head["feat_channels"], where + ("feat_channels",)
    else:  # the adapter gives the head as many channels as the neck has
        neck = get_in(data, "model", "neck")
        neck = neck if isinstance(neck, dict) else {"type": "FPN"}
        channels = neck.get("out_channels", FPN_CHANNELS) if _tag(neck) == "FPN" else None
        named = ("model", "neck", "out_channels") if "out_channels" in neck else where + ("type",)
    if isinstance(groups, int) and groups > 0 and isinstance(channels, int) and channels % groups:
        out.append(Finding(named, "incompatible", f"{kind} normalises its {channels} feature channels with GroupNorm of {groups} groups; "
                                                  f"channels must be a multiple of {groups} (or set head.norm_cfg.num_groups)"))
    return out


def check_data(data: dict) -> list[Finding]:
    out: list[Finding] = []
    tasks = entries(data.get("tasks"))
    for ds_name, ds in entries(get_in(data, "data", "datasets")).items():
        objects = ds.get("objects")
        if _tag(ds) == "multidigits" and isinstance(objects, dict):
            low, high = objects.get("min", 1), objects.get("max", 3)
            if isinstance(low, int) and isinstance(high, int) and low > high:
                out.append(Finding(("data", "datasets", ds_name, "objects", "min"), "out-of-range", f"min ({low}) is larger than max ({high})"))
            canvas = ds.get("canvas", MULTIDIGITS_CANVAS)
            if isinstance(high, int) and isinstance(canvas, int) and high > most_digits(canvas):
                where = ("data", "datasets", ds_name, "objects", "max") if "max" in objects else ("data", "datasets", ds_name, "objects")
                out.append(Finding(where, "out-of-range", f"at most {most_digits(canvas)} digits fit reliably on a {canvas} px canvas "
                                                          f"(each must stay half visible); lower objects.max{' or enlarge the canvas' if canvas < 24 else ''}"))
    out.extend(_check_batch_size(data))
    holdout = get_in(data, "data", "holdout")
    if isinstance(holdout, dict) and isinstance(holdout.get("fold"), int) and isinstance(holdout.get("folds"), int) and holdout["fold"] >= holdout["folds"]:
        out.append(Finding(("data", "holdout", "fold"), "out-of-range", f"fold {holdout['fold']} of {holdout['folds']}: folds are counted from 0 to {holdout['folds'] - 1}"))
    weights = get_in(data, "data", "sample_weights")
    if isinstance(weights, dict) and _tag(weights) in ("inverse_frequency", "effective_number"):
        task = weights.get("task")
        if isinstance(task, str) and tasks and task not in tasks:
            out.append(Finding(("data", "sample_weights", "task"), "unknown-task", f"no task '{task}'{did_you_mean(task, list(tasks))}"))
        elif isinstance(task, str) and task in tasks and _tag(tasks[task]) not in ("classification", "multilabel"):
            out.append(Finding(("data", "sample_weights", "task"), "incompatible",
                               f"class-frequency weights need a classification or multilabel task; '{task}' is {tasks[task].get('type')}"))
    if isinstance(weights, dict) and _tag(weights) == "column":
        ds = weights.get("dataset")
        datasets = entries(get_in(data, "data", "datasets"))
        if isinstance(ds, str) and ds not in datasets:
            out.append(Finding(("data", "sample_weights", "dataset"), "unknown-dataset", f"no dataset '{ds}'{did_you_mean(ds, list(datasets))}"))
        elif isinstance(ds, str) and _tag(datasets[ds]) != "attribute_table":
            out.append(Finding(("data", "sample_weights", "dataset"), "incompatible", f"weights from a column need an attribute_table dataset; '{ds}' is {datasets[ds].get('type')}"))
    return out


def _check_batch_size(data: dict) -> list[Finding]:
    """A batch larger than the training split would train no step at all (the last, partial
    batch of an epoch is dropped); known here when every dataset is generated (multidigits)."""
    batch = get_in(data, "data", "batch_size")
    datasets = entries(get_in(data, "data", "datasets"))
    used = {t.get("dataset") for t in entries(data.get("tasks")).values() if isinstance(t.get("dataset"), str)}
    if not isinstance(batch, int) or not used or not used <= set(datasets) or any(_tag(datasets[d]) != "multidigits" for d in used):
        return []
    sizes = [get_in(datasets[d], "splits", "train") if isinstance(datasets[d].get("splits"), dict) and "train" in datasets[d]["splits"]
             else MULTIDIGITS_TRAIN for d in used]
    if not all(isinstance(n, int) for n in sizes):
        return []
    total = sum(sizes)
    holdout = get_in(data, "data", "holdout")
    folds, fold = (holdout.get("folds"), holdout.get("fold")) if isinstance(holdout, dict) else (None, None)
    if isinstance(folds, int) and isinstance(fold, int) and 0 <= fold < folds:
        total -= sum(n // folds + (fold < n % folds) for n in sizes)  # data.build.fold_ids: the i-th of a fixed shuffle is in fold i % folds
    if batch > total:
        return [Finding(("data", "batch_size"), "out-of-range", f"batch_size {batch} is larger than the training split ({total} samples): "
                                                                 f"no training step would run")]
    return []


def _num_stages(backbone: Any) -> int | None:
    if not isinstance(backbone, dict):
        return 3  # the default SmallCNN
    if _tag(backbone) == "ResNet":
        n = backbone.get("num_stages", 4)
        return n if isinstance(n, int) else None
    if _tag(backbone) == "SmallCNN":
        channels = backbone.get("channels", [16, 32, 64])
        return len(channels) if isinstance(channels, list) else None
    return None


def check_weighting(data: dict) -> list[Finding]:
    out: list[Finding] = []
    weighting, sharing = data.get("weighting"), get_in(data, "model", "sharing")
    method = _tag(weighting) if isinstance(weighting, dict) else "ew"
    topology = _tag(sharing) if isinstance(sharing, dict) else "hps"
    tasks = entries(data.get("tasks"))
    if method in GRADIENT_METHODS and topology in NO_SHARED_PARAMETERS:
        out.append(Finding(("weighting", "type"), "incompatible",
                           f"{method} combines per-task gradients of shared parameters, but sharing '{topology}' shares none; "
                           f"use a loss-based method ({LOSS_BASED_DEFAULT}) or a topology with shared parameters"))
    if method in GRADIENT_METHODS and isinstance(data.get("tasks"), dict) and len(data["tasks"]) < 2:
        out.append(Finding(("weighting", "type"), "incompatible", f"{method} balances the gradients of several tasks; this spec has one"))
    if isinstance(weighting, dict) and weighting.get("space") == "representation" and topology not in SINGLE_REPRESENTATION and topology not in NO_SHARED_PARAMETERS:
        out.append(Finding(("weighting", "space"), "incompatible",
                           f"representation-space gradients need one shared representation that every task reads; "
                           f"sharing '{topology}' has none (it has them in: {', '.join(SINGLE_REPRESENTATION)}); use space: params"))
    if method == "static" and isinstance(weighting.get("weights"), dict):
        for task in weighting["weights"]:
            if tasks and task not in tasks:
                out.append(Finding(("weighting", "weights", task), "unknown-task", f"no task '{task}'{did_you_mean(task, list(tasks))}", "key"))
    if topology == "ple" and isinstance(sharing, dict) and isinstance(sharing.get("num_levels", 2), int):
        stages = _num_stages(get_in(data, "model", "backbone"))
        levels = sharing.get("num_levels", 2)
        if stages is not None and levels > stages:
            where = ("model", "sharing", "num_levels") if "num_levels" in sharing else ("model", "sharing", "type")
            out.append(Finding(where, "out-of-range", f"each PLE level takes at least one backbone stage; the backbone has {stages}, so num_levels must be at most {stages}"))
    if topology == "hps" and isinstance(sharing, dict) and isinstance(sharing.get("branch_at"), int):
        stages = _num_stages(get_in(data, "model", "backbone"))
        if stages is not None and sharing["branch_at"] > stages:
            out.append(Finding(("model", "sharing", "branch_at"), "out-of-range", f"the backbone has {stages} stages; branch_at must be at most {stages}"))
    return out


def check_training(data: dict) -> list[Finding]:
    out: list[Finding] = []
    training = data.get("training") if isinstance(data.get("training"), dict) else {}
    if training.get("precision") == "fp16" and training.get("device") == "cpu":
        out.append(Finding(("training", "precision"), "incompatible", "fp16 autocast needs CUDA; on the CPU use bf16 or fp32"))
    monitor = get_in(training, "early_stopping", "monitor")
    if isinstance(monitor, str):
        out.extend(_check_monitor(data, monitor, ("training", "early_stopping", "monitor")))
    optimizer = training.get("optimizer")
    lr = optimizer.get("lr") if isinstance(optimizer, dict) else None
    usual = USUAL_LR.get(_tag(optimizer) or "")
    if isinstance(lr, (int, float)) and usual is not None and lr > usual:
        out.append(Finding(("training", "optimizer", "lr"), "unusual-value",
                           f"lr {lr:g} is far above what {optimizer['type']} trains with (at most about {usual:g}); "
                           f"training will likely diverge (a run stops when the loss or a weight stops being finite)", severity="warning"))
    return out


def _check_monitor(data: dict, monitor: str, path: tuple) -> list[Finding]:
    tasks = entries(data.get("tasks"))
    parts = monitor.split(".")
    if parts == ["val", "loss"]:
        return []
    if parts == ["val", "delta_m"]:
        baseline = get_in(data, "evaluation", "baseline", "type") or "none"
        if baseline == "none":
            return [Finding(path, "incompatible", "val.delta_m needs evaluation.baseline (single_task or run); monitor val.loss or val.<task>.<metric> instead")]
        return []
    if len(parts) != 3 or parts[0] != "val":
        return [Finding(path, "invalid-value", f"'{monitor}' is not a monitor; use val.loss, val.delta_m or val.<task>.<metric>")]
    task, metric = parts[1], parts[2]
    if task not in tasks:
        return [Finding(path, "unknown-task", f"no task '{task}'{did_you_mean(task, list(tasks))}")] if tasks else []
    task_type = _tag(tasks[task])
    metrics = tasks[task].get("metrics", default_metrics(task_type) if task_type in METRICS else None)
    if isinstance(metrics, (list, tuple)) and metric not in metrics:
        return [Finding(path, "invalid-value", f"task '{task}' reports no metric '{metric}'; it reports: {', '.join(map(str, metrics))}")]
    return []


def check_ensemble(data: dict) -> list[Finding]:
    ensemble = data.get("ensemble")
    if not isinstance(ensemble, dict):
        return []
    out: list[Finding] = []
    tasks = entries(data.get("tasks"))
    strategy = ensemble.get("strategy") if isinstance(ensemble.get("strategy"), dict) else {"type": "mean"}
    kind = _tag(strategy)
    members = ensemble.get("members")
    per_task = entries(ensemble.get("per_task"))
    if kind in TRAINS_MEMBERS and isinstance(members, dict):
        out.append(Finding(("ensemble", "members"), "incompatible", f"{kind} trains its own members; remove ensemble.members", "key"))
    if kind not in TRAINS_MEMBERS and members is None:
        out.append(Finding(("ensemble", "members"), "missing-key", f"missing required key 'members': {kind} combines members you name (seeds, specs or runs)", "key"))
    if kind == "snapshot" and get_in(data, "training", "scheduler", "type") != "cyclic":
        out.append(Finding(("ensemble", "strategy", "type"), "incompatible", "snapshot ensembles take one member per learning-rate cycle: set training.scheduler.type to cyclic"))
    n_members = None
    if isinstance(members, dict):
        listed = members.get("seeds") if _tag(members) == "seeds" else members.get("paths")
        n_members = len(listed) if isinstance(listed, list) else None
    for where, strat in [(("ensemble", "strategy"), strategy)] + [(("ensemble", "per_task", t), s) for t, s in per_task.items()]:
        weights = strat.get("weights")
        if isinstance(weights, list) and n_members is not None and len(weights) != n_members:
            out.append(Finding(where + ("weights",), "incompatible", f"{len(weights)} weights for {n_members} members"))
    for task, strat in per_task.items():
        if tasks and task not in tasks:
            out.append(Finding(("ensemble", "per_task", task), "unknown-task", f"no task '{task}'{did_you_mean(task, list(tasks))}", "key"))
            continue
        if _tag(strat) in TRAINS_MEMBERS:
            out.append(Finding(("ensemble", "per_task", task, "type"), "incompatible", f"{strat.get('type')} trains the members of the whole model; it can only be ensemble.strategy"))
        elif _tag(strat) == "stacking" and kind in TRAINS_MEMBERS:
            out.append(Finding(("ensemble", "per_task", task, "type"), "incompatible", f"stacking trains its members once per fold; it cannot combine the members {kind} trains"))
    if kind == "boosting" and tasks and not [t for t, s in tasks.items() if _tag(s) in BOOSTED_TASK_TYPES and t not in per_task]:
        out.append(Finding(("ensemble", "strategy", "type"), "incompatible", "boosting needs a classification or regression task to boost (and not one that ensemble.per_task combines otherwise)"))
    for task, spec in tasks.items():
        chosen, where = (per_task[task], ("ensemble", "per_task", task, "type")) if task in per_task else (strategy, ("ensemble", "strategy", "type"))
        allowed = STRATEGY_TASK_TYPES.get(str(_tag(chosen)))
        if allowed is not None and _tag(spec) in METRICS and _tag(spec) not in allowed:
            hint = " (set ensemble.per_task." + task + " to box_fusion)" if _tag(spec) == "detection" else ""
            out.append(Finding(where, "incompatible", f"{chosen.get('type')} does not apply to task '{task}' ({spec.get('type')}){hint}"))
    return out


def check_matrix(matrix: Any) -> list[Finding]:
    out: list[Finding] = []
    if not isinstance(matrix, dict):
        return out
    for dotted in matrix:
        segments = str(dotted).split(".")
        if segments[0] in ("matrix", "extends", "version"):
            out.append(Finding(("matrix", dotted), "unknown-path", f"'{segments[0]}' cannot vary in a matrix", "key"))
            continue
        exists, index, allowed = resolve(Spec, segments)
        if not exists:
            bad = segments[index]
            out.append(Finding(("matrix", dotted), "unknown-path",
                               f"'{dotted}' names no field: '{bad}' is not a key there{did_you_mean(bad, allowed)}", "key"))
    return out


@functools.cache
def language_types() -> dict[str, frozenset[str]]:
    """Every `type` the language has, per part that capabilities.IMPLEMENTED lists."""
    from mtlspec.spec import data as data_section, ensemble, evaluation, model, tasks, weighting

    return {
        "dataset": tags(data_section.Dataset), "task": tags(tasks.Task), "backbone": tags(model.Backbone),
        "neck": tags(model.Neck), "sharing": tags(model.Sharing), "weighting": tags(weighting.Weighting),
        "ensemble": tags(ensemble.Strategy), "ensemble members": tags(ensemble.Members),
        "detection head": tags(tasks.DenseHead.model_fields["type"].annotation),
        "sample weights": tags(data_section.SampleWeights), "baseline": tags(evaluation.Baseline),
    }


def check_capabilities(data: dict) -> list[Finding]:
    """Warn about each named part the language has but this version cannot run yet."""
    named: list[tuple[str, tuple, Any]] = []
    for name, ds in entries(get_in(data, "data", "datasets")).items():
        named.append(("dataset", ("data", "datasets", name, "type"), _tag(ds)))
    for name, task in entries(data.get("tasks")).items():
        named.append(("task", ("tasks", name, "type"), _tag(task)))
        if _tag(task) == "detection" and isinstance(task.get("head"), dict):
            named.append(("detection head", ("tasks", name, "head", "type"), _tag(task["head"])))
    defaults = {"backbone": "SmallCNN", "neck": "FPN", "sharing": "hps"}
    for part, default in defaults.items():
        value = get_in(data, "model", part)
        named.append((part, ("model", part, "type"), _tag(value) if isinstance(value, dict) else default))
    weighting = data.get("weighting")
    named.append(("weighting", ("weighting", "type"), _tag(weighting) if isinstance(weighting, dict) else "ew"))
    weights = get_in(data, "data", "sample_weights")
    if isinstance(weights, dict):
        named.append(("sample weights", ("data", "sample_weights", "type"), _tag(weights)))
    baseline = get_in(data, "evaluation", "baseline")
    if isinstance(baseline, dict):
        named.append(("baseline", ("evaluation", "baseline", "type"), _tag(baseline)))
    ensemble = data.get("ensemble")
    if isinstance(ensemble, dict):
        strategy = ensemble.get("strategy")
        named.append(("ensemble", ("ensemble", "strategy", "type"), _tag(strategy) if isinstance(strategy, dict) else "mean"))
        for task, strat in entries(ensemble.get("per_task")).items():
            named.append(("ensemble", ("ensemble", "per_task", task, "type"), _tag(strat)))
        if isinstance(ensemble.get("members"), dict):
            named.append(("ensemble members", ("ensemble", "members", "type"), _tag(ensemble["members"])))

    out = []
    for part, path, value in named:
        # an unknown type is the schema's error (unknown-type); only the language's own types can be missing here
        if isinstance(value, str) and value in language_types()[part] and value not in IMPLEMENTED.get(part, frozenset()):
            out.append(Finding(path, "not-implemented", f"{part} '{value}' is part of the language but this version of mtlspec cannot run it yet; `mtlspec run` will refuse it", severity="warning"))
    return out


def check(data: Any, matrix: Any = None) -> list[Finding]:
    """Every cross-section rule, on raw spec data."""
    if not isinstance(data, dict):
        return []
    return [
        *check_tasks(data),
        *check_data(data),
        *check_weighting(data),
        *check_training(data),
        *check_ensemble(data),
        *check_matrix(matrix),
    ]
