"""Δm: the average relative change of every task metric against a baseline (higher is better).

LibMTL's Δp: 100 * (1/T) sum_t (1/M_t) sum_m (-1)^{w_tm} (M_tm - B_tm) / B_tm, with w_tm = 1 when
lower is better; averaged within each task first, then across tasks. Metrics whose baseline
value is 0 are left out (the relative change is undefined), and named.
"""

from __future__ import annotations

from typing import Any

from mtlspec.language.tasks import HIGHER_IS_BETTER

DEFINITION = ("Δm = 100 · (1/T) Σ_t (1/M_t) Σ_m (−1)^{w_tm} (M_tm − B_tm) / B_tm, w_tm = 1 when lower is better; "
              "per task first, then across tasks (LibMTL's Δp); higher is better")


def delta_m(metrics: dict[str, dict[str, float]], baseline: dict[str, dict[str, float]],
            higher: dict[str, dict[str, bool]] | None = None) -> dict[str, Any]:
    """{"value": float | None, "per_task": {task: float}, "skipped": ["task.metric", ...]}; `higher`:
    per task, whether a higher value of each metric is better (language.tasks.directions of the spec;
    the metric names' usual directions when not given)."""
    per_task: dict[str, float] = {}
    skipped: list[str] = []
    for task, values in metrics.items():
        changes = []
        for metric, value in values.items():
            base = baseline.get(task, {}).get(metric)
            if base is None or base == 0:
                skipped.append(f"{task}.{metric}")
                continue
            sign = 1.0 if (higher[task][metric] if higher and task in higher else HIGHER_IS_BETTER[metric]) else -1.0
            changes.append(sign * (value - base) / abs(base))
        if changes:
            per_task[task] = 100.0 * sum(changes) / len(changes)
    value = sum(per_task.values()) / len(per_task) if per_task else None
    return {"value": value, "per_task": per_task, "skipped": skipped, "definition": DEFINITION}
