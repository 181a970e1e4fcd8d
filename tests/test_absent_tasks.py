"""A task with no labelled sample in a batch takes no part in the gradient methods' aggregation
(issue 15): its row would be zero, and MGDA's min-norm point or IMTL's equal projections are then
0, so the shared parameters would not move for that step. With a 40-sample dataset mixed into a
1,000-sample one, that was about half of the steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import run_result
from mtlspec.language import validate_file
from mtlspec.language.weighting import GRADIENT_METHODS
from mtlspec.weighting import METHODS

pytestmark = pytest.mark.stack

MIXED = """\
name: mixed
seed: 0
data:
  datasets:
    big: {{type: multidigits, canvas: 32, objects: {{max: 1}}, seed: 1, splits: {{train: {big}, val: 8, test: 8}}}}
    tiny: {{type: multidigits, canvas: 32, objects: {{max: 1}}, seed: 2, splits: {{train: {tiny}, val: 8, test: 8}}}}
  sampling: {{type: proportional}}
  batch_size: 16
  image_size: 32
tasks:
  seg: {{type: segmentation, dataset: big}}
  count: {{type: regression, dataset: tiny, label: count}}
model: {{backbone: {{type: SmallCNN, channels: [8, 16]}}, sharing: {{type: hps}}}}
training: {{epochs: 1, device: cpu, optimizer: {{type: adamw, lr: 3.0e-3}}}}
evaluation: {{split: val}}
report: {{formats: [json], plots: false}}
"""


def mixed(tmp_path, monkeypatch, big: int, tiny: int, method: str):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    path = tmp_path / f"mixed-{method}.yaml"
    path.write_text(MIXED.format(big=big, tiny=tiny))
    (result,) = validate_file(path, [f"weighting.type={method}"])
    assert result.errors == [], result.errors
    return result


@pytest.mark.parametrize("name", sorted(GRADIENT_METHODS))
def test_an_absent_task_leaves_the_others_update_as_the_method_gives_it_on_them_alone(name, tmp_path, monkeypatch):
    """A batch of the big dataset only: the method's shared gradient is the one it gives for the
    big task alone (a positive multiple of that task's own gradient), the absent task's own
    parameters get a zero gradient and its weight is reported as None."""
    from mtlspec.build import build
    from mtlspec.weighting.base import gradient_step

    result = mixed(tmp_path, monkeypatch, 32, 8, name)
    from mtlspec.data.dataset import collate

    built = build(result.spec)
    model, types = built.model, built.task_types
    data = built.dataset("train", train=True)
    big_only = [i for i in range(len(data)) if data[i]["has"]["seg"]][:6]
    batch = collate([data[i] for i in big_only], types)
    assert not batch["has"]["count"].any()

    def losses():
        outputs = model(batch["image"])
        return {t: types[t].loss(outputs[t], batch["targets"][t], batch["has"][t], batch["weight"][t]) for t in types}

    shared = [p for p in model.shared_parameters() if p.requires_grad]
    model.zero_grad()
    losses()["seg"].backward()
    alone = torch.cat([p.grad.flatten() for p in shared]).clone()
    model.zero_grad()
    method = METHODS[name](list(types), result.spec.weighting)
    weights = gradient_step(model, method, losses(), {t: bool(batch["has"][t].any()) for t in types})
    step = torch.cat([p.grad.flatten() for p in shared])
    assert weights["count"] is None
    assert all(p.grad is None for p in model.task_parameters("count"))  # the optimizer skips them: no momentum, no weight decay
    if name == "graddrop":  # sign dropout of one gradient keeps it or zeroes it, coordinate by coordinate
        kept = step != 0
        assert kept.any() and torch.allclose(step[kept], alone[kept], rtol=1e-5, atol=1e-8)
        return
    cosine = float(torch.nn.functional.cosine_similarity(step, alone, dim=0))
    assert cosine > 1 - 1e-5 and float(step.norm()) > 0, (cosine, float(step.norm()))


@pytest.mark.parametrize("name", ["mgda", "imtl"])
def test_a_small_dataset_mixed_into_a_large_one_trains_the_large_task_as_ew_does(name, tmp_path, monkeypatch):
    """40 samples of one task mixed into 1,000 of another, proportional sampling: about half the
    batches of 16 have no sample of the small task. On every step the big task gets a positive
    weight and the small one is reported absent where it was (before, MGDA put its whole weight on
    the absent task's zero gradient there: the big task's weight was 0 and the shared gradient
    too), and the big task's training loss falls over the epoch as far as under ew (within 5%)."""
    falls = {}
    for method in ("ew", name):
        outcome = run_result(mixed(tmp_path, monkeypatch, 1000, 40, method), tmp_path / method)
        rows = [json.loads(line) for line in (outcome.run_dir / "metrics.jsonl").read_text().splitlines()]
        steps = [r for r in rows if r["kind"] == "step"]
        absent = [r for r in steps if "count" in r.get("absent", [])]
        assert 0.3 * len(steps) < len(absent) < 0.8 * len(steps), len(absent)
        assert all(r["weight"]["count"] is None for r in absent)
        assert all(r["weight"]["seg"] > 0 for r in steps), [r["weight"] for r in steps if not r["weight"]["seg"] > 0][:3]
        losses = [r["loss"]["seg"] for r in steps]
        falls[method] = np.mean(losses[:5]) - np.mean(losses[-20:])
    assert falls[name] > 0.95 * falls["ew"], falls


@pytest.mark.parametrize("topology", ["hps", "cross_stitch", "mtan", "mmoe", "cgc", "ple"])
def test_every_topology_gives_own_parameters_their_task_gradient_and_shared_ones_the_combination(topology, tmp_path, monkeypatch):
    """Both tasks present, UPGrad: each task's own parameters get exactly that task's gradient (a
    gradient method weights only the shared part), and the shared parameters get sum_t w_t g_t with
    the weights the method reported, where g_t comes from a separate backward of each loss. Every
    parameter is either shared or one task's own: none is missed and none is counted twice."""
    from mtlspec.build import build
    from mtlspec.data.dataset import collate
    from mtlspec.weighting.base import gradient_step

    result = mixed(tmp_path, monkeypatch, 32, 8, "upgrad")
    path = tmp_path / "mixed-upgrad.yaml"
    (result,) = validate_file(path, ["weighting.type=upgrad", f"model.sharing={{type: {topology}}}"])
    assert result.errors == [], result.errors
    torch.manual_seed(0)
    built = build(result.spec)
    model, types = built.model, built.task_types
    data = built.dataset("train", train=True)
    seg = [i for i in range(len(data)) if data[i]["has"]["seg"]][:4]
    count = [i for i in range(len(data)) if data[i]["has"]["count"]][:4]
    batch = collate([data[i] for i in seg + count], types)

    def losses():
        outputs = model(batch["image"])
        return {t: types[t].loss(outputs[t], batch["targets"][t], batch["has"][t], batch["weight"][t]) for t in types}

    shared = [p for p in model.shared_parameters() if p.requires_grad]
    own = {t: [p for p in model.task_parameters(t) if p.requires_grad] for t in types}
    ids = [id(p) for p in shared] + [id(p) for t in types for p in own[t]]
    assert sorted(ids) == sorted({id(p) for p in model.parameters() if p.requires_grad}) and len(ids) == len(set(ids))
    separate = {}
    for t in types:
        model.zero_grad(set_to_none=True)
        losses()[t].backward()
        separate[t] = {id(p): (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for p in model.parameters()}
    model.zero_grad(set_to_none=True)
    method = METHODS["upgrad"](list(types), result.spec.weighting)
    weights = gradient_step(model, method, losses(), {t: True for t in types})
    assert all(weights[t] is not None and weights[t] > 0 for t in types), weights
    for t in types:
        for p in own[t]:
            torch.testing.assert_close(p.grad, separate[t][id(p)], rtol=1e-5, atol=1e-7)
    for p in shared:
        expected = sum(weights[t] * separate[t][id(p)] for t in types)
        torch.testing.assert_close(p.grad, expected.to(p.dtype), rtol=1e-4, atol=1e-7)
