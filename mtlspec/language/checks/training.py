"""Rules on `training`: a device that can run the precision, an early-stopping monitor that names a
metric its task reports, and a learning rate in the range that trains."""

from __future__ import annotations

from mtlspec.language.checks.common import Finding, entries, get_in, tag
from mtlspec.language.diagnose import did_you_mean
from mtlspec.language.tasks import default_metrics, task_sections

# Learning rates above these are almost certainly a typo (1e3 for 1e-3): a warning, not an error.
USUAL_LR = {"sgd": 10.0, "adam": 1.0, "adamw": 1.0}


def check_training(data: dict) -> list[Finding]:
    out: list[Finding] = []
    training = data.get("training") if isinstance(data.get("training"), dict) else {}
    if training.get("precision") == "fp16" and training.get("device") == "cpu":
        out.append(Finding(("training", "precision"), "incompatible", "fp16 autocast needs CUDA; on the CPU use bf16 or fp32"))
    monitor = get_in(training, "early_stopping", "monitor")
    if isinstance(monitor, str):
        out.extend(check_monitor(data, monitor, ("training", "early_stopping", "monitor")))
    optimizer = training.get("optimizer")
    lr = optimizer.get("lr") if isinstance(optimizer, dict) else None
    usual = USUAL_LR.get(tag(optimizer) or "")
    if isinstance(lr, (int, float)) and usual is not None and lr > usual:
        out.append(Finding(("training", "optimizer", "lr"), "unusual-value",
                           f"lr {lr:g} is far above what {optimizer['type']} trains with (at most about {usual:g}); "
                           f"training will likely diverge (a run stops when the loss or a weight stops being finite)", severity="warning"))
    return out


def check_monitor(data: dict, monitor: str, path: tuple) -> list[Finding]:
    """`val.loss`, `val.delta_m` (with a baseline) or `val.<task>.<metric>` of a metric the task reports."""
    tasks = entries(data.get("tasks"))
    parts = monitor.split(".")
    if parts == ["val", "loss"]:
        return []
    if parts == ["val", "delta_m"]:
        baseline = tag(get_in(data, "evaluation", "baseline")) or "none"
        if baseline == "none":
            return [Finding(path, "incompatible", "val.delta_m needs evaluation.baseline (single_task or run); monitor val.loss or val.<task>.<metric> instead")]
        return []
    if len(parts) != 3 or parts[0] != "val":
        return [Finding(path, "invalid-value", f"'{monitor}' is not a monitor; use val.loss, val.delta_m or val.<task>.<metric>")]
    task, metric = parts[1], parts[2]
    if task not in tasks:
        return [Finding(path, "unknown-task", f"no task '{task}'{did_you_mean(task, list(tasks))}")] if tasks else []
    task_type = tag(tasks[task])
    metrics = tasks[task].get("metrics", default_metrics(task_type) if task_type in task_sections() else None)
    if isinstance(metrics, (list, tuple)) and metric not in metrics:
        return [Finding(path, "invalid-value", f"task '{task}' reports no metric '{metric}'; it reports: {', '.join(map(str, metrics))}")]
    return []
