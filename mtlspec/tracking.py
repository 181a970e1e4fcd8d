"""A run's progress written for TensorBoard (`tracking.tensorboard: true`), as a run callback:
per step the task losses, weights, learning rate and cosines between task gradients; per
evaluation the validation metrics and losses; at the end the final metrics; and the spec as run
and the manifest as text. A resumed run purges the steps after its checkpoint from the event
files (TensorBoard's purge_step), so its curves match the log of a run never stopped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mtlspec.errors import UsageError

FOLDER = "tensorboard"


def require(spec: Any) -> None:
    """Before a run directory is made: the trackers the spec asks for can be written."""
    if spec.tracking.tensorboard:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise UsageError("tracking.tensorboard needs the tensorboard package; install the extra: pip install 'mtlspec[tracking]'") from None


class TensorBoardLog:
    def __init__(self, run_dir: Path, resumed_step: int | None = None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch's writer needs the tensorboard package
            raise UsageError(f"tracking.tensorboard needs the tensorboard package ({exc}); install the extra: pip install 'mtlspec[tracking]'") from None
        self.writer = SummaryWriter(str(run_dir / FOLDER), purge_step=None if resumed_step is None else resumed_step + 1)
        spec_file = run_dir / "spec.resolved.yaml"
        if spec_file.is_file():
            self.writer.add_text("spec", "```yaml\n" + spec_file.read_text() + "```", global_step=0)

    def step(self, row: dict[str, Any]) -> None:
        step = row["step"]
        for task, value in (row.get("loss") or {}).items():
            if task not in (row.get("absent") or []):  # an absent task's loss of 0 is no measurement
                self.writer.add_scalar(f"loss/{task}", value, step)
        for task, value in (row.get("weight") or {}).items():
            if value is not None:
                self.writer.add_scalar(f"weight/{task}", value, step)
        for pair, value in (row.get("cosine") or {}).items():
            if value is not None:
                self.writer.add_scalar(f"cosine/{pair.replace('|', '-')}", value, step)
        if row.get("lr") is not None:
            self.writer.add_scalar("lr", row["lr"], step)

    def end_epoch(self, record: dict[str, Any]) -> None:
        for task, metrics in (record.get("val") or {}).items():
            for metric, value in metrics.items():
                self.writer.add_scalar(f"val/{task}/{metric}", value, record["step"])
        for task, value in (record.get("val_loss") or {}).items():
            self.writer.add_scalar(f"val_loss/{task}", value, record["step"])
        self.writer.flush()

    def finish(self, report: dict[str, Any], manifest: dict[str, Any], step: int) -> None:
        """The final metrics (at the last step) and the manifest (seed, commit, versions, data)."""
        for task, t in report.get("tasks", {}).items():
            for metric, value in t.get("metrics", {}).items():
                self.writer.add_scalar(f"{report.get('split', 'test')}/{task}/{metric}", value, step)
        self.writer.add_text("manifest", "```json\n" + json.dumps(manifest, indent=1, default=str) + "\n```", global_step=step)
        self.close()

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
