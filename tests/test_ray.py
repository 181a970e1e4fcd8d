"""`run --ray`: a matrix's combinations and their single-task baselines as tasks on a local Ray
instance give the run directories a serial run gives, bit for bit (one thread each)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import tiny_spec

pytest.importorskip("ray")


def _weights(run_dir):
    return torch.load(run_dir / "model.pt", weights_only=True)["model"]


@pytest.mark.slow
def test_a_sweep_on_a_local_ray_instance_equals_the_serial_sweep(tmp_path):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(tiny_spec("sweep", "largest: {type: classification, dataset: digits, label: largest_digit}\n"
                                       "seg: {type: segmentation, dataset: digits}\n",
                              "training: {epochs: 1, device: cpu, threads: 1}\nreport: {formats: [json], plots: false}\n"
                              "evaluation: {baseline: {type: single_task}}\nmatrix:\n  weighting.type: [ew, uw]\n"))
    env = {**os.environ, "MTLSPEC_CACHE": str(tmp_path / "cache"), "RAY_AUTH_MODE": "disabled"}
    for how in (["--ray", "local"], []):
        out = tmp_path / ("ray" if how else "serial")
        done = subprocess.run([sys.executable, "-m", "mtlspec", "run", str(spec), "--quiet", "--out", str(out), *how],
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        if how:
            assert "--ray: training 2 single-task baseline(s) first, as Ray tasks" in done.stderr
    for variant in ("weighting=ew", "weighting=uw"):
        (a,), (b,) = ((tmp_path / side / "sweep" / variant).iterdir() for side in ("serial", "ray"))
        ra, rb = (json.loads((d / "report.json").read_text()) for d in (a, b))
        assert ra["tasks"] == rb["tasks"] and ra["delta_m"]["value"] == rb["delta_m"]["value"]
        wa, wb = _weights(a), _weights(b)
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (tmp_path / "ray" / "sweep" / "comparison.md").is_file()


def test_ray_refuses_jobs_and_resume_and_names_a_missing_ray(tmp_path, cli, monkeypatch):
    spec = tmp_path / "one.yaml"
    spec.write_text(tiny_spec("one", "largest: {type: classification, dataset: digits, label: largest_digit}\n", "training: {epochs: 1}\n"))
    done = cli("run", str(spec), "--ray", "local", "--jobs", "2")
    assert done.exit_code == 2 and "give --ray or --jobs, not both" in done.output
    done = cli("run", str(spec), "--ray", "local", "--resume", str(tmp_path))
    assert done.exit_code == 2 and "run it without --ray" in done.output
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as it does where Ray is not installed
    done = cli("run", str(spec), "--ray", "local", "--out", str(tmp_path / "runs"))
    assert done.exit_code == 2 and "--ray needs Ray" in done.output
