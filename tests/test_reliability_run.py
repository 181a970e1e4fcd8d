"""Findings of the reliability probe (issue 13) on `run`: exit codes, failure states, resume after a
crash, checkpoints that are never unpickled beyond plain data, run directories made safely."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO, StopAfter, run_result, tiny_spec, train_sources
from mtlspec.language import validate_file
from mtlspec.train.checkpoint import CheckpointError

pytestmark = pytest.mark.stack

TASKS = """\
largest: {type: classification, dataset: digits, label: largest_digit}
count: {type: regression, dataset: digits, label: count}
seg: {type: segmentation, dataset: digits}
"""
REST = "training: {epochs: 3, device: cpu, checkpoint: {keep: 5}}\nreport: {formats: [json], plots: false}\n"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))


def _spec(tmp_path, rest=REST, name="r"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(tiny_spec(name, TASKS, rest))
    return path


def _result(path, overrides=()):
    (result,) = validate_file(path, list(overrides))
    assert result.errors == [], [d.format() for d in result.errors]
    return result


def _stopped_after(tmp_path, epochs_done, path=None):
    """A run killed after `epochs_done` epochs (as a kill would leave it, checkpoints and all)."""
    from mtlspec.train.loop import TrainingError

    path = path or _spec(tmp_path)
    with pytest.raises(TrainingError):
        run_result(_result(path), tmp_path / "runs", log=lambda m: None, callbacks=[StopAfter(epochs_done)])
    (run_dir,) = (tmp_path / "runs" / path.stem).iterdir()
    return path, run_dir


def _manifest(run_dir):
    return json.loads((run_dir / "manifest.json").read_text())


class _Payload:
    """Unpickling this runs code: the marker file proves whether a loader ran it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def _plant(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump({"spec_hash": "x", "model": _Payload(str(marker))}, handle)


class TestExitCodesAndFailureStates:
    def test_a_nan_loss_exits_3_and_the_manifest_says_failed_with_the_cause(self, cli, tmp_path, monkeypatch):
        from mtlspec.tasks.regression import Regression

        original = Regression.loss
        monkeypatch.setattr(Regression, "loss", lambda self, *a: original(self, *a) * float("nan"))
        result = cli("run", str(_spec(tmp_path)), "--out", str(tmp_path / "runs"), "--quiet")
        assert result.exit_code == 3, result.output
        (run_dir,) = (tmp_path / "runs" / "r").iterdir()
        info = _manifest(run_dir)
        assert info["status"] == "failed" and "task 'count'" in info["error"] and "nan" in info["error"]
        assert "TrainingError" in (run_dir / "traceback.txt").read_text()

    def test_an_interrupted_run_says_so_and_how_to_resume(self, cli, tmp_path, monkeypatch):
        from mtlspec.train import loop

        calls = {"n": 0}
        original = loop.train_step

        def interrupted(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 5:  # in epoch 3, after two checkpoints
                raise KeyboardInterrupt
            return original(*args, **kwargs)

        monkeypatch.setattr(loop, "train_step", interrupted)
        result = cli("run", str(_spec(tmp_path)), "--out", str(tmp_path / "runs"), "--quiet")
        (run_dir,) = (tmp_path / "runs" / "r").iterdir()
        assert result.exit_code == 3 and f"interrupted; continue with --resume {run_dir}" in result.output
        assert _manifest(run_dir)["status"] == "interrupted"

    def test_sigterm_ends_a_run_as_interrupted(self, tmp_path):
        path = _spec(tmp_path, "training: {epochs: 5000, device: cpu}\nreport: {formats: [json], plots: false}\n")
        env = {**os.environ, "MTLSPEC_CACHE": str(tmp_path / "cache")}
        process = subprocess.Popen([sys.executable, "-m", "mtlspec.cli", "run", str(path), "--out", str(tmp_path / "runs"), "--quiet"],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 120
        while not list((tmp_path / "runs").glob("r/*/checkpoints/epoch-*.pt")) and time.time() < deadline:
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 3, output
        (run_dir,) = (tmp_path / "runs" / "r").iterdir()
        assert _manifest(run_dir)["status"] == "interrupted" and "Traceback" not in output

    def test_a_bug_is_one_line_naming_the_trace_file_and_exit_4(self, cli, tmp_path, monkeypatch):
        from mtlspec.train import loop

        def broken(*args, **kwargs):
            raise ZeroDivisionError("a bug planted by the test")

        monkeypatch.setattr(loop, "train_step", broken)
        result = cli("run", str(_spec(tmp_path)), "--out", str(tmp_path / "runs"), "--quiet")
        assert result.exit_code == 4
        (run_dir,) = (tmp_path / "runs" / "r").iterdir()
        assert f"the full trace is in {run_dir / 'traceback.txt'}" in result.output and "Traceback" not in result.output
        assert "ZeroDivisionError: a bug planted" in (run_dir / "traceback.txt").read_text()

    def test_a_head_mmdetection_cannot_build_is_refused_at_its_line_before_anything_is_written(self, cli, tmp_path):
        path = tmp_path / "h.yaml"
        path.write_text(tiny_spec("h", "boxes: {type: detection, dataset: digits, head: {type: FCOSHead, feat_channels: 8, norm_cfg: {type: GN, num_groups: 4}, loss_cls: {type: NoSuchLoss}}}", REST))
        result = cli("run", str(path), "--out", str(tmp_path / "runs"), "--quiet")
        assert result.exit_code == 1 and f"{path}:8:" in result.output and "error[build-error] tasks.boxes.head" in result.output
        assert not (tmp_path / "runs" / "h").exists() or not any((tmp_path / "runs" / "h").iterdir())

    def test_a_baseline_run_that_is_not_there_is_refused_before_training(self, cli, tmp_path):
        path = _spec(tmp_path, REST + "evaluation: {baseline: {type: run, path: no/such/run}}\n")
        result = cli("run", str(path), "--out", str(tmp_path / "runs"), "--quiet")
        assert result.exit_code == 1 and "error[missing-file] evaluation.baseline.path" in result.output
        assert not (tmp_path / "runs").exists()

    def test_a_batch_larger_than_the_training_split_stops_before_training(self, cli, tmp_path):
        # validate knows a generated split's size; a folder's is only known to run
        from PIL import Image

        for i in range(10):
            (tmp_path / "pets" / ("cat", "dog")[i % 2]).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (20, 20), (i * 20, 0, 0)).save(tmp_path / "pets" / ("cat", "dog")[i % 2] / f"{i}.png")
        path = tmp_path / "f.yaml"
        path.write_text("name: f\ndata: {datasets: {pets: {type: image_folder, root: pets}}, batch_size: 12, image_size: 16}\n"
                        "tasks: {kind: {type: classification, dataset: pets, label: class}}\n" + REST)
        result = cli("run", str(path), "--out", str(tmp_path / "runs"), "--quiet")
        assert result.exit_code == 3 and "larger than the training split (8 samples)" in result.output, result.output
        assert not list((tmp_path / "runs").rglob("epoch-*.pt"))

    def test_a_diverging_run_stops_without_saving_its_state_as_a_checkpoint(self, tmp_path, monkeypatch):
        from mtlspec.train import checkpoint
        from mtlspec.train.loop import TrainingError

        monkeypatch.setattr(checkpoint, "MAX_ABS_WEIGHT", 1.0)  # any real weight update crosses it
        with pytest.raises(TrainingError, match="diverged by the end of epoch 1.*no checkpoint was written"):
            run_result(_result(_spec(tmp_path)), tmp_path / "runs", log=lambda m: None)
        (run_dir,) = (tmp_path / "runs" / "r").iterdir()
        assert not list((run_dir / "checkpoints").glob("epoch-*.pt"))
        assert _manifest(run_dir)["status"] == "failed"


class TestResume:
    def test_resume_after_a_crash_cleans_partial_writes_and_keeps_each_step_once(self, tmp_path):
        path, run_dir = _stopped_after(tmp_path, 2)
        rows = (run_dir / "metrics.jsonl").read_text().splitlines()
        with open(run_dir / "metrics.jsonl", "a") as sink:  # the crash came in epoch 3, after two of its steps
            sink.write(rows[0].replace('"epoch": 1', '"epoch": 3').replace('"step": 1,', '"step": 5,') + "\n")
            sink.write('{"kind": "step", "epo')  # and cut a line short
        (run_dir / "checkpoints" / ".epoch-0003.pt.abc123.tmp").write_bytes(b"half a checkpoint")
        resumed = run_result(_result(path), tmp_path / "runs", resume_dir=run_dir, log=lambda m: None)
        assert not list(run_dir.rglob("*.tmp"))
        steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [s["step"] for s in steps if s["kind"] == "step"] == list(range(1, 7))
        assert [s["epoch"] for s in steps if s["kind"] == "epoch"] == [1, 2, 3]
        fresh = run_result(_result(path), tmp_path / "fresh", log=lambda m: None)
        assert resumed.report["tasks"] == fresh.report["tasks"]  # bit for bit
        fresh_rows = (fresh.run_dir / "metrics.jsonl").read_text()
        assert (run_dir / "metrics.jsonl").read_text() == fresh_rows
        info = _manifest(run_dir)
        assert info["status"] == "finished" and info["resumed"][0]["from"] == "epoch-0002.pt"

    def test_resume_with_another_spec_is_refused_before_anything_is_touched(self, cli, tmp_path):
        path, run_dir = _stopped_after(tmp_path, 1)
        before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
        result = cli("run", str(path), "--resume", str(run_dir), "--set", "training.epochs=4", "--quiet")
        assert result.exit_code == 3 and "different spec" in result.output
        assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before

    def test_resume_takes_a_run_directory_not_a_file(self, cli, tmp_path):
        path, run_dir = _stopped_after(tmp_path, 1)
        for wrong in (run_dir / "checkpoints" / "epoch-0001.pt", run_dir / "checkpoints", tmp_path / "nowhere"):
            result = cli("run", str(path), "--resume", str(wrong), "--quiet")
            assert result.exit_code == 2 and "--resume takes a run directory" in result.output, result.output

    def test_a_planted_pickle_is_refused_on_resume_without_running_it(self, cli, tmp_path):
        path, run_dir = _stopped_after(tmp_path, 1)
        marker = tmp_path / "marker"
        _plant(run_dir / "checkpoints" / "epoch-9999.pt", marker)
        result = cli("run", str(path), "--resume", str(run_dir), "--quiet")
        assert result.exit_code == 3 and "was not loaded" in result.output and "epoch-9999.pt" in result.output
        assert not marker.exists()

    def test_a_planted_pickle_in_an_ensemble_member_is_refused(self, tmp_path):
        from mtlspec.ensemble.members import load_member

        path, run_dir = _stopped_after(tmp_path, 1)
        marker = tmp_path / "marker"
        _plant(run_dir / "checkpoints" / "epoch-0001.pt", marker)
        with pytest.raises(CheckpointError, match="was not loaded"):
            load_member(run_dir, run_dir / "checkpoints" / "epoch-0001.pt", train_sources(_result(path).spec, tmp_path))
        assert not marker.exists()

    def test_every_weighting_method_checkpoints_without_pickled_objects(self, tmp_path):
        """Each method's state (and the RNG states) survive the weights-only loader, and resuming
        restores them exactly."""
        from mtlspec.train.checkpoint import read, rng_state, save, set_rng_state
        from mtlspec.weighting import METHODS

        from mtlspec.language.root import Spec

        spec = _result(_spec(tmp_path)).spec
        G, losses = torch.randn(3, 50, generator=torch.Generator().manual_seed(0)), torch.tensor([1.0, 2.0, 0.5])
        for name, method_class in METHODS.items():
            weighting = Spec.model_validate({**spec.model_dump(mode="json"), "weighting": {"type": name}}).weighting
            method = method_class(list(spec.tasks), weighting)
            if hasattr(method, "aggregate"):
                method.aggregate(G, losses)
                method.aggregate(G, losses)
            else:
                method.weights({t: l for t, l in zip(spec.tasks, losses)})
                method.end_epoch({t: float(l) for t, l in zip(spec.tasks, losses)})
            save(tmp_path / f"{name}.pt", {"model": {}, "weighting": method.state_dict(), "rng": rng_state()})
            state = read(tmp_path / f"{name}.pt")
            method.load_state_dict(state["weighting"])
            set_rng_state(state["rng"])


def test_run_directories_made_at_the_same_instant_are_distinct(tmp_path):
    """new_run_dir creates exclusively: processes starting in the same second never collide."""
    script = ("import sys; from pathlib import Path; from mtlspec.rundir import new_run_dir\n"
              "print('\\n'.join(str(new_run_dir(Path(sys.argv[1]), 'same', 'v')) for _ in range(40)))")
    processes = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    made = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        made.extend(out.split())
    assert len(made) == 160 == len(set(made))


def test_a_long_matrix_label_makes_a_short_run_directory(tmp_path):
    from mtlspec.rundir import new_run_dir

    run_dir = new_run_dir(tmp_path, "spec", "name=" + "n" * 300 + ",weighting.type=ew/../../x")
    assert run_dir.is_dir() and run_dir.parent.parent == tmp_path / "spec" and len(run_dir.parent.name) <= 100


def test_the_resolved_spec_of_a_run_validates_and_the_manifest_lists_each_split(tmp_path):
    path = _spec(tmp_path, REST.replace("epochs: 3", "epochs: 1"))
    outcome = run_result(_result(path), tmp_path / "runs", log=lambda m: None)
    (again,) = validate_file(outcome.run_dir / "spec.resolved.yaml")
    assert again.diagnostics == [] and yaml.safe_load((outcome.run_dir / "spec.resolved.yaml").read_text())["name"] == "r"
    info = _manifest(outcome.run_dir)
    assert {s: v["size"] for s, v in info["data"]["digits"].items()} == {"train": 16, "val": 8, "test": 8}
    assert all("generated from the" in v["source"] for v in info["data"]["digits"].values())
    assert info["status"] == "finished" and info["pid"] == os.getpid()
