"""Joint training across datasets with partial labels, and sample weights that reach the losses."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from mtlspec.data.weights import sample_weights
from mtlspec.language import validate_file
from conftest import run_result

pytestmark = pytest.mark.stack


class FakeSource:
    def __init__(self, labels):
        self._labels = labels

    def __len__(self):
        return len(self._labels)

    def labels(self, i):
        return {"y": self._labels[i]}


def test_inverse_frequency_and_effective_number_weights():
    tasks = {"t": SimpleNamespace(type="classification", dataset="d", label="y")}
    sources = {"d": FakeSource([0, 0, 0, 1])}
    w = sample_weights(SimpleNamespace(type="inverse_frequency", task="t"), tasks, sources)["d"]
    assert np.allclose(w, [2 / 3, 2 / 3, 2 / 3, 2])
    w = sample_weights(SimpleNamespace(type="effective_number", task="t", beta=0.9), tasks, sources)["d"]
    raw = np.array([0.1 / (1 - 0.9**3)] * 3 + [0.1 / (1 - 0.9)])
    assert np.allclose(w, raw / raw.mean())
    multi = {"t": SimpleNamespace(type="multilabel", dataset="d", label="y")}
    w = sample_weights(SimpleNamespace(type="inverse_frequency", task="t"), multi, {"d": FakeSource([[1, 0], [1, 1], None, [0, 0]])})["d"]
    raw = np.array([0.5, (0.5 + 1.0) / 2])
    # an unlabelled sample, and one with no positive label (no class to be rare), keep weight 1
    assert np.allclose(w[:2], raw / raw.mean()) and w[2] == 1.0 and w[3] == 1.0


def test_inverse_dataset_size_weights():
    w = sample_weights(SimpleNamespace(type="inverse_dataset_size"), {}, {"a": FakeSource([0] * 90), "b": FakeSource([0] * 10)})
    assert np.allclose(w["a"], 100 / 180) and np.allclose(w["b"], 5.0)
    assert np.isclose(w["a"].sum(), w["b"].sum())


def test_two_datasets_with_disjoint_tasks_train_together(tmp_path, monkeypatch):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    for cls, value in (("dark", 40), ("light", 220)):
        for i in range(12):
            path = tmp_path / "shades" / cls / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((20, 24, 3), value + i, np.uint8)).save(path)
    spec = tmp_path / "joint.yaml"
    spec.write_text("""\
name: joint
data:
  datasets:
    digits: {type: multidigits, canvas: 32, objects: {max: 2}, splits: {train: 32, val: 8, test: 8}}
    shades: {type: image_folder, root: shades}
  sampling: {type: round_robin}
  sample_weights: {type: inverse_dataset_size}
  batch_size: 8
  image_size: 32
  hflip: 0.5
tasks:
  seg: {type: segmentation, dataset: digits}
  shade: {type: classification, dataset: shades, label: class}
model: {backbone: {type: SmallCNN, channels: [8, 16]}, neck: {type: FPN, out_channels: 8}}
training: {epochs: 1, device: cpu}
evaluation: {split: val}
""")
    (result,) = validate_file(spec)
    assert result.errors == [] and result.warnings == []
    report = run_result(result, tmp_path / "runs", log=lambda m: None).report
    assert set(report["tasks"]) == {"seg", "shade"}
    assert 0 <= report["tasks"]["shade"]["metrics"]["accuracy"] <= 1
    manifest = json.loads(next((tmp_path / "runs").glob("joint/*/manifest.json")).read_text())
    assert set(manifest["dataset_fingerprints"]) == {"digits", "shades"}
