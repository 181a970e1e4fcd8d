"""`mtlspec run` end to end on a tiny spec: the real MMDetection head, checkpoints, resume, reports."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from mtlspec.language import validate_file
from mtlspec.train.checkpoint import CheckpointError
from mtlspec.train.loop import TrainingError
from conftest import StopAfter, run_result

pytestmark = pytest.mark.stack

TINY = """\
name: tiny
seed: 3
data:
  datasets:
    digits: {type: multidigits, canvas: 32, objects: {min: 1, max: 2}, splits: {train: 48, val: 16, test: 16}}
  batch_size: 16
  image_size: 32
tasks:
  largest: {type: classification, dataset: digits, label: largest_digit}
  present: {type: multilabel, dataset: digits, label: present}
  count: {type: regression, dataset: digits, label: count}
  boxes:
    type: detection
    dataset: digits
    head: {type: FCOSHead, stacked_convs: 1, feat_channels: 8, norm_cfg: {type: GN, num_groups: 4, requires_grad: true}}
  seg: {type: segmentation, dataset: digits}
  depth: {type: depth, dataset: digits}
model:
  backbone: {type: SmallCNN, channels: [8, 16]}
  neck: {type: FPN, out_channels: 8}
training:
  epochs: 2
  optimizer: {type: adamw, lr: 0.003}
  device: cpu
  checkpoint: {every_epochs: 1, keep: 3}
evaluation: {split: test}
"""


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))


def _spec(tmp_path, overrides=(), text=TINY):
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    (result,) = validate_file(path, list(overrides))
    assert result.errors == [], [d.format() for d in result.errors]
    return result


def _metrics(report):
    return {t: v["metrics"] for t, v in report["tasks"].items()}


def test_run_writes_a_complete_run_directory(tmp_path, monkeypatch):
    outcome = run_result(_spec(tmp_path), tmp_path / "runs", log=lambda m: None)
    run = outcome.run_dir
    for name in ("spec.resolved.yaml", "manifest.json", "metrics.jsonl", "report.json", "report.md", "report.html"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch-0001.pt", "epoch-0002.pt"]
    # ew: no weights plot and no gradient cosines (a loss weighting forms no per-task gradients)
    assert {p.name for p in (run / "plots").iterdir()} == {"loss.png", "lr.png", "val_metrics.png", "time.png", "largest_confusion.png",
                                                          "largest_per_class.png", "present_per_class.png", "boxes_per_class.png",
                                                          "boxes_pr.png", "seg_confusion.png", "seg_per_class.png", "examples"}
    assert sorted(p.name for p in (run / "plots" / "examples").iterdir()) == [f"digits_{i:06d}.png" for i in range(6)]  # predictions drawn
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["seed"] == 3 and len(manifest["spec_hash"]) == 64
    assert manifest["versions"]["mmdet"] == "3.3.0" and manifest["dataset_fingerprints"]["digits"]
    assert yaml.safe_load((run / "spec.resolved.yaml").read_text())["training"]["epochs"] == 2
    report = json.loads((run / "report.json").read_text())
    assert report["schema_version"] == 1
    expected = {"largest": {"accuracy", "macro_f1"}, "present": {"map", "f1"}, "count": {"mae", "rmse"},
                "boxes": {"map", "map50", "map75"}, "seg": {"miou", "pixel_accuracy"}, "depth": {"abs_err", "rel_err", "delta1"}}
    for task, metrics in expected.items():
        values = report["tasks"][task]["metrics"]
        assert set(values) == metrics
        assert all(isinstance(v, float) and v == v for v in values.values())
        assert report["tasks"][task]["higher_is_better"] == {m: m not in ("mae", "rmse", "abs_err", "rel_err") for m in metrics}
    assert 0 <= report["tasks"]["largest"]["metrics"]["accuracy"] <= 1
    assert report["tasks"]["boxes"]["baseline"] == {"map": 0.0, "map50": 0.0, "map75": 0.0}
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [s["epoch"] for s in steps if s["kind"] == "epoch"] == [1, 2]
    assert len([s for s in steps if s["kind"] == "step"]) == 6  # 48 samples / batch 16 x 2 epochs
    assert "| boxes | detection | map50 |" in (run / "report.md").read_text()
    page = (run / "report.html").read_text()
    assert page.count('<div class="chart">') == 11 and 'id="chart-loss"' in page and "Plotly.newPlot" in page
    assert page.count('<img src="data:image/png;base64,') == 6 and report["examples"][0] == "examples/digits_000000.png"
    from mtlspec.report.examples import draw_examples

    (tmp_path / "elsewhere" / "test").mkdir(parents=True)  # a folder named like the split: still the run's split
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert draw_examples(run, "test", tmp_path / "again", count=2) == ["digits_000000.png", "digits_000001.png"]
    assert "https://" not in page.split("<body>")[1].split("<details>")[0].replace("https://plotly.com", "")  # nothing fetched at view time
    # issue 21: time per epoch, per-class scores and the confusion matrix in the report
    timings = [json.loads(line) for line in (run / "timings.jsonl").read_text().splitlines()]
    assert [t["epoch"] for t in timings] == [1, 2] and all(t["steps"] == 3 and t["epoch_seconds"] >= t["train_seconds"] > 0 for t in timings)
    assert report["time"]["mean_step_seconds"] > 0 and report["time"]["epochs"] == timings
    confusion = report["tasks"]["largest"]["details"]["confusion"]
    assert len(confusion) == 10 and sum(map(sum, confusion)) == 16  # the test split's 16 images, each counted once
    boxes = report["tasks"]["boxes"]["details"]
    assert len(boxes["ap"]) == 10 and len(boxes["recall_thresholds"]) == 101 and boxes["names"] == [str(d) for d in range(10)]
    assert "## Time" in (run / "report.md").read_text() and "## boxes: per class (test split)" in (run / "report.md").read_text()
    # issue 21: dataset sizes and the spec as run are in the report, not only in other files
    assert report["data"]["digits"]["train"]["size"] == 48 and set(report["data"]["digits"]) == {"train", "val", "test"}
    markdown, page = (run / "report.md").read_text(), (run / "report.html").read_text()
    assert "| digits | train | 48 |" in markdown and (run / "spec.resolved.yaml").read_text().strip() in markdown
    assert "<summary>The spec as run (spec.resolved.yaml)</summary>" in page


def test_same_spec_and_seed_give_identical_metrics_and_resume_matches(tmp_path):
    spec = _spec(tmp_path)
    first = run_result(spec, tmp_path / "a", log=lambda m: None).report
    second = run_result(spec, tmp_path / "b", log=lambda m: None).report
    assert _metrics(first) == _metrics(second)  # bit-identical on CPU
    with pytest.raises(TrainingError, match="stopped after epoch 1"):
        run_result(spec, tmp_path / "c", log=lambda m: None, callbacks=[StopAfter(1)])
    (stopped,) = list((tmp_path / "c" / "tiny").iterdir())
    assert [p.name for p in (stopped / "checkpoints").iterdir()] == ["epoch-0001.pt"]
    (stopped / "timings.jsonl").write_text((stopped / "timings.jsonl").read_text() + '{"kind": "epoch", "epoch": 2, "steps"')  # cut by a kill
    resumed = run_result(spec, tmp_path / "c", resume_dir=stopped, log=lambda m: None).report
    assert _metrics(resumed) == _metrics(first)
    timings = [json.loads(line) for line in (stopped / "timings.jsonl").read_text().splitlines()]
    assert [t["epoch"] for t in timings] == [1, 2]  # the cut line dropped, epoch 2 timed once


def test_resume_refuses_a_checkpoint_from_another_spec(tmp_path):
    outcome = run_result(_spec(tmp_path), tmp_path / "runs", log=lambda m: None)
    other = _spec(tmp_path, ["training.optimizer.lr=0.01"])
    with pytest.raises(CheckpointError, match=r"different spec .*differ at training.optimizer.lr: 0.003 in the run, 0.01 now"):
        run_result(other, tmp_path / "runs", resume_dir=outcome.run_dir, log=lambda m: None)
    # a run made by an earlier mtlspec, whose language lacked a key this one has: named as such
    resolved = outcome.run_dir / "spec.resolved.yaml"
    resolved.write_text(resolved.read_text().replace("    every_steps: null\n", ""))
    from mtlspec.run import spec_differences

    assert "training.checkpoint.every_steps (not in the run's spec: added to the language after" in spec_differences(outcome.run_dir, _spec(tmp_path).spec)


def test_a_nan_loss_stops_the_run_naming_task_step_and_checkpoint(tmp_path, monkeypatch):
    from mtlspec.tasks.regression import Regression

    original = Regression.loss
    calls = {"n": 0}

    def poisoned(self, output, target, has, weight):
        calls["n"] += 1
        loss = original(self, output, target, has, weight)
        return loss * float("nan") if calls["n"] > 4 else loss

    monkeypatch.setattr(Regression, "loss", poisoned)
    with pytest.raises(TrainingError) as info:
        run_result(_spec(tmp_path), tmp_path / "runs", log=lambda m: None)
    message = str(info.value)
    assert "task 'count'" in message and "nan" in message and "step 4" in message
    assert "epoch-0001.pt" in message


def test_early_stopping_stops_when_the_monitor_stalls(tmp_path):
    spec = _spec(tmp_path, ["training.epochs=6", "training.early_stopping={monitor: val.largest.accuracy, patience: 1, min_delta: 5}"])
    outcome = run_result(spec, tmp_path / "runs", log=lambda m: None)
    assert outcome.report["run"]["epochs_run"] == 2 and outcome.report["run"]["stopped_early"]


def test_cli_refuses_what_this_version_cannot_run(cli, tmp_path, monkeypatch):
    from mtlspec import capabilities

    # everything the language names runs today; take stacking away to see the refusal path work
    monkeypatch.setitem(capabilities.IMPLEMENTED, "ensemble", capabilities.IMPLEMENTED["ensemble"] - {"stacking"})
    path = tmp_path / "ensemble.yaml"
    path.write_text(TINY + "ensemble: {members: {type: seeds, seeds: [0, 1]}, strategy: {type: stacking}, per_task: {boxes: {type: box_fusion}}}\n")
    result = cli("run", str(path), "--out", str(tmp_path / "runs"))
    assert result.exit_code == 1
    assert "error[not-implemented] ensemble.strategy.type" in result.output
    assert not (tmp_path / "runs").exists()


def test_cli_runs_and_prints_metrics(cli, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    result = cli("run", str(path), "--out", str(tmp_path / "runs"), "--quiet", "--set", "training.epochs=1")
    assert result.exit_code == 0, result.output
    assert "run directory" in result.output and "boxes" in result.output


def test_every_type_the_language_names_is_implemented():
    """The capability list covers the language: nothing a spec can say is refused by `run`."""
    from mtlspec.capabilities import IMPLEMENTED
    from mtlspec.language.schema import json_schema

    schema = json.dumps(json_schema())
    tags = set(re.findall(r'"const": "([A-Za-z_]+)"', schema))
    untracked = {"adam", "adamw", "sgd", "constant", "cosine", "cyclic", "step", "proportional", "round_robin", "temperature",
                 "auto"}  # training.threads: auto, a value rather than a type
    named = set().union(*IMPLEMENTED.values())
    assert tags - named - untracked == set(), tags - named - untracked


def test_plots_show_what_varies_and_what_the_spec_reports(tmp_path):
    """Issue 21: ew's weights plot was flat lines; top_k (not in the table) was plotted; every
    metric of a task shared one axis. Weights are drawn where they vary, the learning rate and the
    validation loss are drawn, and each reported metric gets a panel of its own."""
    from mtlspec.report.figures import panels, run_figures
    from mtlspec.report.render_png import write_pngs

    def write_plots(steps, epochs, folder, metrics):
        return write_pngs(run_figures(steps, epochs, [], metrics), folder)

    steps = [{"step": i, "lr": 0.1 / (i + 1), "loss": {"a": 1.0 / (i + 1), "b": 2.0}, "weight": {"a": 1.0, "b": 1.0}} for i in range(20)]
    epochs = [{"kind": "epoch", "epoch": e, "step": 10 * e, "val": {"a": {"accuracy": 0.5, "top_k": 1.0, "macro_f1": 0.4}, "b": {"mae": 0.3}},
               "val_loss": {"a": 0.9, "b": 1.5}} for e in (1, 2)]
    assert write_plots(steps, epochs, tmp_path / "flat", {"a": ["accuracy", "macro_f1"], "b": ["mae"]}) == ["loss.png", "lr.png", "val_metrics.png"]
    assert panels(epochs, {"a": ["accuracy", "macro_f1"], "b": ["mae"]}) == [("a", "accuracy"), ("a", "macro_f1"), ("b", "mae")]
    for s in steps:
        s["weight"] = {"a": 1.0 + 0.01 * s["step"], "b": 1.0}
    assert "weights.png" in write_plots(steps, epochs, tmp_path / "varying", None)


@pytest.mark.parametrize("method", ["uw", "gls", "pcgrad"])
def test_reading_the_device_every_few_steps_writes_the_same_log(tmp_path, method):
    """training.log_every reads losses and weights (UW's learned tensors, GLS's float64 ones, a
    gradient method's floats) off the device every few steps: metrics.jsonl keeps every step, byte
    for byte, and the run ends with the same metrics."""
    every_step = run_result(_spec(tmp_path, [f"weighting.type={method}", "training.epochs=1"]), tmp_path / "a").run_dir
    batched = run_result(_spec(tmp_path, [f"weighting.type={method}", "training.epochs=1", "training.log_every=2"]), tmp_path / "b").run_dir
    assert (batched / "metrics.jsonl").read_text() == (every_step / "metrics.jsonl").read_text()
    report = lambda d: _metrics(json.loads((d / "report.json").read_text()))  # noqa: E731
    assert report(batched) == report(every_step)


def test_a_nan_loss_read_late_still_names_its_step(tmp_path, monkeypatch):
    from mtlspec.tasks.regression import Regression

    original = Regression.loss
    calls = {"n": 0}

    def poisoned(self, output, target, has, weight):
        calls["n"] += 1
        loss = original(self, output, target, has, weight)
        return loss * float("nan") if calls["n"] > 4 else loss

    monkeypatch.setattr(Regression, "loss", poisoned)
    with pytest.raises(TrainingError) as info:
        run_result(_spec(tmp_path, ["training.log_every=3"]), tmp_path / "runs", log=lambda m: None)
    message = str(info.value)
    assert "task 'count'" in message and "nan" in message and "step 4" in message
