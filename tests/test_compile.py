"""training.compile: the shared network through torch.compile trains as eager does (every weighting
kind: gradient methods backpropagate once per task through the compiled graph), and its run
directory holds the same files (parameter names unchanged)."""

from __future__ import annotations

import json

import pytest
import torch

from mtlspec.language import validate_file
from tests.conftest import run_result, tiny_spec

TASKS = "largest: {type: classification, dataset: digits, label: largest_digit}\nseg: {type: segmentation, dataset: digits}\n"


def _run(tmp_path, write, name, weighting, compile_section=""):
    text = tiny_spec(name, TASKS, f"weighting: {{type: {weighting}}}\ntraining:\n  epochs: 2\n  device: cpu\n  threads: 1\n{compile_section}"
                                  "report: {formats: [json], plots: false}\n")
    (result,) = validate_file(write(f"{name}.yaml", text))
    assert result.ok(), [e.format() for e in result.errors]
    outcome = run_result(result, tmp_path / "runs")
    steps = [json.loads(line) for line in (outcome.run_dir / "metrics.jsonl").read_text().splitlines() if '"kind": "step"' in line]
    return outcome.run_dir, [s["loss"] for s in steps]


@pytest.mark.parametrize("weighting", ["ew", "pcgrad"])
def test_a_compiled_shared_network_trains_as_eager_does(tmp_path, write, weighting):
    """aot_eager traces forward and backward through dynamo and AOTAutograd but runs eager kernels;
    1e-5 relative: AOTAutograd may decompose an operator into others that round differently on
    another CPU's kernels (here they agree to the last bit)."""
    from torch._dynamo.utils import counters

    eager_dir, eager = _run(tmp_path, write, "eager", weighting)
    torch._dynamo.reset()  # compile afresh (a cache from another test would serve this model's frames)
    counters.clear()
    compiled_dir, compiled = _run(tmp_path, write, "compiled", weighting, "  compile: {backend: aot_eager}\n")
    assert sum(counters["stats"].values()) > 0 or counters["frames"]["ok"] > 0  # dynamo did compile frames
    assert len(compiled) == len(eager) > 0
    for a, b in zip(eager, compiled):
        assert b == pytest.approx(a, rel=1e-5)
    eager_keys = set(torch.load(eager_dir / "model.pt", weights_only=True)["model"])
    assert set(torch.load(compiled_dir / "model.pt", weights_only=True)["model"]) == eager_keys  # no `_orig_mod.` prefix


@pytest.mark.slow
def test_inductor_compiles_the_shared_network_on_cpu(tmp_path, write):
    """Inductor's generated C++ kernels (about 40 s of compiling on 2 cores): fused operations
    round differently from eager, so the losses of two steps agree to 1e-3, not to the bit."""
    _, eager = _run(tmp_path, write, "eager", "ew")
    _, compiled = _run(tmp_path, write, "inductor", "ew", "  compile: {}\n")
    for a, b in zip(eager[:2], compiled[:2]):
        assert b == pytest.approx(a, rel=1e-3)
