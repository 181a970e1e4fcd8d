"""The figures of a comparison (drawn by report/render_plotly.py in compare.html): two tasks'
primary metrics with the Pareto front, Δm per run, and every run's training curves overlaid.

Reads the runs' metrics.jsonl as JSON: never imports torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mtlspec.errors import UsageError
from mtlspec.report.compare import Row, columns
from mtlspec.report.figures import Figure, Panel, Series, smooth, task_losses


def default_pair(rows: list[Row]) -> tuple[str, str]:
    """The primary (first reported) metric of the first two tasks; two metrics of the one task
    when there is only one."""
    cols = columns(rows)
    firsts = list({c.split(".", 1)[0]: c for c in reversed(cols)}.values())[::-1]  # each task's first column
    if len(firsts) >= 2:
        return firsts[0], firsts[1]
    return cols[0], cols[1] if len(cols) > 1 else cols[0]


def pareto_front(points: list[tuple[float, float]], higher: tuple[bool, bool]) -> list[int]:
    """Indices of the points no other point beats on both axes (at least as good on both, better on one)."""
    sign = [1.0 if h else -1.0 for h in higher]
    scored = [(sign[0] * x, sign[1] * y) for x, y in points]
    return [i for i, (a, b) in enumerate(scored)
            if not any(c >= a and d >= b and (c > a or d > b) for j, (c, d) in enumerate(scored) if j != i)]


def pareto_figure(rows: list[Row], pair: tuple[str, str] | None) -> Figure | None:
    x, y = pair or default_pair(rows)
    known = columns(rows)
    for name in (x, y):
        if name not in known:
            raise UsageError(f"--pareto: no run reports {name}; the metrics are: {', '.join(known)}")
    (tx, mx), (ty, my) = x.split(".", 1), y.split(".", 1)
    placed = [(r.label, r.metrics[tx][mx], r.metrics[ty][my]) for r in rows if mx in r.metrics.get(tx, {}) and my in r.metrics.get(ty, {})]
    if not placed or x == y:
        return None
    higher = (next(r.higher[x] for r in rows if x in r.higher), next(r.higher[y] for r in rows if y in r.higher))
    front = sorted((placed[i] for i in pareto_front([(a, b) for _, a, b in placed], higher)), key=lambda p: p[1])
    series = [Series("runs", [p[1] for p in placed], [p[2] for p in placed], style="points", labels=[p[0] for p in placed]),
              Series("Pareto front", [p[1] for p in front], [p[2] for p in front], style="dashed", colour=3)]
    arrow = lambda h: "↑" if h else "↓"  # noqa: E731
    title = f"Pareto view: {x} {arrow(higher[0])} against {y} {arrow(higher[1])}"
    return Figure("pareto", title, [Panel(title, series, f"{x} {arrow(higher[0])}", f"{y} {arrow(higher[1])}")], height=4.0)


def delta_figure(rows: list[Row]) -> Figure | None:
    deltas = [(r.label, r.delta_m) for r in rows if r.delta_m is not None]
    if not deltas:
        return None
    panel = Panel("Δm against the baseline (%)", [Series("Δm (%)", [d for _, d in deltas], [n for n, _ in deltas], style="bars")],
                  xlabel="Δm (%)", kind="hbars", categories=[n for n, _ in deltas])
    return Figure("delta_m", panel.title, [panel], height=0.35 * len(deltas) + 1.2)


def _rows_of(run: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    steps, epochs = [], []
    path = Path(run) / "metrics.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            (steps if row.get("kind") == "step" else epochs).append(row)
    return steps, epochs


def _mean_curve(curves: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """The mean over seeds where every run logged the same steps; else the first run's curve."""
    curves = [c for c in curves if c]
    if not curves:
        return []
    if all([x for x, _ in c] == [x for x, _ in curves[0]] for c in curves):
        return [(x, sum(c[i][1] for c in curves) / len(curves)) for i, (x, _) in enumerate(curves[0])]
    return curves[0]


def curve_figures(rows: list[Row]) -> list[Figure]:
    """Per task, every run's smoothed training loss against the step, and its validation value of
    the task's primary metric against the epoch (the mean over seeds for a seed group)."""
    logs = {r.label: [_rows_of(run) for run in r.runs] for r in rows}
    tasks = list(dict.fromkeys(t for r in rows for t in r.metrics))
    primary = {t: next(c.split(".", 1)[1] for c in columns(rows) if c.split(".", 1)[0] == t) for t in tasks}
    train, val = [], []
    for task in tasks:
        train_panel, val_panel = Panel(f"{task}: training loss", xlabel="step", log_y=True), Panel(f"{task}: validation {primary[task]}", xlabel="epoch")
        for n, row in enumerate(rows):
            steps = _mean_curve([task_losses(st, task) for st, _ in logs[row.label]])
            if steps:
                train_panel.series.append(Series(row.label, [x for x, _ in steps], smooth([v for _, v in steps]), colour=n))
            points = _mean_curve([[(e["epoch"], e["val"][task][primary[task]]) for e in ep if primary[task] in e.get("val", {}).get(task, {})]
                                  for _, ep in logs[row.label]])
            if points:
                val_panel.series.append(Series(row.label, [x for x, _ in points], [v for _, v in points], style="points", colour=n))
        train += [train_panel] if train_panel.series else []
        val += [val_panel] if val_panel.series else []
    out = []
    if train:
        out.append(Figure("training_curves", "Training loss per task, every run (smoothed over 10 steps)", train, columns=min(2, len(train)), height=2.8,
                          shared_legend=True))
    if val:
        out.append(Figure("validation_curves", "Validation: each task's primary metric, every run", val, columns=min(2, len(val)), height=2.6,
                          shared_legend=True))
    return out


def comparison_figures(rows: list[Row], pair: tuple[str, str] | None) -> list[Figure]:
    return [f for f in (pareto_figure(rows, pair), delta_figure(rows), *curve_figures(rows)) if f is not None]
