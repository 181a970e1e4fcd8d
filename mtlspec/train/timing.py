"""Where an epoch's time goes: waiting for the data loader, training steps, evaluation.

Written to timings.jsonl, one row per epoch, apart from metrics.jsonl: wall times differ from run
to run, and metrics.jsonl must come out byte for byte the same when a run is resumed. A resume
cuts timings.jsonl back to the checkpoint's epoch, as it does metrics.jsonl.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

TIMINGS_FILE = "timings.jsonl"


class EpochClock:
    """Times one epoch: `batches(loader)` yields the loader's batches, counting the time spent
    waiting for each apart from the time between them (the step)."""

    def __init__(self, epoch: int, first_step: int, batch_size: int):
        self.epoch, self.first_step, self.batch_size = epoch, first_step, batch_size
        self.data_seconds = self.step_seconds = 0.0
        self.steps = 0

    def batches(self, loader: Iterable[Any]) -> Iterator[Any]:
        iterator = iter(loader)
        while True:
            asked = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            got = time.perf_counter()
            self.data_seconds += got - asked
            yield batch  # the step runs while the generator is suspended here
            self.step_seconds += time.perf_counter() - got
            self.steps += 1

    def row(self, eval_seconds: float) -> dict[str, Any]:
        train = self.data_seconds + self.step_seconds
        return {"kind": "epoch", "epoch": self.epoch, "steps": self.steps, "first_step": self.first_step + 1,
                "epoch_seconds": train + eval_seconds, "train_seconds": train, "data_seconds": self.data_seconds,
                "step_seconds": self.step_seconds / max(self.steps, 1), "eval_seconds": eval_seconds,
                "images_per_second": self.steps * self.batch_size / train if train > 0 else None}

    def write(self, path: Path, eval_seconds: float) -> None:
        """Append this epoch's row (a line cut short by a crash is dropped on resume)."""
        with open(path, "a") as sink:
            sink.write(json.dumps(self.row(eval_seconds)) + "\n")


def read_timings(path: Path) -> list[dict[str, Any]]:
    """The rows of timings.jsonl (none when the file is absent; a damaged line is skipped)."""
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows
