"""Plots of a run: per-task training loss, validation metrics per epoch, task weights over steps."""

from __future__ import annotations

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


def write_plots(steps: list[dict[str, Any]], epochs: list[dict[str, Any]], folder: Path) -> list[str]:
    """Write PNGs into folder; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    if steps:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for task in steps[0]["loss"]:
            ax.plot([s["step"] for s in steps], _smooth([s["loss"][task] for s in steps]), label=task)
        ax.set(xlabel="step", ylabel="training loss (smoothed)", yscale="log", title="Per-task training loss")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / "loss.png", dpi=100)
        plt.close(fig)
        written.append("loss.png")
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for task in steps[0]["weight"]:
            points = [(s["step"], s["weight"][task]) for s in steps if s["weight"].get(task) is not None]
            if points:
                ax.plot(*zip(*points), label=task)
        ax.set(xlabel="step", ylabel="weight", title="Task weights (gradient methods without weights: none drawn)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / "weights.png", dpi=100)
        plt.close(fig)
        written.append("weights.png")
    evaluated = [e for e in epochs if "val" in e]
    if evaluated:
        tasks = list(evaluated[0]["val"])
        fig, axes = plt.subplots(1, len(tasks), figsize=(3 * len(tasks), 3), squeeze=False)
        for ax, task in zip(axes[0], tasks):
            for metric in evaluated[0]["val"][task]:
                ax.plot([e["epoch"] for e in evaluated], [e["val"][task].get(metric) for e in evaluated], marker="o", label=metric)
            ax.set(title=task, xlabel="epoch")
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / "val_metrics.png", dpi=100)
        plt.close(fig)
        written.append("val_metrics.png")
    return written
