"""What a run's (and a comparison's) charts show, as plain data: a `Figure` of `Panel`s of
`Series`. Two renderers draw the same figures: report/render_png.py (matplotlib, the PNGs of
report.md) and report/render_plotly.py (the interactive charts of report.html and compare.html),
so the static and the interactive views never disagree about what is plotted.

Reads only JSON-ready rows (metrics.jsonl, timings.jsonl, report details): no torch here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Series:
    """One line, set of points or bars. `colour`: an index into the palette (a task's or a run's)."""

    name: str
    x: list[Any]
    y: list[float | None]
    style: str = "line"  # line | dashed (with markers) | faint (thin, light) | points | bars
    colour: int = 0
    labels: list[str] | None = None  # text beside each point (points) or hover text


@dataclass
class Panel:
    title: str
    series: list[Series] = field(default_factory=list)
    xlabel: str = ""
    ylabel: str = ""
    log_y: bool = False
    kind: str = "xy"  # xy | stacked (bars per x, stacked) | hbars (one bar per category) | heatmap
    matrix: list[list[float]] | None = None  # heatmap: rows true, columns predicted (each row sums to 1)
    counts: list[list[int]] | None = None  # heatmap: the counts shown on hover or in the cells
    categories: list[str] | None = None  # heatmap rows/columns, hbars categories
    zero_line: bool = False
    y_range: tuple[float, float] | None = None


@dataclass
class Figure:
    name: str  # file stem of the PNG, id of the chart
    title: str
    panels: list[Panel]
    columns: int = 1
    height: float = 3.2  # inches per row of panels (the PNG); the HTML chart scales from it
    shared_legend: bool = False  # several panels, the same series names in each (runs): one legend for all
    width: float | None = None  # inches of the PNG; 8 (one panel) or 3 a column when None


MAX_CONFUSION = 300  # classes: a larger confusion matrix is not drawn (report.json names its file)
CELL_TEXT = 60  # classes: above this the heatmap has no per-cell hover text (it would be megabytes)


def smooth(values: list[float], window: int = 10) -> list[float]:
    """The running mean of the last `window` values (fewer at the start)."""
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def task_losses(steps: list[dict[str, Any]], task: str) -> list[tuple[int, float]]:
    """(step, loss) of a task at the steps whose batch had it: a step where it was absent logs a
    loss of 0 that is no measurement."""
    return [(s["step"], s["loss"][task]) for s in steps
            if s.get("loss", {}).get(task) is not None and task not in (s.get("absent") or [])]


def varies(steps: list[dict[str, Any]], task: str) -> bool:
    values = [s["weight"][task] for s in steps if s.get("weight", {}).get(task) is not None]
    return bool(values) and max(values) - min(values) > 1e-9 * max(1.0, abs(values[0]))


def panels(evaluated: list[dict[str, Any]], metrics: dict[str, list[str]] | None) -> list[tuple[str, str]]:
    """(task, metric) of each validation panel: the metrics each task's spec reports, as logged."""
    return [(task, metric) for task in evaluated[0]["val"] for metric in evaluated[0]["val"][task]
            if metrics is None or metric in metrics.get(task, [metric])]


def loss_figure(steps: list[dict[str, Any]], epochs: list[dict[str, Any]]) -> Figure | None:
    """Per task, the smoothed training loss and the validation loss at each evaluation (log scale)."""
    if not steps:
        return None
    panel = Panel("Per-task loss: training (smoothed) and validation", xlabel="step", ylabel="loss", log_y=True)
    val_rows = [e for e in epochs if e.get("val_loss")]
    for n, task in enumerate(steps[0]["loss"]):
        points = task_losses(steps, task)
        if points:
            panel.series.append(Series(f"{task} (train)", [x for x, _ in points], smooth([v for _, v in points]), colour=n))
        points = [(e["step"], e["val_loss"][task]) for e in val_rows if e["val_loss"].get(task) is not None and e["val_loss"][task] > 0]
        if points:
            panel.series.append(Series(f"{task} (validation)", *map(list, zip(*points)), style="dashed", colour=n))
    return Figure("loss", panel.title, [panel], height=3.5)


def lr_figure(steps: list[dict[str, Any]]) -> Figure | None:
    rates = [(s["step"], s["lr"]) for s in steps if s.get("lr") is not None]
    if not rates:
        return None
    return Figure("lr", "Learning rate", [Panel("Learning rate", [Series("learning rate", *map(list, zip(*rates)))], "step", "learning rate")],
                  height=2.5)


def weights_figure(steps: list[dict[str, Any]]) -> Figure | None:
    """Task weights per step, for the tasks whose weight varies (constant ones, ew's, add nothing)."""
    tasks = list(steps[0].get("weight", {})) if steps else []
    varying = [(n, task) for n, task in enumerate(tasks) if varies(steps, task)]
    if not varying:
        return None
    series = [Series(task, *map(list, zip(*[(s["step"], s["weight"][task]) for s in steps if s["weight"].get(task) is not None])), colour=n)
              for n, task in varying]
    return Figure("weights", "Task weights per step", [Panel("Task weights per step", series, "step", "weight")], height=3.5)


def cosine_figure(steps: list[dict[str, Any]]) -> Figure | None:
    """The cosine between each two tasks' gradients per step (smoothed; below 0: the tasks conflict),
    for the gradient methods, which log it: gradients of the shared parameters, or of the shared
    representation where the method works there (`space: representation`)."""
    pairs = list(dict.fromkeys(pair for s in steps for pair in s.get("cosine") or {}))
    if not pairs:
        return None
    series = []
    for n, pair in enumerate(pairs):
        points = [(s["step"], s["cosine"][pair]) for s in steps if (s.get("cosine") or {}).get(pair) is not None]
        if points:
            xs, ys = map(list, zip(*points))
            series.append(Series(pair.replace("|", " · "), xs, smooth(ys), colour=n))
    title = "Cosine between task gradients (smoothed over 10 steps; below 0 they conflict)"
    return Figure("gradient_cosines", title, [Panel(title, series, "step", "cosine", zero_line=True, y_range=(-1.05, 1.05))], height=3.5)


def validation_figure(epochs: list[dict[str, Any]], metrics: dict[str, list[str]] | None) -> Figure | None:
    """One panel per reported metric, each on its own scale."""
    evaluated = [e for e in epochs if "val" in e]
    shown = panels(evaluated, metrics) if evaluated else []
    if not shown:
        return None
    out = []
    for task, metric in shown:
        points = [(e["epoch"], e["val"][task][metric]) for e in evaluated if e["val"].get(task, {}).get(metric) is not None]
        out.append(Panel(f"{task}: {metric}", [Series(metric, *map(list, zip(*points)), style="points")] if points else [], "epoch"))
    return Figure("val_metrics", "Validation metrics (each on its own scale)", out, columns=min(4, len(out)), height=2.4)


def time_figure(timings: list[dict[str, Any]]) -> Figure | None:
    """Seconds per epoch: waiting for data, training steps, evaluation (stacked)."""
    if not timings:
        return None
    epochs = [t["epoch"] for t in timings]
    parts = [("waiting for data", "data_seconds"), ("training steps", None), ("evaluation", "eval_seconds")]
    series = []
    for n, (name, key) in enumerate(parts):
        values = [t["train_seconds"] - t["data_seconds"] if key is None else t[key] for t in timings]
        series.append(Series(name, epochs, values, style="bars", colour=n))
    return Figure("time", "Time per epoch", [Panel("Time per epoch", series, "epoch", "seconds", kind="stacked")], height=2.8)


def detail_figures(task: str, details: dict[str, Any]) -> list[Figure]:
    """A task's final-evaluation details: the confusion matrix (row-normalised), per-class scores,
    the precision-recall curve at IoU 0.50 for detection and instance segmentation, and a zero-shot
    task's seen-unseen curve."""
    names = details.get("names") or []
    out = []
    if details.get("confusion") and len(details["confusion"]) <= MAX_CONFUSION:
        counts = details["confusion"]
        labels = [str(names[i]) if i < len(names) else str(i) for i in range(len(counts))]
        rows = [[c / sum(row) if sum(row) else 0.0 for c in row] for row in counts]
        side = min(14.0, max(3.0, 0.28 * len(labels) + 1.2))
        out.append(Figure(f"{task}_confusion", f"{task}: confusion matrix (rows: true class, normalised)",
                          [Panel(f"{task}: confusion matrix", xlabel="predicted", ylabel="true", kind="heatmap", matrix=rows,
                                 counts=counts if len(counts) <= CELL_TEXT else None, categories=labels)],
                          height=side, width=side + 1.5))
    score, what = next(((details[k], label) for k, label in (("ap", "AP"), ("iou", "IoU"), ("recall", "recall")) if details.get(k)), (None, ""))
    if score:
        labels = [str(names[i]) if i < len(names) else str(i) for i in range(len(score))]
        kept = [(label, v) for label, v in zip(labels, score) if v is not None]
        if kept:
            out.append(Figure(f"{task}_per_class", f"{task}: {what} per class",
                              [Panel(f"{task}: {what} per class", [Series(what, [v for _, v in kept], [label for label, _ in kept], style="bars")],
                                     xlabel=what, kind="hbars", categories=[label for label, _ in kept])],
                              height=max(2.0, 0.22 * len(kept) + 1.0)))
    if details.get("precision50"):
        recall = details["recall_thresholds"]
        series = [Series("mean over classes", recall, details["precision50"], colour=0)]
        curves = details.get("precision50_per_class") or []
        if len(curves) <= 20:  # one line per class while they can be told apart
            series += [Series(str(names[k]) if k < len(names) else str(k), recall, c, style="faint", colour=k + 1)
                       for k, c in enumerate(curves) if c is not None]
        out.append(Figure(f"{task}_pr", f"{task}: precision-recall at IoU 0.50",
                          [Panel(f"{task}: precision-recall at IoU 0.50", series, "recall", "precision", y_range=(0.0, 1.02))], height=3.5))
    curve = details.get("seen_unseen_curve")
    if curve and curve.get("unseen"):  # a zero-shot task: calibrated stacking's sweep (Chao et al., ECCV 2016)
        series = [Series("as the seen classes' penalty varies", curve["unseen"], curve["seen"], colour=0)]
        best = details.get("best_h") or {}
        if best.get("u") is not None:
            series.append(Series(f"best H = {best['h']:.3f}", [best["u"]], [best["s"]], style="points", colour=1))
        title = f"{task}: seen-unseen accuracy curve (its area: AUSUC)"
        out.append(Figure(f"{task}_seen_unseen", title, [Panel(title, series, "unseen classes' accuracy (u)", "seen classes' accuracy (s)",
                                                               y_range=(0.0, 1.02))], height=3.5))
    return out


def run_figures(steps: list[dict[str, Any]], epochs: list[dict[str, Any]], timings: list[dict[str, Any]] | None = None,
                metrics: dict[str, list[str]] | None = None, details: dict[str, dict[str, Any]] | None = None) -> list[Figure]:
    """Every figure of a run report, in the order shown; figures with nothing to show are left out."""
    figures = [loss_figure(steps, epochs), lr_figure(steps), weights_figure(steps), cosine_figure(steps),
               validation_figure(epochs, metrics), time_figure(timings or [])]
    figures += [f for task, found in (details or {}).items() for f in detail_figures(task, found)]
    return [f for f in figures if f is not None]


def rows_of(figure: Figure) -> int:
    return math.ceil(len(figure.panels) / figure.columns)
