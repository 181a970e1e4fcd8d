"""Every sharing topology: builds, feeds each task type the right features, learns, and routes
gradients as it claims (a task's loss reaches the shared parameters and its own, never another's)."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest
import torch

from mtlspec.model.backbones import small_cnn
from mtlspec.model.sharing import TOPOLOGIES

pytestmark = pytest.mark.stack

NECK = NS(type="FPN", out_channels=8)
SHARING = {
    "separate": NS(type="separate"),
    "hps": NS(type="hps", branch_at=1),
    "cross_stitch": NS(type="cross_stitch", init_self=0.9),
    "mtan": NS(type="mtan"),
    "mmoe": NS(type="mmoe", num_experts=3),
    "cgc": NS(type="cgc", num_shared_experts=2, num_task_experts=1),
    "ple": NS(type="ple", num_levels=2, num_shared_experts=1, num_task_experts=1),
    "soft": NS(type="soft", weight=1e-3),
}
TASKS = ["a", "b", "c"]


def build(name, backbone=None):
    torch.manual_seed(0)
    return TOPOLOGIES[name](backbone() if backbone else small_cnn([8, 16, 16]), NECK, TASKS, SHARING[name])


def transformer(kind):
    """A tiny PVTv2 or Swin through the same builder a spec uses."""
    from mtlspec.language.model import PVT, Swin
    from mtlspec.model.backbones import build_backbone

    spec = (PVT(type="PVTv2", embed_dims=8, num_layers=[1, 1, 1, 1], num_heads=[1, 1, 2, 2]) if kind == "PVTv2"
            else Swin(type="Swin", embed_dims=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4))
    return lambda: build_backbone(spec)


@pytest.mark.parametrize("kind", ["PVTv2", "Swin"])
@pytest.mark.parametrize("name", sorted(SHARING))
def test_transformer_backbones_work_under_every_topology(name, kind):
    """Their stages pass feature maps like any stage; Swin's output norms live in each neck, so
    every topology still accounts for every parameter and routes gradients as it claims."""
    topology = build(name, transformer(kind))
    feats = topology(torch.randn(2, 3, 64, 64))
    for t in TASKS:
        assert [tuple(p.shape) for p in feats[t]["pyramid"]] == [(2, 8, 16, 16), (2, 8, 8, 8), (2, 8, 4, 4), (2, 8, 2, 2)]
    shared = {id(p) for p in topology.shared_parameters()}
    own = {t: {id(p) for p in topology.task_parameters(t)} for t in TASKS}
    assert shared | own["a"] | own["b"] | own["c"] == {id(p) for p in topology.parameters()}
    (feats["a"]["vector"].sum() + sum(p.sum() for p in feats["a"]["pyramid"])).backward()
    reached = {id(p) for p in topology.parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert reached & own["a"] or not own["a"]
    assert not reached & (own["b"] | own["c"])
    topology.zero_grad()
    feats = topology(torch.randn(2, 3, 64, 64))
    sum(feats[t]["vector"].sum() + sum(p.sum() for p in feats[t]["pyramid"]) for t in TASKS).backward()
    unused = [n for n, p in topology.named_parameters() if p.grad is None]
    assert not unused, unused  # Swin's output norms live in the necks only: no copy of them is left unused


@pytest.mark.parametrize("name", sorted(SHARING))
def test_features_have_the_shapes_heads_need(name):
    topology = build(name)
    feats = topology(torch.randn(2, 3, 32, 32))
    assert set(feats) == set(TASKS)
    for t in TASKS:
        assert feats[t]["vector"].shape == (2, topology.vector_channels)
        assert [tuple(p.shape) for p in feats[t]["pyramid"]] == [(2, 8, 8, 8), (2, 8, 4, 4), (2, 8, 2, 2)]
    assert topology.strides == [4, 8, 16]


@pytest.mark.parametrize("name", sorted(SHARING))
def test_gradients_flow_as_the_topology_claims(name):
    topology = build(name)
    shared = {id(p) for p in topology.shared_parameters()}
    own = {t: {id(p) for p in topology.task_parameters(t)} for t in TASKS}
    everything = {id(p) for p in topology.parameters()}
    assert shared | own["a"] | own["b"] | own["c"] == everything  # every parameter is accounted for
    assert not (own["a"] & own["b"]) and not (own["a"] & shared)
    feats = topology(torch.randn(2, 3, 32, 32))
    (feats["a"]["vector"].sum() + sum(p.sum() for p in feats["a"]["pyramid"])).backward()
    reached = {id(p) for p in topology.parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert reached & own["a"], "task a's loss reaches none of its own parameters"
    assert not reached & (own["b"] | own["c"]), "task a's loss reached another task's private parameters"
    if shared:
        assert reached & shared, "task a's loss reaches no shared parameter"
    else:
        assert name in ("separate", "soft")


def test_cross_stitch_units_receive_gradients_from_both_tasks():
    for task in ("a", "b"):
        topology = build("cross_stitch")
        feats = topology(torch.randn(2, 3, 32, 32))
        feats[task]["vector"].sum().backward()
        unit = topology.units[-1].grad
        assert unit[TASKS.index(task)].abs().sum() > 0  # the row mixing into this task learns from its loss


@pytest.mark.parametrize("name", sorted(SHARING))
def test_a_few_steps_lower_the_loss(name):
    topology = build(name)
    head = torch.nn.ModuleDict({t: torch.nn.Linear(topology.vector_channels, 1) for t in TASKS})
    params = list(topology.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-2)
    x = torch.randn(8, 3, 32, 32)
    targets = {t: torch.randn(8) for t in TASKS}
    losses = []
    for _ in range(15):
        feats = topology(x)
        loss = sum(torch.nn.functional.mse_loss(head[t](feats[t]["vector"]).squeeze(1), targets[t]) for t in TASKS)
        loss = loss + topology.extra_loss()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_soft_sharing_penalty_pulls_networks_together():
    topology = build("soft")
    assert topology.extra_loss().item() == 0.0  # the towers start as copies
    with torch.no_grad():
        next(topology.towers["a"].parameters()).add_(1.0)
    assert topology.extra_loss().item() > 0


TINY = [
    "data.datasets.digits.canvas=32", "data.image_size=32", "data.batch_size=8",
    "data.datasets.digits.splits={train: 16, val: 8, test: 8}", "data.datasets.digits.objects.max=2",
    "training.epochs=1", "training.max_steps_per_epoch=2", "model.backbone.channels=[8, 16, 16]",
    "model.neck.out_channels=32", "report.plots=false",
]


@pytest.mark.parametrize("path", sorted((__import__("conftest").REPO / "specs").glob("sharing-*.yaml")), ids=lambda p: p.stem)
def test_every_topology_spec_validates_and_runs(path, tmp_path, monkeypatch):
    from conftest import run_result
    from mtlspec.language import validate_file

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    overrides = TINY + (["model.sharing.num_experts=2"] if "mmoe" in path.stem else [])
    results = validate_file(path, overrides)
    if path.stem == "sharing-sweep":
        assert len(results) == 8
        results = results[:0]  # each topology runs from its own spec; the sweep is only validated here
    for result in results:
        assert result.errors == [] and result.warnings == [], [d.format() for d in result.diagnostics]
        report = run_result(result, tmp_path / "runs", log=lambda m: None).report
        assert set(report["tasks"]) == {"largest", "present", "boxes", "seg", "depth"}


def test_graph_accounts_for_every_parameter_and_mac(cli, tmp_path, monkeypatch):
    import json

    from conftest import REPO

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    for spec in ("quickstart.yaml", "sharing-mtan.yaml", "sharing-ple.yaml"):
        args = ["graph", str(REPO / "specs" / spec), "--format", "json"] + [a for o in TINY for a in ("--set", o)]
        result = cli(*args)
        assert result.exit_code == 0, result.output
        root = json.loads(result.output)
        shared, *tasks = root["children"]
        assert shared["name"] == "shared" and [t["name"] for t in tasks] == ["largest", "present", "boxes", "seg", "depth"]
        assert root["params"] == shared["params"] + sum(t["params"] for t in tasks)
        assert root["macs"] == shared["macs"] + sum(t["macs"] for t in tasks) > 0
        assert shared["params"] == sum(c["params"] for c in shared["children"])
        for task in tasks:
            assert task["params"] == sum(c["params"] for c in task["children"])
            assert task["macs"] == sum(c["macs"] for c in task["children"])
