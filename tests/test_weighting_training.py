"""Every weighting method trains through the real trainer; per-task gradients are computed in one batched pass."""

from __future__ import annotations

import json

import pytest
import torch

from mtlspec.language import validate_file
from mtlspec.language.weighting import GRADIENT_METHODS
from mtlspec.weighting.jacobian import task_jacobian
from mtlspec.weighting import METHODS
from conftest import StopAfter, run_result

pytestmark = pytest.mark.stack

SPEC = """\
name: w
seed: 1
data:
  datasets:
    digits: {type: multidigits, canvas: 32, objects: {max: 2}, splits: {train: 32, val: 8, test: 8}}
  batch_size: 8
  image_size: 32
tasks:
  largest: {type: classification, dataset: digits, label: largest_digit}
  count: {type: regression, dataset: digits, label: count}
  seg: {type: segmentation, dataset: digits}
model: {backbone: {type: SmallCNN, channels: [8, 16]}, neck: {type: FPN, out_channels: 8}}
training: {epochs: 2, max_steps_per_epoch: 2, device: cpu}
evaluation: {split: val}
report: {formats: [json], plots: false}
"""


@pytest.fixture
def spec_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "w.yaml"
    path.write_text(SPEC)
    return path


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_trains_and_logs_its_weights(name, spec_file, tmp_path):
    (result,) = validate_file(spec_file, [f"weighting.type={name}"])
    assert result.errors == [] and result.warnings == []
    outcome = run_result(result, tmp_path / "runs", log=lambda m: None)
    rows = [json.loads(line) for line in (outcome.run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if r["kind"] == "step"]
    assert len(steps) == 4
    assert all(v == v and v < 1e6 for s in steps for v in s["loss"].values())
    logged = [w for s in steps for w in s["weight"].values()]
    if name == "graddrop":  # per coordinate: no linear combination of the task gradients to report
        assert all(w is None for w in logged)
    else:
        assert all(isinstance(w, float) for w in logged)


@pytest.mark.parametrize("name", ["famo", "gradvac", "uw", "dwa", "gradnorm", "nash_mtl"])
def test_stateful_methods_resume_exactly(name, spec_file, tmp_path):
    from mtlspec.train.loop import TrainingError

    (result,) = validate_file(spec_file, [f"weighting.type={name}"])
    whole = run_result(result, tmp_path / "a", log=lambda m: None).report
    with pytest.raises(TrainingError):
        run_result(result, tmp_path / "b", log=lambda m: None, callbacks=[StopAfter(1)])
    (stopped,) = [m.parent for m in (tmp_path / "b" / "w").rglob("manifest.json")]  # under w/weighting=<name>/
    resumed = run_result(result, tmp_path / "b", resume_dir=stopped, log=lambda m: None).report
    assert {t: v["metrics"] for t, v in resumed["tasks"].items()} == {t: v["metrics"] for t, v in whole["tasks"].items()}


def test_representation_space_aggregates_gradients_of_the_shared_representation(spec_file, tmp_path):
    """With space: representation the method sees one column per entry of the shared
    representation (not per shared parameter), and its direction is back-propagated through it:
    by the chain rule, the mean of the per-task representation gradients gives the shared
    parameters the gradient of the mean task loss."""
    from types import SimpleNamespace

    from mtlspec.build import build
    from mtlspec.data.dataset import collate
    from mtlspec.weighting.base import GradientAggregator, gradient_step

    class Mean(GradientAggregator):
        def aggregate(self, G, losses, active=None):
            self.seen = G.shape
            return G.mean(dim=0)

    (result,) = validate_file(spec_file, ["weighting.type=mgda", "weighting.space=representation"])
    torch.manual_seed(0)
    built = build(result.spec, spec_file.parent)
    model, task_types = built.model, built.task_types
    dataset = built.dataset("train")
    batch = collate([dataset[i] for i in range(8)], task_types)

    def losses():
        outputs = model(batch["image"])
        return {t: tt.loss(outputs[t], batch["targets"][t], batch["has"][t], batch["weight"][t]) for t, tt in task_types.items()}

    method = Mean(list(task_types), SimpleNamespace(space="representation"))
    gradient_step(model, method, losses())
    width = sum(r.numel() for r in model.topology.representation)
    assert method.seen == (3, width) and width != sum(p.numel() for p in model.shared_parameters())
    through_representation = [p.grad.clone() for p in model.shared_parameters()]
    model.zero_grad()
    (sum(losses().values()) / 3).backward()
    for ours, direct in zip(through_representation, [p.grad for p in model.shared_parameters()]):
        assert torch.allclose(ours, direct, rtol=1e-4, atol=1e-7)  # float32, two summation orders


def test_representation_space_trains(spec_file, tmp_path):
    for name in ("mgda", "graddrop", "upgrad"):
        (result,) = validate_file(spec_file, [f"weighting.type={name}", "weighting.space=representation"])
        assert result.errors == []
        report = run_result(result, tmp_path / name, log=lambda m: None).report
        steps = [json.loads(line) for line in next((tmp_path / name / "w").rglob("metrics.jsonl")).read_text().splitlines()]
        assert report["run"]["epochs_run"] == 2 and len([s for s in steps if s["kind"] == "step"]) == 4


def test_batched_jacobian_equals_one_backward_per_task():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3))
    x = torch.randn(5, 3, 8, 8)
    out = net(x)
    losses = torch.stack([out[:, 0].pow(2).mean(), out[:, 1].abs().mean(), torch.nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 0, 1]))])
    params = list(net.parameters())
    J = task_jacobian(losses, params)
    rows = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(losses[t], params, retain_graph=True)]) for t in range(3)]
    assert J.shape == (3, sum(p.numel() for p in params))
    assert torch.allclose(J, torch.stack(rows), atol=1e-6)


def test_gradient_methods_list_matches_the_implementations():
    from mtlspec.weighting import GradientAggregator

    assert {n for n, cls in METHODS.items() if issubclass(cls, GradientAggregator)} == set(GRADIENT_METHODS)


def _cosines_against_autograd(spec_file, overrides, wrt):
    """Build the spec, take one batch's per-task gradients one by one with autograd (with respect to
    `wrt(model)`: the shared parameters, or the shared representation), run the method's
    gradient_step, and return (logged cosines, the autograd rows by task, the task names)."""
    from mtlspec.build import build
    from mtlspec.data.dataset import collate
    from mtlspec.weighting.base import gradient_step

    (result,) = validate_file(spec_file, overrides)
    torch.manual_seed(0)
    built = build(result.spec, spec_file.parent)
    model, task_types = built.model, built.task_types
    batch = collate([built.dataset("train")[i] for i in range(8)], task_types)

    def losses():
        outputs = model(batch["image"])
        return {t: tt.loss(outputs[t], batch["targets"][t], batch["has"][t], batch["weight"][t]) for t, tt in task_types.items()}

    found = losses()
    shared = wrt(model)

    def row(loss):  # a tensor a task does not reach (an FPN level only detection uses) has gradient 0 for it
        grads = torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True)
        return torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for p, g in zip(shared, grads)]).double()

    rows = {t: row(loss) for t, loss in found.items()}
    gradient_step(model, built.weighting, losses())
    return built.weighting, rows, list(task_types)


def _assert_cosines(logged, rows):
    for pair, value in logged.items():
        a, b = pair.split("|")
        assert value == pytest.approx(float(torch.nn.functional.cosine_similarity(rows[a], rows[b], dim=0)), abs=1e-5)


@pytest.mark.parametrize("name", ["pcgrad", "db_mtl", "nash_mtl"])  # the last two aggregate the rows themselves: the Gramian is formed for the log
def test_logged_gradient_cosines_equal_those_of_the_task_gradients(spec_file, name):
    """Issue 21: the cosine between task gradients that metrics.jsonl logs per step equals the
    cosine of the per-task gradients of the shared parameters taken one by one with autograd.
    Tolerance 1e-5: float32 gradients; the log's Gramian sums float32 block products in float64."""
    method, rows, tasks = _cosines_against_autograd(spec_file, [f"weighting.type={name}"],
                                                    lambda model: [p for p in model.shared_parameters() if p.requires_grad])
    assert type(method).__name__.lower().replace("_", "") == name.replace("_", "")
    logged = method.gradient_cosines()
    assert set(logged) == {f"{a}|{b}" for i, a in enumerate(tasks) for b in tasks[i + 1:]}
    _assert_cosines(logged, rows)


def test_logged_cosines_in_representation_space_are_those_of_the_representation_gradients(spec_file):
    """With space: representation the cosines logged are between the task gradients of the shared
    representation (what the method combines), taken here one by one with autograd."""
    method, rows, _ = _cosines_against_autograd(spec_file, ["weighting.type=mgda", "weighting.space=representation"],
                                                lambda model: [r for r in model.topology.representation if r.requires_grad])
    logged = method.gradient_cosines()
    assert len(logged) == 3
    _assert_cosines(logged, rows)
