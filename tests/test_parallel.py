"""Issue 20 (parallel sweeps): `mtlspec run SPEC --jobs N` trains a matrix's combinations in
parallel processes, each on its own share of the cores, with the same results as one after
another when the thread count is fixed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
