"""Rules on `data`: what multidigits can generate, a batch no larger than the training split, the
held-out fold, and sample weights that name a task or dataset able to give them."""

from __future__ import annotations

from mtlspec.language.base import default
from mtlspec.language.checks.common import Finding, entries, get_in, tag
from mtlspec.language.data import MultiDigits, most_digits
from mtlspec.language.diagnose import did_you_mean


def check_data(data: dict) -> list[Finding]:
    out: list[Finding] = []
    for ds_name, ds in entries(get_in(data, "data", "datasets")).items():
        if tag(ds) == "multidigits" and isinstance(ds.get("objects"), dict):
            out.extend(_digits(("data", "datasets", ds_name), ds))
        chosen = ds.get("digits") if tag(ds) == "multidigits" else None
        if isinstance(chosen, list) and len(set(map(str, chosen))) < len(chosen):
            out.append(Finding(("data", "datasets", ds_name, "digits"), "incompatible", f"digits lists a digit more than once: {chosen}"))
    out.extend(_batch_size(data))
    holdout = get_in(data, "data", "holdout")
    if isinstance(holdout, dict) and isinstance(holdout.get("fold"), int) and isinstance(holdout.get("folds"), int) and holdout["fold"] >= holdout["folds"]:
        out.append(Finding(("data", "holdout", "fold"), "out-of-range", f"fold {holdout['fold']} of {holdout['folds']}: folds are counted from 0 to {holdout['folds'] - 1}"))
    out.extend(_sample_weights(data))
    held = get_in(data, "data", "held_out_classes")
    datasets = entries(get_in(data, "data", "datasets"))
    for i, entry in enumerate(held if isinstance(held, list) else []):
        name = entry.get("dataset") if isinstance(entry, dict) else None
        if isinstance(name, str) and datasets and name not in datasets:
            out.append(Finding(("data", "held_out_classes", i, "dataset"), "unknown-dataset",
                               f"no dataset '{name}' in data.datasets; defined: {', '.join(datasets)}"))
    return out


def _digits(at: tuple, ds: dict) -> list[Finding]:
    objects = ds["objects"]
    low, high = objects.get("min", default(MultiDigits, "objects", "min")), objects.get("max", default(MultiDigits, "objects", "max"))
    out = []
    if isinstance(low, int) and isinstance(high, int) and low > high:
        out.append(Finding(at + ("objects", "min"), "out-of-range", f"min ({low}) is larger than max ({high})"))
    canvas = ds.get("canvas", default(MultiDigits, "canvas"))
    if isinstance(high, int) and isinstance(canvas, int) and high > most_digits(canvas):
        where = at + ("objects", "max") if "max" in objects else at + ("objects",)
        out.append(Finding(where, "out-of-range", f"at most {most_digits(canvas)} digits fit reliably on a {canvas} px canvas "
                                                  f"(each must stay half visible); lower objects.max{' or enlarge the canvas' if canvas < 24 else ''}"))
    return out


def _batch_size(data: dict) -> list[Finding]:
    """A batch larger than the training split would train no step at all (the last, partial
    batch of an epoch is dropped); known here when every dataset is generated (multidigits)."""
    batch = get_in(data, "data", "batch_size")
    datasets = entries(get_in(data, "data", "datasets"))
    used = {t.get("dataset") for t in entries(data.get("tasks")).values() if isinstance(t.get("dataset"), str)}
    if not isinstance(batch, int) or not used or not used <= set(datasets) or any(tag(datasets[d]) != "multidigits" for d in used):
        return []
    sizes = [get_in(datasets[d], "splits", "train") if isinstance(datasets[d].get("splits"), dict) and "train" in datasets[d]["splits"]
             else default(MultiDigits, "splits", "train") for d in used]
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


CLASS_FREQUENCY_TASKS = ("classification", "multilabel")  # the task types whose labels have class frequencies


def _sample_weights(data: dict) -> list[Finding]:
    out: list[Finding] = []
    tasks = entries(data.get("tasks"))
    weights = get_in(data, "data", "sample_weights")
    kind = tag(weights)
    if kind in ("inverse_frequency", "effective_number"):
        task = weights.get("task")
        if isinstance(task, str) and tasks and task not in tasks:
            out.append(Finding(("data", "sample_weights", "task"), "unknown-task", f"no task '{task}'{did_you_mean(task, list(tasks))}"))
        elif isinstance(task, str) and task in tasks and tag(tasks[task]) not in CLASS_FREQUENCY_TASKS:
            out.append(Finding(("data", "sample_weights", "task"), "incompatible",
                               f"class-frequency weights need a classification or multilabel task; '{task}' is {tasks[task].get('type')}"))
    if kind == "column":
        ds = weights.get("dataset")
        datasets = entries(get_in(data, "data", "datasets"))
        if isinstance(ds, str) and ds not in datasets:
            out.append(Finding(("data", "sample_weights", "dataset"), "unknown-dataset", f"no dataset '{ds}'{did_you_mean(ds, list(datasets))}"))
        elif isinstance(ds, str) and tag(datasets[ds]) != "attribute_table":
            out.append(Finding(("data", "sample_weights", "dataset"), "incompatible", f"weights from a column need an attribute_table dataset; '{ds}' is {datasets[ds].get('type')}"))
    return out
