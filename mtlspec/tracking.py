"""A run's progress written for experiment trackers, as run callbacks: TensorBoard event files
(`tracking.tensorboard: true`) and an MLflow run (`tracking.mlflow`). Per step the task losses,
weights, learning rate and cosines between task gradients; per evaluation the validation metrics
and losses; at the end the final metrics, and the spec as run and the manifest (TensorBoard: as
text; MLflow: as parameters and artifacts, with the reports).

A resumed run purges the steps after its checkpoint from TensorBoard's event files (purge_step),
so its curves match the log of a run never stopped. MLflow keeps a metric's history as logged:
a resumed run continues the same MLflow run, and the steps between its checkpoint and the stop
appear twice there."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mtlspec.errors import UsageError

FOLDER = "tensorboard"


def require(spec: Any) -> None:
    """Before a run directory is made: the trackers the spec asks for can be written."""
    for wanted, package in ((spec.tracking.tensorboard, "tensorboard"), (spec.tracking.mlflow is not None, "mlflow")):
        if wanted:
            try:
                __import__(package)
            except ImportError:
                raise UsageError(f"tracking.{package} needs the {package} package; install the extra: pip install 'mtlspec[tracking]'") from None


def open_trackers(spec: Any, run_dir: Path, root: Path, resumed_step: int | None) -> list[Any]:
    """The trackers the spec asks for, opened on this run directory."""
    out: list[Any] = []
    if spec.tracking.tensorboard:
        out.append(TensorBoardLog(run_dir, resumed_step))
    if spec.tracking.mlflow is not None:
        out.append(MLflowLog(run_dir, spec, root))
    return out


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


MLFLOW_RUN_FILE = "mlflow_run_id"  # in the run directory: a resume continues the same MLflow run


class MLflowLog:
    """One MLflow run per mtlspec run, through MlflowClient (no global MLflow state)."""

    def __init__(self, run_dir: Path, spec: Any, root: Path):
        from mlflow import MlflowClient

        settings = spec.tracking.mlflow
        self.client = MlflowClient(tracking_uri=settings.tracking_uri or f"sqlite:///{(root / 'mlflow.db').resolve()}")
        name = settings.experiment or spec.name
        found = self.client.get_experiment_by_name(name)
        experiment = found.experiment_id if found is not None else self.client.create_experiment(
            name, artifact_location=None if settings.tracking_uri else (root / "mlflow-artifacts").resolve().as_uri())
        self.run_dir = run_dir
        marker = run_dir / MLFLOW_RUN_FILE
        if marker.is_file():
            self.run_id = marker.read_text().strip()
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            run = self.client.create_run(experiment, run_name=f"{run_dir.parent.name}/{run_dir.name}",
                                         tags={"mtlspec.run_dir": str(run_dir.resolve()), "mtlspec.spec": spec.name})
            self.run_id = run.info.run_id
            from mtlspec.io import write_text_atomic

            write_text_atomic(marker, self.run_id + "\n")
            self.client.log_batch(self.run_id, params=[_param(k, v) for k, v in _choices(spec).items()])
        for name in ("spec.resolved.yaml",):
            if (run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(run_dir / name))

    def _metrics(self, values: dict[str, float | None], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(_key(k), float(v), now, step) for k, v in values.items() if v is not None]
        for start in range(0, len(batch), 1000):  # MLflow takes at most 1,000 metrics per batch
            self.client.log_batch(self.run_id, metrics=batch[start : start + 1000])

    def step(self, row: dict[str, Any]) -> None:
        absent = row.get("absent") or []
        values: dict[str, float | None] = {f"loss/{t}": v for t, v in (row.get("loss") or {}).items() if t not in absent}
        values.update({f"weight/{t}": v for t, v in (row.get("weight") or {}).items()})
        values.update({f"cosine/{pair}": v for pair, v in (row.get("cosine") or {}).items()})
        values["lr"] = row.get("lr")
        self._metrics(values, row["step"])

    def end_epoch(self, record: dict[str, Any]) -> None:
        values: dict[str, float | None] = {f"val/{t}/{m}": v for t, ms in (record.get("val") or {}).items() for m, v in ms.items()}
        values.update({f"val_loss/{t}": v for t, v in (record.get("val_loss") or {}).items()})
        self._metrics(values, record["step"])

    def finish(self, report: dict[str, Any], manifest: dict[str, Any], step: int) -> None:
        """The final metrics, the manifest's seed, commit and hash as tags, the reports as artifacts."""
        split = report.get("split", "test")
        self._metrics({f"{split}/{t}/{m}": v for t, info in report.get("tasks", {}).items() for m, v in info.get("metrics", {}).items()}, step)
        tags = {"mtlspec.spec_hash": manifest.get("spec_hash"), "mtlspec.git_commit": manifest.get("git_commit")}
        for key, value in tags.items():
            if value:
                self.client.set_tag(self.run_id, key, str(value))
        for name in ("manifest.json", "report.json", "report.md", "report.html", "metrics.jsonl"):
            if (self.run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(self.run_dir / name))
        self.client.set_terminated(self.run_id, "FINISHED")

    def close(self) -> None:
        """After a failure or a stop: the MLflow run ends as failed (a resume marks it running again)."""
        self.client.set_terminated(self.run_id, "FAILED")


def _key(name: str) -> str:
    """An MLflow metric key: letters, digits and `_-. /` only (a pair of tasks `a|b` becomes `a-b`)."""
    return "".join(c if c.isalnum() or c in "_-. /" else "-" for c in name)


def _param(key: str, value: Any) -> Any:
    from mlflow.entities import Param

    return Param(key, str(value)[:6000])


def _choices(spec: Any) -> dict[str, Any]:
    """The spec's main choices, as MLflow parameters (the whole spec is an artifact)."""
    out: dict[str, Any] = {"seed": spec.seed, "weighting": spec.weighting.type, "backbone": spec.model.backbone.type,
                           "sharing": getattr(spec.model.sharing, "type", None), "batch_size": spec.data.batch_size,
                           "epochs": spec.training.epochs, "optimizer": spec.training.optimizer.type, "lr": spec.training.optimizer.lr,
                           "precision": spec.training.precision}
    out.update({f"task.{t}": s.type for t, s in spec.tasks.items()})
    return {k: v for k, v in out.items() if v is not None}
