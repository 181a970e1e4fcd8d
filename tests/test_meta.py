"""Meta-learning (issue 18): the algorithms against their definitions and closed forms on a tiny
model in float64, episodes that never leak, BatchNorm statistics untouched as documented, and a
meta run plus `mtlspec adapt` end to end (adapting never changes the stored run)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from conftest import run_result
from mtlspec.language import validate_file
from mtlspec.meta.maml import MAML
from mtlspec.meta.reptile import Reptile

TASK = "t"


class Tiny(nn.Module):
    """Two layers and a head named like a compiled model's (`heads.<task>.`), in float64."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 5).double()
        self.heads = nn.ModuleDict({TASK: nn.Linear(5, 3).double()})

    def forward(self, x):
        return {TASK: self.heads[TASK](torch.tanh(self.body(x)))}


def _with_batchnorm(width: int = 6) -> nn.Module:
    """Linear, BatchNorm, tanh and a head named like a compiled model's, in float64: smooth (no ReLU
    kinks), so finite differences referee it, with batch statistics in every forward."""
    model = nn.Module()
    model.body = nn.Sequential(nn.Linear(4, width), nn.BatchNorm1d(width), nn.Tanh()).double()
    model.heads = nn.ModuleDict({TASK: nn.Linear(width, 3).double()})
    model.forward = lambda x: {TASK: model.heads[TASK](model.body(x))}
    return model


def _meta(steps=1, lr=0.3, adapt="all"):
    return SimpleNamespace(inner_steps=steps, inner_lr=lr, adapt=adapt)


def _episode(seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(6, 4, generator=g, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2]),
            torch.randn(9, 4, generator=g, dtype=torch.float64), torch.tensor([0, 1, 2] * 3))


def _flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _set(model, vector):
    offset = 0
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(vector[offset: offset + p.numel()].view_as(p))
            offset += p.numel()


def _query_loss_after_adaptation(model, theta, episode, steps, lr, names=None):
    """The MAML objective as a plain function of the flat parameters: inner gradient descent written
    out with torch.autograd on a fresh copy, then the query loss (what finite differences probe)."""
    copy = Tiny()
    _set(copy, theta)
    params = dict(copy.named_parameters())
    sx, sy, qx, qy = episode
    for _ in range(steps):
        loss = F.cross_entropy(torch.func.functional_call(copy, params, (sx,))[TASK], sy)
        chosen = [n for n in params if names is None or n in names]
        grads = torch.autograd.grad(loss, [params[n] for n in chosen])
        params = {**params, **{n: params[n] - lr * g for n, g in zip(chosen, grads)}}
    return F.cross_entropy(torch.func.functional_call(copy, params, (qx,))[TASK], qy)


@pytest.mark.parametrize("steps", [1, 3])
def test_maml_meta_gradient_equals_finite_differences(steps):
    """Central differences of the query loss after adaptation, in float64 with h = 1e-6: the
    truncation error is O(h^2) ~ 1e-12 and rounding ~ 1e-16/h ~ 1e-10, so 1e-7 relative is a wide margin."""
    torch.manual_seed(0)
    model = Tiny()
    episodes = [_episode(0), _episode(1)]
    MAML(_meta(steps)).meta_gradient(model, TASK, episodes)
    got = torch.cat([p.grad.flatten() for p in model.parameters()])
    theta, h = _flat(model), 1e-6
    expected = torch.zeros_like(theta)
    for i in range(len(theta)):
        e = torch.zeros_like(theta)
        e[i] = h
        expected[i] = sum((_query_loss_after_adaptation(model, theta + e, ep, steps, 0.3) - _query_loss_after_adaptation(model, theta - e, ep, steps, 0.3)).item()
                          for ep in episodes) / (2 * h * len(episodes))
    torch.testing.assert_close(got, expected, rtol=1e-7, atol=1e-9)


def test_first_order_maml_drops_exactly_the_second_order_term():
    """One inner step: MAML's gradient is (I - a H_s) g_q with H_s the support loss's Hessian at theta
    and g_q the query gradient at the adapted phi; first-order MAML is g_q alone."""
    torch.manual_seed(1)
    model, episode, lr = Tiny(), _episode(2), 0.3
    theta = _flat(model)
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]

    def unflat(v):
        out, offset = {}, 0
        for n, s in zip(names, shapes):
            out[n] = v[offset: offset + s.numel()].view(s)
            offset += s.numel()
        return out

    sx, sy, qx, qy = episode
    support = lambda v: F.cross_entropy(torch.func.functional_call(model, unflat(v), (sx,))[TASK], sy)  # noqa: E731
    query = lambda v: F.cross_entropy(torch.func.functional_call(model, unflat(v), (qx,))[TASK], qy)  # noqa: E731
    phi = theta - lr * torch.func.grad(support)(theta)
    g_q = torch.func.grad(query)(phi)
    hessian = torch.func.hessian(support)(theta)
    maml_closed = g_q - lr * hessian @ g_q

    MAML(_meta(1, lr), first_order=True).meta_gradient(model, TASK, [episode])
    first = torch.cat([p.grad.flatten() for p in model.parameters()])
    model.zero_grad(set_to_none=True)
    MAML(_meta(1, lr)).meta_gradient(model, TASK, [episode])
    second = torch.cat([p.grad.flatten() for p in model.parameters()])
    torch.testing.assert_close(first, g_q, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(second, maml_closed, rtol=1e-10, atol=1e-12)
    assert (second - first).abs().max() > 1e-4  # the term it drops is not negligible here


def test_anil_adapts_the_head_alone_and_still_trains_the_body():
    torch.manual_seed(2)
    model, episode = Tiny(), _episode(3)
    MAML(_meta(2, 0.3), adapt="heads").meta_gradient(model, TASK, [episode])
    got = torch.cat([p.grad.flatten() for p in model.parameters()])
    theta, h = _flat(model), 1e-6
    head = {f"heads.{TASK}.weight", f"heads.{TASK}.bias"}
    expected = torch.zeros_like(theta)
    for i in range(len(theta)):
        e = torch.zeros_like(theta)
        e[i] = h
        expected[i] = (_query_loss_after_adaptation(model, theta + e, episode, 2, 0.3, head) - _query_loss_after_adaptation(model, theta - e, episode, 2, 0.3, head)).item() / (2 * h)
    torch.testing.assert_close(got, expected, rtol=1e-7, atol=1e-9)
    assert model.body.weight.grad.abs().sum() > 0


def test_reptile_update_equals_its_definition():
    """With SGD at learning rate eps, one outer step is theta + eps (mean(phi_i) - theta), phi_i from
    plain gradient descent on each support set."""
    torch.manual_seed(3)
    model, episodes, eps, steps, lr = Tiny(), [_episode(4), _episode(5), _episode(6)], 0.25, 3, 0.2
    theta = _flat(model)
    phis = []
    for sx, sy, _, _ in episodes:
        copy = Tiny()
        _set(copy, theta)
        for _ in range(steps):
            copy.zero_grad()
            F.cross_entropy(copy(sx)[TASK], sy).backward()
            with torch.no_grad():
                for p in copy.parameters():
                    p -= lr * p.grad
        phis.append(_flat(copy))
    expected = theta + eps * (torch.stack(phis).mean(0) - theta)
    optimizer = torch.optim.SGD(model.parameters(), lr=eps)
    optimizer.zero_grad()
    Reptile(_meta(steps, lr)).meta_gradient(model, TASK, episodes)
    optimizer.step()
    torch.testing.assert_close(_flat(model), expected, rtol=1e-12, atol=1e-12)


def test_batchnorm_running_statistics_are_left_alone():
    """Documented: BatchNorm normalises each batch by its own statistics in the inner and outer
    loops, and meta-training never updates the running statistics."""
    torch.manual_seed(4)
    model = _with_batchnorm(5)
    model.train()
    before = {n: b.clone() for n, b in model.named_buffers()}
    MAML(_meta(2, 0.3)).meta_gradient(model, TASK, [_episode(7)])
    Reptile(_meta(2, 0.3)).meta_gradient(model, TASK, [_episode(8)])
    assert all(torch.equal(before[n], b) for n, b in model.named_buffers())


SPEC = """\
name: meta
seed: 1
data:
  datasets:
    digits: {type: multidigits, canvas: 24, objects: {min: 1, max: 1}, splits: {train: 200, val: 120, test: 150}}
  batch_size: 8
  image_size: 24
tasks:
  digit: {type: classification, dataset: digits, label: largest_digit}
model: {backbone: {type: SmallCNN, channels: [8, 16]}, neck: {type: none}, sharing: {type: hps}}
meta:
  algorithm: ALGORITHM
  task: digit
  episodes: {ways: 3, shots: 1, queries: 2}
  held_out_classes: [7, 8, 9]
  inner_steps: 2
  inner_lr: 0.1
  meta_batch: 2
  steps_per_epoch: 3
  eval_episodes: 4
training: {epochs: 2, device: cpu, optimizer: {type: adam, lr: 1.0e-3}, checkpoint: {every_epochs: 1, keep: 3}}
evaluation: {split: test, every_epochs: 1}
report: {formats: [json, md], plots: false}
"""


def test_episodes_never_leak_and_hold_classes_out(tmp_path, monkeypatch):
    from mtlspec.meta.fit import class_sets, label_reading
    from mtlspec.meta.episodes import EpisodeSampler
    from mtlspec.train.loop import seeded_build

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    (tmp_path / "m.yaml").write_text(SPEC.replace("ALGORITHM", "maml"))
    (result,) = validate_file(tmp_path / "m.yaml", [])
    built = seeded_build(result.spec, tmp_path)
    train = label_reading(built, "train")
    raw = {i: int(train[i]["targets"]["digit"]) for i in range(len(train))}
    training_classes, held = class_sets(result.spec.meta, list(range(10)))
    assert held == [7, 8, 9] and 7 not in training_classes
    sampler = EpisodeSampler(train, "digit", 3, 2, 3, seed=5, classes=training_classes)
    for key in range(30):
        ep = sampler.episode(0, key)
        assert not set(ep.support) & set(ep.query) and len(set(ep.support)) == 6 and len(set(ep.query)) == 9
        assert not set(ep.classes) & {7, 8, 9} and len(set(ep.classes)) == 3
        for i, label in zip(ep.support + ep.query, ep.support_labels + ep.query_labels):
            assert raw[i] == ep.classes[label]  # each sample is of the class its episode label stands for
        assert sampler.episode(0, key) == ep  # a function of (seed, key): the same after a resume
    with pytest.raises(Exception, match="need 4 classes"):
        EpisodeSampler(train, "digit", 4, 1, 1, seed=0, classes=[7, 8, 9])


@pytest.mark.parametrize("algorithm", ["maml", "reptile"])
def test_a_meta_run_reports_few_shot_accuracy_and_adapt_leaves_it_alone(algorithm, tmp_path, monkeypatch, cli):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.yaml").write_text(SPEC.replace("ALGORITHM", algorithm))
    (result,) = validate_file(tmp_path / "m.yaml", [])
    assert result.errors == [], result.errors
    run_dir = run_result(result, tmp_path / "runs").run_dir
    report = json.loads((run_dir / "report.json").read_text())
    few = report["few_shot"]["digit"]
    assert few["ways"] == 3 and few["episodes"] == 4 and 0 <= few["accuracy"] <= 1 and few["ci95"] >= 0
    assert report["tasks"]["digit"]["baseline"]["accuracy"] == pytest.approx(1 / 3)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "step"] == list(range(1, 7))
    assert "Few-shot" in (run_dir / "report.md").read_text()
    (tmp_path / "new.yaml").write_text(SPEC.split("model:")[0].replace("name: meta", "name: new"))
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in run_dir.rglob("*") if p.is_file()}
    out = tmp_path / "adapt.json"
    done = cli("adapt", str(run_dir), "--task", str(tmp_path / "new.yaml"), "--shots", "1", "--episodes", "5", "--classes", "7,8,9", "--out", str(out))
    assert done.exit_code == 0, done.output
    adapted = json.loads(out.read_text())
    assert adapted["classes"] == [7, 8, 9] and adapted["ways"] == 3 and adapted["head"] == "the run's meta-learned head"
    scratch = cli("adapt", str(run_dir), "--task", str(tmp_path / "new.yaml"), "--shots", "2", "--ways", "4", "--episodes", "3", "--scratch")
    assert scratch.exit_code == 0, scratch.output and "scratch" in scratch.output
    assert before == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in run_dir.rglob("*") if p.is_file()}  # the run is untouched
    for bad in (["--device", "gpu"], ["--lr", "0"], ["--classes", "7,x"]):  # usage errors, not bugs
        refused = cli("adapt", str(run_dir), "--task", str(tmp_path / "new.yaml"), *bad)
        assert refused.exit_code == 2, (bad, refused.output)
    zero = cli("adapt", str(run_dir), "--task", str(tmp_path / "new.yaml"), "--steps", "1", "--lr", "0.5", "--episodes", "2", "--classes", "7,8,9",
               "--out", str(tmp_path / "lr.json"))
    assert zero.exit_code == 0 and json.loads((tmp_path / "lr.json").read_text())["inner"] == {"steps": 1, "lr": 0.5, "adapts": "every parameter"}


def test_a_meta_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    from conftest import StopAfter
    from mtlspec.train.loop import TrainingError

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    (tmp_path / "m.yaml").write_text(SPEC.replace("ALGORITHM", "fomaml"))
    (result,) = validate_file(tmp_path / "m.yaml", [])
    whole = run_result(result, tmp_path / "a").run_dir
    with pytest.raises(TrainingError):
        run_result(result, tmp_path / "b", callbacks=[StopAfter(1)])
    (stopped,) = (tmp_path / "b" / "meta").iterdir()
    resumed = run_result(result, tmp_path / "b", resume_dir=stopped).run_dir
    a = torch.load(whole / "model.pt", weights_only=True)["model"]
    b = torch.load(resumed / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (whole / "metrics.jsonl").read_text() == (resumed / "metrics.jsonl").read_text()


def test_validate_names_what_a_meta_spec_gets_wrong(tmp_path):
    text = SPEC.replace("ALGORITHM", "maml").replace("  task: digit\n", "  task: digits\n").replace(
        "tasks:\n", "tasks:\n  depth: {type: depth, dataset: digits}\n")
    (tmp_path / "bad.yaml").write_text(text)
    (result,) = validate_file(tmp_path / "bad.yaml", [])
    assert any(f.code == "unknown-task" and "did you mean 'digit'" in f.message for f in result.errors), result.errors
    text = SPEC.replace("ALGORITHM", "maml").replace("held_out_classes: [7, 8, 9]", "held_out_classes: [8, 9]")
    (tmp_path / "few.yaml").write_text(text)
    (result,) = validate_file(tmp_path / "few.yaml", [])
    assert any(f.code == "incompatible" and "3-way evaluation episodes need 3 held-out classes" in f.message for f in result.errors)


def test_meta_adapt_names_parts_and_a_wrong_part_is_found_before_training(tmp_path, monkeypatch, cli):
    """`adapt: [heads, topology.trunk.1]` adapts the head and the last trunk stage only; a prefix
    that names nothing is a spec error at meta.adapt (validate --deep, and run's preflight)."""
    from mtlspec.meta.functional import adapted_names
    from mtlspec.train.loop import seeded_build

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    good = SPEC.replace("ALGORITHM", "maml").replace("  inner_steps: 2\n", "  inner_steps: 2\n  adapt: [heads, topology.trunk.1]\n")
    (tmp_path / "good.yaml").write_text(good)
    (result,) = validate_file(tmp_path / "good.yaml", [])
    assert result.errors == [], result.errors
    model = seeded_build(result.spec, tmp_path).model
    names = adapted_names(model, "digit", result.spec.meta.adapt)
    assert names and all(n.startswith(("heads.digit.", "topology.trunk.1.")) for n in names)
    assert any(n.startswith("heads.digit.") for n in names) and any(n.startswith("topology.trunk.1.") for n in names)
    (tmp_path / "bad.yaml").write_text(good.replace("topology.trunk.1]", "topology.trunk.7]"))
    deep = cli("validate", "--deep", str(tmp_path / "bad.yaml"))
    assert deep.exit_code == 1 and "meta.adapt" in deep.output and "topology.trunk.7" in deep.output, deep.output


def test_episodes_come_from_any_dataset_with_class_labels(tmp_path, monkeypatch):
    """An image folder (a sub-folder per class) meta-trains like multidigits."""
    from PIL import Image

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("val", 4), ("test", 4)):
        for c in range(4):
            folder = tmp_path / "shapes" / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray((rng.random((20, 20, 3)) * 60 + 50 * c).astype(np.uint8)).save(folder / f"{i}.png")
    spec = SPEC.replace("ALGORITHM", "reptile").replace(
        "digits: {type: multidigits, canvas: 24, objects: {min: 1, max: 1}, splits: {train: 200, val: 120, test: 150}}",
        "digits: {type: image_folder, root: shapes}").replace("  held_out_classes: [7, 8, 9]\n", "").replace(
        "label: largest_digit", "label: class").replace("episodes: {ways: 3, shots: 1, queries: 2}", "episodes: {ways: 2, shots: 1, queries: 3}")
    (tmp_path / "f.yaml").write_text(spec)
    (result,) = validate_file(tmp_path / "f.yaml", [])
    assert result.errors == [], result.errors
    report = run_result(result, tmp_path / "runs").report
    assert report["few_shot"]["digit"]["ways"] == 2 and 0 <= report["few_shot"]["digit"]["accuracy"] <= 1


def test_validate_counts_only_the_digits_a_dataset_shows_and_refuses_ignored_data_settings(tmp_path):
    text = SPEC.replace("ALGORITHM", "maml").replace("test: 150}}", "test: 150}, digits: [0, 1, 7, 8, 9]}")
    (tmp_path / "d.yaml").write_text(text)
    (result,) = validate_file(tmp_path / "d.yaml", [])
    assert any(f.code == "incompatible" and "leaves 2 for meta-training" in f.message for f in result.errors), result.errors
    (tmp_path / "h.yaml").write_text(text.replace("digits: [0, 1, 7, 8, 9]", "digits: [0, 1, 2, 3, 4, 5]"))
    (result,) = validate_file(tmp_path / "h.yaml", [])
    assert any(f.code == "out-of-range" and f.path == "meta.held_out_classes" for f in result.errors), result.errors
    (tmp_path / "b.yaml").write_text(SPEC.replace("ALGORITHM", "maml").replace("  batch_size: 8\n", "  batch_size: 8\n  bootstrap: 1\n"))
    (result,) = validate_file(tmp_path / "b.yaml", [])
    assert any(f.path == "data.bootstrap" and "no effect" in f.message for f in result.errors), result.errors


ATTRIBUTES = """\
name: attrs
seed: 2
data:
  datasets:
    digits: {type: multidigits, canvas: 32, objects: {min: 1, max: 3}, splits: {train: 160, val: 100, test: 100}}
  batch_size: 8
  image_size: 32
tasks:
  present: {type: multilabel, dataset: digits, label: present}
model: {backbone: {type: SmallCNN, channels: [8, 16]}, neck: {type: none}, sharing: {type: hps}}
meta:
  algorithm: maml
  task: present
  episodes: {ways: 2, shots: 2, queries: 3}
  held_out_classes: [8, 9]
  inner_steps: 1
  inner_lr: 0.1
  meta_batch: 2
  steps_per_epoch: 2
  eval_episodes: 4
training: {epochs: 1, device: cpu, optimizer: {type: adam, lr: 1.0e-3}}
evaluation: {split: test}
report: {formats: [json, md], plots: false}
"""


def test_attribute_episodes_are_binary_tasks_of_one_held_in_attribute_each(tmp_path, monkeypatch):
    """Issue 18: a task distribution built from a multilabel task. Each episode asks about one
    attribute (is digit d in the image?): every sample labelled with the group it is in (has d or
    not, in a random order per episode), no sample in both sets, held-out attributes never asked."""
    from mtlspec.meta.episodes import EpisodeSampler
    from mtlspec.meta.fit import class_sets, label_reading
    from mtlspec.train.loop import seeded_build

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    (tmp_path / "a.yaml").write_text(ATTRIBUTES)
    (result,) = validate_file(tmp_path / "a.yaml", [])
    assert result.errors == [], result.errors
    built = seeded_build(result.spec, tmp_path)
    train = label_reading(built, "train")
    shows = {i: set(np.flatnonzero(np.asarray(train[i]["targets"]["present"]) > 0.5).tolist()) for i in range(len(train))}
    training, held = class_sets(result.spec.meta, list(range(10)))
    sampler = EpisodeSampler(train, "present", 2, 2, 3, seed=4, classes=training)
    orders = set()
    for key in range(40):
        ep = sampler.episode(0, key)
        (attribute,) = set(ep.classes)
        assert attribute not in held and not set(ep.support) & set(ep.query) and len(ep.support) == 4 and len(ep.query) == 6
        for i, label in zip(ep.support + ep.query, ep.support_labels + ep.query_labels):
            assert (attribute in shows[i]) == (label == ep.has)
        orders.add(ep.has)
        assert sampler.episode(0, key) == ep
    assert orders == {0, 1}  # "has it" is label 0 in some episodes and 1 in others: nothing to memorise
    with pytest.raises(Exception, match="binary"):
        EpisodeSampler(train, "present", 3, 2, 3, seed=0)


def test_a_meta_run_over_attributes_trains_and_reports_few_shot_accuracy(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    (tmp_path / "a.yaml").write_text(ATTRIBUTES)
    (result,) = validate_file(tmp_path / "a.yaml", [])
    outcome = run_result(result, tmp_path / "runs")
    report = outcome.report
    few = report["few_shot"]["present"]
    assert few["ways"] == 2 and few["episodes"] == 4 and report["tasks"]["present"]["baseline"]["accuracy"] == 0.5
    assert set(report["tasks"]["present"]["metrics"]) == {"accuracy"}
    (tmp_path / "new.yaml").write_text(ATTRIBUTES.split("model:")[0].replace("name: attrs", "name: new"))
    out = tmp_path / "adapt.json"
    done = cli("adapt", str(outcome.run_dir), "--task", str(tmp_path / "new.yaml"), "--shots", "2", "--episodes", "3", "--classes", "8,9",
               "--out", str(out))
    assert done.exit_code == 0, done.output
    adapted = json.loads(out.read_text())
    assert adapted["ways"] == 2 and adapted["classes"] == [8, 9] and adapted["head"] == "the run's meta-learned head"
    # review of issue 18: the few-shot validation score is in the report; options and data that cannot work say so
    assert set(report["val"]["present"]) == {"accuracy"}
    wrong_ways = cli("adapt", str(outcome.run_dir), "--task", str(tmp_path / "new.yaml"), "--ways", "3")
    assert wrong_ways.exit_code == 2 and "2-way" in wrong_ways.output, wrong_ways.output
    missing = cli("adapt", str(outcome.run_dir), "--task", str(tmp_path / "new.yaml"), "--shots", "2", "--classes", "8,12")
    assert missing.exit_code == 3 and "[12]" in missing.output, missing.output  # a named class that cannot be used is not dropped
    predicted = cli("predict", str(outcome.run_dir), "test", "--out", str(tmp_path / "pred"))
    assert predicted.exit_code == 2 and "meta-learned run" in predicted.output and not (tmp_path / "pred").exists(), predicted.output
    (tmp_path / "one.yaml").write_text(ATTRIBUTES.replace("splits: {train: 160, val: 100, test: 100}}", "splits: {train: 160, val: 100, test: 100}, digits: [3]}")
                                       .replace("objects: {min: 1, max: 3}", "objects: {min: 1, max: 1}").replace("held_out_classes: [8, 9]", "held_out_classes: []"))
    (one,) = validate_file(tmp_path / "one.yaml", [])
    assert any("every image shows digit 3" in d.message for d in one.errors), one.errors
    (tmp_path / "bad.yaml").write_text(ATTRIBUTES.replace("ways: 2", "ways: 3").replace("held_out_classes: [8, 9]", "held_out_classes: [8, 11]"))
    (bad,) = validate_file(tmp_path / "bad.yaml", [])
    assert {(f.code, str(f.path).split(".")[-1]) for f in bad.errors} == {("incompatible", "ways"), ("out-of-range", "held_out_classes")}, bad.errors


def test_maml_meta_gradient_through_batchnorm_equals_finite_differences():
    """The second-order term through BatchNorm (batch statistics in the inner and outer loops), on a
    smooth float64 model (no ReLU kinks), against central differences of the mean query loss.
    Tolerance 1e-6 of the largest entry: h = 1e-6 leaves an O(h^2) error far below it."""
    torch.manual_seed(5)
    model = _with_batchnorm()
    episodes = [_episode(11), _episode(12)]
    MAML(_meta(2, 0.3)).meta_gradient(model, TASK, episodes)
    analytic = torch.cat([model.body[1].weight.grad, model.body[1].bias.grad, model.body[0].weight.grad.flatten()])
    params = dict(model.named_parameters())

    def loss(p):
        from mtlspec.meta.functional import adapted, logits

        return sum(float(F.cross_entropy(logits(model, adapted(model, p, list(p), TASK, sx, sy, 2, 0.3, create_graph=False), TASK, qx), qy))
                   for sx, sy, qx, qy in episodes) / len(episodes)

    numeric = []
    for name in ("body.1.weight", "body.1.bias", "body.0.weight"):
        for i in range(params[name].numel()):
            ends = []
            for sign in (1.0, -1.0):
                p = {n: v.detach().clone().requires_grad_(True) for n, v in params.items()}
                with torch.no_grad():
                    p[name].view(-1)[i] += sign * 1e-6
                ends.append(loss(p))
            numeric.append((ends[0] - ends[1]) / 2e-6)
    numeric = torch.tensor(numeric, dtype=torch.float64)
    assert float((analytic - numeric).abs().max() / numeric.abs().max()) < 1e-6


@pytest.mark.parametrize("algorithm", ["fomaml", "reptile"])
@pytest.mark.parametrize("adapt", ["all", "heads"])
def test_vectorized_first_order_algorithms_equal_the_looped_ones(algorithm, adapt):
    """meta.vectorize: the same update as the episode-by-episode loop, with BatchNorm in the body
    (float64; tolerance 1e-10: the same arithmetic batched in another order)."""
    from mtlspec.meta.vectorized import VectorizedFirstOrder

    def model_with_batchnorm():
        torch.manual_seed(6)
        return _with_batchnorm()

    episodes = [_episode(21), _episode(22), _episode(23)]
    meta = _meta(3, 0.2, adapt)
    looped_model, vmapped_model = model_with_batchnorm(), model_with_batchnorm()
    looped = (Reptile(meta) if algorithm == "reptile" else MAML(meta, first_order=True, adapt=adapt)).meta_gradient(looped_model, TASK, episodes)
    vmapped = VectorizedFirstOrder(meta, algorithm, adapt).meta_gradient(vmapped_model, TASK, episodes)
    assert vmapped[0] == pytest.approx(looped[0], abs=1e-10) and vmapped[1] == pytest.approx(looped[1], abs=1e-6)  # accuracy: a float32 mean
    for (name, a), b in zip(looped_model.named_parameters(), vmapped_model.parameters()):
        assert (a.grad is None) == (b.grad is None), name
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-10, atol=1e-12)
    assert torch.equal(looped_model.body[1].running_mean, vmapped_model.body[1].running_mean)  # left alone by both


def test_vectorize_is_refused_for_second_order_maml_and_runs_first_order(tmp_path, monkeypatch):
    (tmp_path / "v.yaml").write_text(SPEC.replace("ALGORITHM", "maml").replace("  inner_steps: 2\n", "  inner_steps: 2\n  vectorize: true\n"))
    (result,) = validate_file(tmp_path / "v.yaml", [])
    assert any(str(d.path).endswith("vectorize") and "first-order" in d.message for d in result.errors), result.errors
    (tmp_path / "f.yaml").write_text(SPEC.replace("ALGORITHM", "fomaml").replace("  inner_steps: 2\n", "  inner_steps: 2\n  vectorize: true\n"))
    (ok,) = validate_file(tmp_path / "f.yaml", [])
    assert ok.errors == []
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    report = run_result(ok, tmp_path / "runs").report  # the compiled CNN, BatchNorm2d included, end to end
    assert report["few_shot"]["digit"]["episodes"] == 4


def test_vectorized_few_shot_evaluation_scores_the_episodes_as_the_loop_does():
    """few_shot(vectorize=k): k episodes adapted at once, the same accuracies as one by one."""
    from mtlspec.meta.fit import few_shot

    torch.manual_seed(7)
    model = _with_batchnorm()

    class Sampler:
        ways, shots, queries = 3, 2, 3

        def episode(self, key, e):
            return e

        def tensors(self, e, device):
            return _episode(100 + e)

    looped = few_shot(model, Sampler(), TASK, 7, 3, 0.4, "all", torch.device("cpu"))
    for chunk in (3, 8):
        assert few_shot(model, Sampler(), TASK, 7, 3, 0.4, "all", torch.device("cpu"), vectorize=chunk) == looped
    assert 0 < looped["accuracy"] < 1  # the episodes differ: a test that could tell them apart
