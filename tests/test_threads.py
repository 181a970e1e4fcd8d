"""`training.threads` (issue 19): the count is applied while the run trains, recorded in the
manifest, and the process's own count is restored afterwards (a process that runs several specs
starts each from the same state)."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import run_result, tiny_spec
from mtlspec.language import validate_file

pytestmark = pytest.mark.stack


class Threads:
    def __init__(self):
        self.seen = set()

    def step(self, row):
        self.seen.add(torch.get_num_threads())


@pytest.mark.parametrize("threads, workers", [(1, 0), ("auto", 1)])
def test_a_run_trains_with_its_thread_count_and_gives_the_process_its_own_back(threads, workers, tmp_path, monkeypatch):
    from mtlspec.train.setup import TORCH_DEFAULT_THREADS

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "t.yaml"
    path.write_text(tiny_spec("threads", "largest: {type: classification, dataset: digits, label: largest_digit}",
                              f"training: {{epochs: 1, device: cpu, threads: {threads}}}\nreport: {{formats: [json], plots: false}}\n")
                    .replace("  batch_size: 8\n", f"  batch_size: 8\n  num_workers: {workers}\n"))
    (result,) = validate_file(path, [])
    assert result.errors == [], result.errors
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        watch = Threads()
        outcome = run_result(result, tmp_path / "runs", callbacks=[watch])
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    expected = 1 if threads == 1 else max(1, min(TORCH_DEFAULT_THREADS, len(__import__("os").sched_getaffinity(0)) - workers))
    assert watch.seen == {expected}
    assert json.loads((outcome.run_dir / "manifest.json").read_text())["threads"] == expected
