"""Issue 20 (preemption-safe steps): SIGTERM or Ctrl-C stop a run at the next step boundary with a
checkpoint of that step, `training.checkpoint.every_steps` writes checkpoints within epochs, and a
resume from any of them ends with the same weights, metrics and metrics.jsonl as a run never
stopped (CPU, same machine: bit for bit)."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from conftest import run_result, tiny_spec
from mtlspec.language import validate_file

TASKS = """
largest: {type: classification, dataset: digits, label: largest_digit}
seg: {type: segmentation, dataset: digits}
"""
# 16 training images in batches of 8 would be 2 steps an epoch; 3 epochs with 4 steps each
REST = ("training: {epochs: 3, device: cpu, optimizer: {type: adamw, lr: 0.003}, checkpoint: {keep: 10EXTRA}}\n"
        "weighting: {type: pcgrad}\nreport: {formats: [json], plots: false}\n")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))


def _spec(tmp_path, extra: str = "", workers: int = 0):
    text = tiny_spec("pre", TASKS, REST.replace("EXTRA", extra)).replace("splits: {train: 16,", "splits: {train: 32,")
    if workers:
        text = text.replace("  batch_size: 8\n", f"  batch_size: 8\n  num_workers: {workers}\n")
    (tmp_path / "pre.yaml").write_text(text)
    (result,) = validate_file(tmp_path / "pre.yaml", [])
    assert result.errors == [], [d.format() for d in result.errors]
    return result


class SignalAt:
    """Sends the process a signal once step `step` is logged, as a scheduler would mid-run."""

    def __init__(self, step: int, signum: int = signal.SIGTERM):
        self.at, self.signum = step, signum

    def step(self, row: dict) -> None:
        if row["step"] == self.at:
            os.kill(os.getpid(), self.signum)


class CrashAt:
    """Fails the run once step `step` is logged, as a crash would (no checkpoint written for it)."""

    def __init__(self, step: int):
        self.at = step

    def step(self, row: dict) -> None:
        if row["step"] == self.at:
            raise RuntimeError(f"simulated crash at step {self.at}")


def _weights(run_dir):
    return torch.load(run_dir / "model.pt", weights_only=True)["model"]


def _same(a, b):
    assert a.report["tasks"] == b.report["tasks"]
    assert (a.run_dir / "metrics.jsonl").read_text() == (b.run_dir / "metrics.jsonl").read_text()
    wa, wb = _weights(a.run_dir), _weights(b.run_dir)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The run never stopped, to compare the others with."""
    folder = tmp_path_factory.mktemp("whole")
    os.environ["MTLSPEC_CACHE"] = str(folder / "cache")
    try:
        return run_result(_spec(folder), folder / "runs")
    finally:
        del os.environ["MTLSPEC_CACHE"]


@pytest.mark.parametrize("at", [2, 4, 7])  # within epoch 1, at the end of epoch 1 (its last step), within epoch 2
def test_a_stop_signal_checkpoints_the_step_and_the_resume_matches_a_run_never_stopped(whole, tmp_path, at):
    spec = _spec(tmp_path)
    with pytest.raises(KeyboardInterrupt, match=f"stopped by SIGTERM after step {at}") as stopped:
        run_result(spec, tmp_path / "runs", callbacks=[SignalAt(at)])
    assert "continue with: mtlspec run SPEC --resume" in str(stopped.value)
    (run_dir,) = (tmp_path / "runs" / "pre").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and f"after step {at}" in manifest["error"]
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names[-1] == ("epoch-0001.pt" if at == 4 else f"epoch-{(at - 1) // 4:04d}_step-{at:09d}.pt")
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in rows) == at  # nothing logged after the step it stopped at
    resumed = run_result(spec, tmp_path / "runs", resume_dir=run_dir)
    _same(resumed, whole)


def test_steps_between_checkpoints_and_a_crash_resume_to_the_same_run(tmp_path):
    """every_steps: 3 with a data-loader worker: a crash at step 8 resumes from the step-6
    checkpoint (within epoch 2) and ends as the run never stopped (with the same worker count: it
    sets the trainer's thread count, so float rounding); the signal handlers are the caller's
    again afterwards."""
    spec = _spec(tmp_path, extra=", every_steps: 3", workers=1)
    whole = run_result(spec, tmp_path / "whole")
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RuntimeError, match="simulated crash at step 8"):
        run_result(spec, tmp_path / "runs", callbacks=[CrashAt(8)])
    assert signal.getsignal(signal.SIGTERM) is before
    (run_dir,) = (tmp_path / "runs" / "pre").iterdir()
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["epoch-0000_step-000000003.pt", "epoch-0001.pt", "epoch-0001_step-000000006.pt"]  # step 4 ends epoch 1
    resumed = run_result(spec, tmp_path / "runs", resume_dir=run_dir)
    assert resumed.report["tasks"] == whole.report["tasks"]
    assert (resumed.run_dir / "metrics.jsonl").read_text() == (whole.run_dir / "metrics.jsonl").read_text()


def test_checkpoint_names_sort_in_training_order():
    from mtlspec.train.checkpoint import epoch_file, step_file

    names = [epoch_file(1), step_file(1, 950), step_file(1, 1010), epoch_file(2), step_file(2, 2000), epoch_file(10)]
    assert sorted(names) == names


def test_every_steps_is_refused_for_a_meta_run(tmp_path):
    from test_meta import SPEC

    (tmp_path / "m.yaml").write_text(SPEC.replace("ALGORITHM", "maml").replace("checkpoint: {every_epochs: 1, keep: 3}",
                                                                              "checkpoint: {every_epochs: 1, keep: 3, every_steps: 5}"))
    (result,) = validate_file(tmp_path / "m.yaml", [])
    assert any("every_steps" in str(d.path) for d in result.errors), result.errors


def test_sigterm_to_mtlspec_run_stops_with_a_resumable_checkpoint(tmp_path):
    """The real path: `mtlspec run` in its own process, SIGTERM once training has logged a step;
    exit 3 naming the checkpoint, then `--resume` finishes with the metrics.jsonl of a run never
    stopped."""
    import subprocess
    import sys
    import time

    spec = _spec(tmp_path)
    env = {**os.environ, "MTLSPEC_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "mtlspec", "run", str(tmp_path / "pre.yaml"), "--quiet"]
    process = subprocess.Popen([*command, "--out", str(tmp_path / "cut")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = None
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        metrics = next((tmp_path / "cut").rglob("metrics.jsonl"), None) if (tmp_path / "cut").is_dir() else None
        if metrics is not None and metrics.read_text().count('"kind": "step"') >= 1:
            process.send_signal(signal.SIGTERM)
            break
        time.sleep(0.02)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 3, (out, err)
    assert "stopped by SIGTERM after step" in err and "--resume" in err, err
    resumed = subprocess.run([*command, "--out", str(tmp_path / "cut"), "--resume", str(metrics.parent)], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    whole = run_result(spec, tmp_path / "whole")
    assert metrics.read_text() == (whole.run_dir / "metrics.jsonl").read_text()


def test_a_resume_within_an_epoch_keeps_the_random_draws_of_a_weighting_method(tmp_path):
    """RLW draws random weights every step: a resume from within an epoch must leave torch's
    generator exactly where the uninterrupted run has it (a data loader's pass once drew from it)."""
    spec = _spec(tmp_path)
    text = (tmp_path / "pre.yaml").read_text().replace("weighting: {type: pcgrad}", "weighting: {type: rlw}")
    (tmp_path / "pre.yaml").write_text(text)
    (spec,) = validate_file(tmp_path / "pre.yaml", [])
    whole = run_result(spec, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        run_result(spec, tmp_path / "runs", callbacks=[SignalAt(2)])
    (run_dir,) = (tmp_path / "runs" / "pre").iterdir()
    _same(run_result(spec, tmp_path / "runs", resume_dir=run_dir), whole)


def test_a_stopped_baseline_is_resumed_when_its_parent_spec_runs_again(tmp_path):
    """A single-task baseline stopped by a signal (a preempted sweep) is continued from its
    checkpoint when the multi-task spec runs again, not trained anew, and ends as one never stopped."""
    from mtlspec.baselines import single_task_spec
    from mtlspec.run import RunRequest, execute

    (tmp_path / "b.yaml").write_text(tiny_spec("base", TASKS, REST.replace("EXTRA", "") + "evaluation: {baseline: {type: single_task}}\n")
                                     .replace("splits: {train: 16,", "splits: {train: 32,"))
    (parent,) = validate_file(tmp_path / "b.yaml", [])
    assert parent.errors == [], parent.errors
    baseline = RunRequest(single_task_spec(parent.spec, "largest"), parent.file)
    whole = execute(baseline, tmp_path / "whole", log=lambda m: None)
    with pytest.raises(KeyboardInterrupt):
        execute(baseline, tmp_path / "runs", log=lambda m: None, callbacks=[SignalAt(5)])
    (stopped,) = (tmp_path / "runs" / "base.single.largest").iterdir()
    lines = []
    run_result(parent, tmp_path / "runs", log=lines.append)
    assert any(f"resuming {stopped}" in line for line in lines), lines
    assert json.loads((stopped / "manifest.json").read_text())["status"] == "finished"
    assert (stopped / "metrics.jsonl").read_text() == (whole.run_dir / "metrics.jsonl").read_text()
    assert len(list((tmp_path / "runs" / "base.single.largest").iterdir())) == 1  # not trained anew beside it


def test_persistent_workers_augment_each_epoch_as_the_main_process_does(tmp_path):
    """Data-loader workers live for the whole run (persistent) and never see set_epoch: the epoch
    travels with each index, so flips and augmentation of epoch 2 and 3 are those of a run
    without workers (metrics.jsonl byte for byte)."""
    overrides = ["data.hflip=0.5", "data.datasets.digits.augment={photometric: {}}", "training.threads=1"]  # (threads: results depend on them)
    logs = []
    for workers in (0, 2):
        _spec(tmp_path, workers=workers)  # writes pre.yaml
        (result,) = validate_file(tmp_path / "pre.yaml", overrides)
        assert result.errors == [], [d.format() for d in result.errors]
        logs.append((run_result(result, tmp_path / f"w{workers}").run_dir / "metrics.jsonl").read_text())
    assert logs[0] == logs[1]


def test_the_same_stop_delivered_twice_is_one_stop_and_a_later_one_stops_at_once(monkeypatch):
    """Ctrl-C reaches every process of the terminal's group and `run --nproc` passes the launcher's
    signals on: a repeat within REPEAT_SECONDS is the same request; a later one raises at once."""
    from mtlspec.train import preemption

    with preemption.graceful_stop(lambda message: None) as request:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        assert request.signal == "SIGTERM"
        monkeypatch.setattr(preemption, "REPEAT_SECONDS", 0.0)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
