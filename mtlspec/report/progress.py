"""The console view of a training run: a rich progress bar with per-task losses and ETA."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class RunProgress:
    def __init__(self, console: Console):
        self.console = console
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("eta"), TimeRemainingColumn(), console=console, transient=False)
        self.task_id = None

    def __enter__(self) -> "RunProgress":
        self.bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.stop()

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        self.label = f"epoch {epoch + 1}/{epochs}"
        if self.task_id is not None:
            self.bar.remove_task(self.task_id)
        self.task_id = self.bar.add_task(self.label, total=steps)

    def step(self, row: dict[str, Any]) -> None:
        losses = " ".join(f"{t}={v:.3f}" for t, v in row["loss"].items())
        self.bar.update(self.task_id, advance=1, description=f"{self.label} {losses}")

    def end_epoch(self, record: dict[str, Any]) -> None:
        if "val" in record:
            parts = [f"{task}: " + ", ".join(f"{m}={v:.3f}" for m, v in metrics.items()) for task, metrics in record["val"].items()]
            self.console.print(f"epoch {record['epoch']} val | " + " | ".join(parts), highlight=False)
