"""Issue 20 (tracking): `tracking.tensorboard: true` writes TensorBoard event files that hold what
metrics.jsonl holds (read back with TensorBoard's own EventAccumulator), and a resumed run's
curves have each step once; `tracking.mlflow` records the run in a SQLite MLflow store (read back
with MlflowClient), and a resume continues the same MLflow run."""

from __future__ import annotations

import json

import pytest

from conftest import run_result, tiny_spec
from mtlspec.language import validate_file
from test_preemption import CrashAt

TASKS = """
largest: {type: classification, dataset: digits, label: largest_digit}
seg: {type: segmentation, dataset: digits}
"""


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))


def _events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return events


def test_tensorboard_holds_the_log_of_the_run(tmp_path):
    (tmp_path / "t.yaml").write_text(tiny_spec("tb", TASKS, "training: {epochs: 2, device: cpu}\nweighting: {type: pcgrad}\n"
                                               "report: {formats: [json], plots: false}\ntracking: {tensorboard: true}\n"))
    (result,) = validate_file(tmp_path / "t.yaml", [])
    assert result.errors == [], result.errors
    outcome = run_result(result, tmp_path / "runs")
    rows = [json.loads(line) for line in (outcome.run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if r["kind"] == "step"]
    events = _events(outcome.run_dir)
    scalars = events.Tags()["scalars"]
    assert {"loss/largest", "loss/seg", "weight/largest", "cosine/largest-seg", "lr", "val/largest/accuracy", "val_loss/seg",
            "test/largest/accuracy", "test/seg/miou"} <= set(scalars), scalars
    logged = [(e.step, e.value) for e in events.Scalars("loss/seg")]
    assert logged == [(r["step"], pytest.approx(r["loss"]["seg"], rel=1e-6)) for r in steps]  # float32 in the event file
    final = events.Scalars("test/largest/accuracy")[-1].value
    assert final == pytest.approx(outcome.report["tasks"]["largest"]["metrics"]["accuracy"], rel=1e-6)
    assert {"spec/text_summary", "manifest/text_summary"} <= set(events.Tags()["tensors"])


def test_a_resumed_run_logs_each_step_once(tmp_path):
    """A crash at step 7 after a checkpoint at step 5: steps 6 and 7 were logged and are trained
    again after the resume; the event files keep one of each, the resumed run's."""
    (tmp_path / "t.yaml").write_text(tiny_spec("tb", TASKS, "training: {epochs: 3, device: cpu, checkpoint: {every_steps: 5, keep: 5}}\n"
                                               "report: {formats: [json], plots: false}\ntracking: {tensorboard: true}\n")
                                     .replace("splits: {train: 16,", "splits: {train: 32,"))
    (result,) = validate_file(tmp_path / "t.yaml", [])
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_result(result, tmp_path / "runs", callbacks=[CrashAt(7)])
    (run_dir,) = (tmp_path / "runs" / "tb").iterdir()
    run_result(result, tmp_path / "runs", resume_dir=run_dir)
    logged = _events(run_dir).Scalars("loss/largest")
    assert [e.step for e in logged] == list(range(1, 13))
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"kind": "step"' in line]
    assert [e.value for e in logged] == [pytest.approx(r["loss"]["largest"], rel=1e-6) for r in rows]


def _mlflow_runs(root):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{(root / 'mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name("mlf")
    return client, client.search_runs([experiment.experiment_id])


def test_mlflow_holds_the_run_in_a_sqlite_database_beside_the_runs(tmp_path):
    """Read back with MLflow's own client: parameters, every step's losses (as metrics.jsonl has
    them), validation and final metrics, the hash and commit as tags, the reports as artifacts."""
    (tmp_path / "t.yaml").write_text(tiny_spec("mlf", TASKS, "training: {epochs: 2, device: cpu}\nweighting: {type: pcgrad}\n"
                                               "report: {formats: [json, md], plots: false}\ntracking: {mlflow: {}}\n"))
    (result,) = validate_file(tmp_path / "t.yaml", [])
    assert result.errors == [], result.errors
    outcome = run_result(result, tmp_path / "runs")
    client, (run,) = _mlflow_runs(tmp_path / "runs")
    assert run.info.status == "FINISHED"
    assert run.data.params["weighting"] == "pcgrad" and run.data.params["task.seg"] == "segmentation" and run.data.params["seed"] == str(result.spec.seed)
    assert run.data.tags["mtlspec.spec_hash"] == json.loads((outcome.run_dir / "manifest.json").read_text())["spec_hash"]
    rows = [json.loads(line) for line in (outcome.run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if r["kind"] == "step"]
    history = client.get_metric_history(run.info.run_id, "loss/seg")
    assert sorted((m.step, m.value) for m in history) == [(r["step"], r["loss"]["seg"]) for r in steps]
    assert {"weight/largest", "cosine/largest-seg", "lr", "val/largest/accuracy", "val_loss/seg", "test/seg/miou"} <= set(run.data.metrics)
    assert run.data.metrics["test/largest/accuracy"] == outcome.report["tasks"]["largest"]["metrics"]["accuracy"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"spec.resolved.yaml", "manifest.json", "report.json", "report.md", "metrics.jsonl"} <= artifacts


def test_a_resumed_run_continues_its_mlflow_run(tmp_path):
    (tmp_path / "t.yaml").write_text(tiny_spec("mlf", TASKS, "training: {epochs: 3, device: cpu, checkpoint: {every_steps: 5, keep: 5}}\n"
                                               "report: {formats: [json], plots: false}\ntracking: {mlflow: {}}\n")
                                     .replace("splits: {train: 16,", "splits: {train: 32,"))
    (result,) = validate_file(tmp_path / "t.yaml", [])
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_result(result, tmp_path / "runs", callbacks=[CrashAt(7)])
    _, (run,) = _mlflow_runs(tmp_path / "runs")
    assert run.info.status == "FAILED"
    (run_dir,) = (tmp_path / "runs" / "mlf").iterdir()
    run_result(result, tmp_path / "runs", resume_dir=run_dir)
    client, (resumed,) = _mlflow_runs(tmp_path / "runs")
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss/largest")]
    assert set(steps) == set(range(1, 13))  # steps 6 and 7 twice: MLflow keeps what was logged (docs/reports.md)
