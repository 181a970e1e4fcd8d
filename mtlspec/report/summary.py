"""The lines `mtlspec run` prints when a run or an ensemble finishes: where it is, and each task's
metrics beside what they are compared with (a trivial predictor; the best member)."""

from __future__ import annotations

from typing import Any


def _task_line(task: str, metrics: dict[str, float], notes: dict[str, str]) -> str:
    return f"  {task:<12} " + ", ".join(f"{m}={v:.4f} ({notes[m]})" for m, v in metrics.items())


def summary_lines(name: str, run_dir: Any, report: dict[str, Any], kind: str = "run") -> list[str]:
    if kind == "ensemble":
        lines = [f"{name}: ensemble of {len(report['members'])} members in {run_dir}"]
        for task, info in report["tasks"].items():
            notes = {m: f"gain over best member {info['gain'][m]['over_best_member']:+.4f}" for m in info["metrics"]}
            lines.append(_task_line(task, info["metrics"], notes))
        return lines
    lines = [f"{name}: run directory {run_dir}"]
    for task, info in report["tasks"].items():
        notes = {m: f"trivial {info['baseline'].get(m, float('nan')):.4f}" for m in info["metrics"]}
        lines.append(_task_line(task, info["metrics"], notes))
    return lines
