"""Issue 20 (parallel sweeps): `mtlspec run SPEC --jobs N` trains a matrix's combinations in
parallel processes, each on its own share of the cores, with the same results as one after
another when the thread count is fixed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import tiny_spec

from mtlspec.parallel import core_shares


def test_core_shares_are_disjoint_and_cover_the_cores():
    assert core_shares([0, 1, 2, 3, 4], 2) == [[0, 1, 2], [3, 4]]
    assert core_shares([0, 1], 2) == [[0], [1]]
    assert core_shares([3], 2) == [[3], [3]]  # fewer cores than jobs: shared


def test_jobs_run_a_matrix_in_parallel_with_the_results_of_a_sequential_run(tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(tiny_spec("sweep", "largest: {type: classification, dataset: digits, label: largest_digit}\n",
                              "training: {epochs: 1, device: cpu, threads: 1}\nreport: {formats: [json], plots: false}\n"
                              "matrix:\n  weighting.type: [ew, uw]\n"))
    env = {**os.environ, "MTLSPEC_CACHE": str(tmp_path / "cache")}

    def run(out, *extra):
        done = subprocess.run([sys.executable, "-m", "mtlspec", "run", str(spec), "--quiet", "--out", str(tmp_path / out), *extra],
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done

    parallel = run("parallel", "--jobs", "2")
    assert "[sweep[weighting=uw]]" in parallel.stderr  # each job's lines say which combination they are about
    run("sequential")
    for variant in ("weighting=ew", "weighting=uw"):
        (a,) = (tmp_path / "parallel" / "sweep" / variant).iterdir()
        (b,) = (tmp_path / "sequential" / "sweep" / variant).iterdir()
        assert json.loads((a / "report.json").read_text())["tasks"] == json.loads((b / "report.json").read_text())["tasks"]
        assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()
    assert (tmp_path / "parallel" / "sweep" / "comparison.md").is_file()


def test_gpu_ids_follow_the_parents_visible_devices(monkeypatch):
    from mtlspec.parallel import gpu_ids

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert gpu_ids(2) == ["2", "3"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert gpu_ids(2) == ["0", "1"] and gpu_ids(0) == []


@pytest.mark.parametrize("jobs", ["2", "1"])
def test_a_stopped_sweep_starts_no_further_combination_and_its_jobs_stop_with_a_checkpoint(tmp_path, jobs):
    """SIGTERM to `mtlspec run` of four combinations, in parallel jobs or one after another, once a
    run has logged a step: the running ones stop at a step boundary with a checkpoint, the others
    never start, exit 3."""
    import signal
    import time

    spec = tmp_path / "sweep.yaml"
    spec.write_text(tiny_spec("sweep", "largest: {type: classification, dataset: digits, label: largest_digit}\n",
                              "training: {epochs: 40, device: cpu, threads: 1}\nreport: {formats: [json], plots: false}\n"
                              "matrix:\n  seed: [0, 1, 2, 3]\n"))
    env = {**os.environ, "MTLSPEC_CACHE": str(tmp_path / "cache")}
    process = subprocess.Popen([sys.executable, "-m", "mtlspec", "run", str(spec), "--quiet", "--out", str(tmp_path / "runs"), "--jobs", jobs],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        logs = list((tmp_path / "runs").rglob("metrics.jsonl")) if (tmp_path / "runs").is_dir() else []
        if any('"kind": "step"' in log.read_text() for log in logs):
            process.send_signal(signal.SIGTERM)
            break
        time.sleep(0.05)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 3, err
    assert "stopped by SIGTERM after step" in err, err
    if jobs == "2":
        assert "no further combination starts" in err and "not started" in err, err
    manifests = [json.loads(m.read_text()) for m in (tmp_path / "runs").rglob("manifest.json")]
    assert 1 <= len(manifests) <= int(jobs) and all(m["status"] == "interrupted" for m in manifests), manifests  # none finished
    # a job that had trained a step holds a checkpoint; with two jobs, the other may have been stopped
    # while it was still setting up (before its first step), which leaves nothing to checkpoint
    stepped = [m.parent for m in (tmp_path / "runs").rglob("manifest.json")
               if '"kind": "step"' in ((m.parent / "metrics.jsonl").read_text() if (m.parent / "metrics.jsonl").is_file() else "")]
    assert stepped and all(list((d / "checkpoints").iterdir()) for d in stepped)


def test_jobs_train_the_single_task_baselines_first_each_once(tmp_path):
    """A matrix of two combinations that share their single-task baselines (the weighting does not
    change a single-task spec): --jobs 2 trains the two baselines in parallel, once each, then the
    combinations, which reuse them and report their Δm."""
    spec = tmp_path / "sweep.yaml"
    spec.write_text(tiny_spec("sweep", "largest: {type: classification, dataset: digits, label: largest_digit}\n"
                                       "seg: {type: segmentation, dataset: digits}\n",
                              "training: {epochs: 1, device: cpu, threads: 1}\nreport: {formats: [json], plots: false}\n"
                              "evaluation: {baseline: {type: single_task}}\nmatrix:\n  weighting.type: [ew, uw]\n"))
    env = {**os.environ, "MTLSPEC_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "mtlspec", "run", str(spec), "--quiet", "--out", str(tmp_path / "runs"), "--jobs", "2"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "training 2 single-task baseline(s) first, 2 at a time" in done.stderr
    baselines = sorted(p.name for p in (tmp_path / "runs").iterdir() if ".single." in p.name)
    assert len(baselines) == 2 and all(len(list((tmp_path / "runs" / b).iterdir())) == 1 for b in baselines)
    for variant in ("weighting=ew", "weighting=uw"):
        (run_dir,) = (tmp_path / "runs" / "sweep" / variant).iterdir()
        assert json.loads((run_dir / "report.json").read_text()).get("delta_m") is not None
    assert done.stderr.count("reusing") >= 4  # each combination found both baselines done


def test_jobs_train_an_ensembles_members_in_parallel_and_the_ensemble_equals_the_serial_one(tmp_path):
    """An ensemble of three seeds with --jobs 2: the members train in job processes first, the
    ensemble then reuses them; its metrics equal those of the same ensemble trained one member after
    another (same machine, one thread each: the same bits)."""
    spec = tmp_path / "ens.yaml"
    spec.write_text(tiny_spec("ens", "largest: {type: classification, dataset: digits, label: largest_digit}\n",
                              "training: {epochs: 1, device: cpu, threads: 1}\nreport: {formats: [json], plots: false}\n"
                              "ensemble: {members: {type: seeds, seeds: [0, 1, 2]}, strategy: {type: mean}}\n"))
    env = {**os.environ, "MTLSPEC_CACHE": str(tmp_path / "cache")}
    reports = {}
    for jobs in ("2", "1"):
        out = tmp_path / f"runs{jobs}"
        done = subprocess.run([sys.executable, "-m", "mtlspec", "run", str(spec), "--quiet", "--out", str(out), "--jobs", jobs],
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        if jobs == "2":
            assert "training the ensemble's 3 members first, 2 at a time" in done.stderr
            assert done.stderr.count("reusing") >= 3, done.stderr  # the ensemble found every member done
        (ensemble_dir,) = (out / "ens").iterdir()
        reports[jobs] = json.loads((ensemble_dir / "ensemble.json").read_text())
        assert len([p for p in out.iterdir() if ".seed" in p.name]) == 3  # each member trained once
    assert reports["2"]["tasks"]["largest"] == reports["1"]["tasks"]["largest"]
    import torch

    for seed in range(3):  # each member's weights, bit for bit
        (a,), (b,) = ((tmp_path / f"runs{j}" / f"ens.seed{seed}").iterdir() for j in ("1", "2"))
        wa, wb = (torch.load(d / "model.pt", weights_only=True)["model"] for d in (a, b))
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
