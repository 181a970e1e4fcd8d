"""Plots of a run: per-task training loss beside the validation loss, the learning rate, task
weights over steps where they vary, and one panel per validation metric on its own scale."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def _smooth(values: list[float], window: int = 10) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def _varies(steps: list[dict[str, Any]], task: str) -> bool:
    values = [s["weight"][task] for s in steps if s.get("weight", {}).get(task) is not None]
    return bool(values) and max(values) - min(values) > 1e-9 * max(1.0, abs(values[0]))


def panels(evaluated: list[dict[str, Any]], metrics: dict[str, list[str]] | None) -> list[tuple[str, str]]:
    """(task, metric) of each validation panel: the metrics each task's spec reports, as logged."""
    return [(task, metric) for task in evaluated[0]["val"] for metric in evaluated[0]["val"][task]
            if metrics is None or metric in metrics.get(task, [metric])]


def write_plots(steps: list[dict[str, Any]], epochs: list[dict[str, Any]], folder: Path,
                metrics: dict[str, list[str]] | None = None) -> list[str]:
    """Write PNGs into folder; returns their file names. `metrics`: per task, the metrics its spec
    reports (the validation panels show those; all that were logged when None)."""
    import matplotlib

    matplotlib.use("Agg")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (("loss.png", lambda: _loss(steps, epochs)), ("lr.png", lambda: _rates(steps)),
                       ("weights.png", lambda: _weights(steps)), ("val_metrics.png", lambda: _validation(epochs, metrics))):
        fig = draw()
        if fig is not None:
            fig.tight_layout()
            fig.savefig(folder / name, dpi=100)
            _close(fig)
            written.append(name)
    return written


def _close(fig: Any) -> None:
    from matplotlib import pyplot as plt

    plt.close(fig)


def _loss(steps: list[dict[str, Any]], epochs: list[dict[str, Any]]) -> Any:
    """Per task, the smoothed training loss and the validation loss at each evaluation."""
    from matplotlib import pyplot as plt

    if not steps:
        return None
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    val_rows = [e for e in epochs if e.get("val_loss")]
    for n, task in enumerate(steps[0]["loss"]):
        colour = colours[n % len(colours)]
        ax.plot([s["step"] for s in steps], _smooth([s["loss"][task] for s in steps]), label=f"{task} (train)", color=colour)
        points = [(e["step"], e["val_loss"][task]) for e in val_rows if e["val_loss"].get(task) is not None and e["val_loss"][task] > 0]
        if points:
            ax.plot(*zip(*points), linestyle="--", marker="o", markersize=3, color=colour, label=f"{task} (validation)")
    ax.set(xlabel="step", ylabel="loss (training smoothed)", yscale="log", title="Per-task loss: training and validation")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the curves, not over them
    return fig


def _rates(steps: list[dict[str, Any]]) -> Any:
    from matplotlib import pyplot as plt

    rates = [(s["step"], s["lr"]) for s in steps if s.get("lr") is not None]
    if not rates:
        return None
    fig, ax = plt.subplots(figsize=(6, 2.5))
    ax.plot(*zip(*rates))
    ax.set(xlabel="step", ylabel="learning rate", title="Learning rate")
    return fig


def _weights(steps: list[dict[str, Any]]) -> Any:
    """Task weights per step, for the tasks whose weight varies (constant ones, ew's, add nothing)."""
    from matplotlib import pyplot as plt

    varying = [task for task in (steps[0].get("weight", {}) if steps else {}) if _varies(steps, task)]
    if not varying:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for task in varying:
        ax.plot(*zip(*[(s["step"], s["weight"][task]) for s in steps if s["weight"].get(task) is not None]), label=task)
    ax.set(xlabel="step", ylabel="weight", title="Task weights per step")
    ax.legend(fontsize=8)
    return fig


def _validation(epochs: list[dict[str, Any]], metrics: dict[str, list[str]] | None) -> Any:
    """One panel per reported metric, each on its own scale."""
    from matplotlib import pyplot as plt
    from matplotlib.ticker import MaxNLocator

    evaluated = [e for e in epochs if "val" in e]
    shown = panels(evaluated, metrics) if evaluated else []
    if not shown:
        return None
    columns = min(4, len(shown))
    fig, axes = plt.subplots(math.ceil(len(shown) / columns), columns, figsize=(3 * columns, 2.4 * math.ceil(len(shown) / columns)), squeeze=False)
    for ax, (task, metric) in zip(axes.flat, shown):
        points = [(e["epoch"], e["val"][task][metric]) for e in evaluated if e["val"].get(task, {}).get(metric) is not None]
        if points:
            ax.plot(*zip(*points), marker="o")
        ax.set_title(f"{task}: {metric}", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    fig.suptitle("Validation metrics (each on its own scale)", fontsize=10)
    return fig
