"""Ensembles: voting against scikit-learn's VotingClassifier, box fusion on hand-made boxes, and an
ensemble spec end to end (members trained once, reused, reported beside the ensemble)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import dataset_of, ensemble_of, tiny_spec
from mtlspec.ensemble.box_fusion import fuse
from mtlspec.ensemble.combine import vote, weighted_mean

sklearn = pytest.importorskip("sklearn")
from sklearn.base import BaseEstimator, ClassifierMixin  # noqa: E402
from sklearn.ensemble import VotingClassifier  # noqa: E402


class FixedMember(ClassifierMixin, BaseEstimator):
    """A 'trained member' whose predictions are given: X holds sample indices."""

    def __init__(self, probs=None):
        self.probs = probs

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        return self.probs[np.asarray(X).ravel().astype(int)]

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


@pytest.mark.parametrize("weights", [None, [1.0, 2.0, 0.5]])
def test_soft_and_hard_voting_match_scikit_learn(weights):
    rng = np.random.default_rng(0)
    N, K = 200, 5
    members = [rng.dirichlet(np.ones(K), size=N) for _ in range(3)]
    X, y = np.arange(N).reshape(-1, 1), np.arange(N) % K
    estimators = [(f"m{i}", FixedMember(p)) for i, p in enumerate(members)]
    soft = VotingClassifier(estimators, voting="soft", weights=weights).fit(X, y)
    hard = VotingClassifier(estimators, voting="hard", weights=weights).fit(X, y)
    ours_soft = weighted_mean([torch.tensor(p) for p in members], weights).argmax(dim=1).numpy()
    ours_hard = vote([torch.tensor(p).argmax(dim=1) for p in members], K, weights).numpy()
    assert np.array_equal(ours_soft, soft.predict(X))
    assert np.array_equal(ours_hard, hard.predict(X))
    assert np.allclose(weighted_mean([torch.tensor(p) for p in members], weights).numpy(), soft.predict_proba(X))


def test_weighted_boxes_fusion_on_hand_made_boxes():
    a = {"boxes": torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60]]), "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([1, 1])}
    b = {"boxes": torch.tensor([[1.0, 1, 11, 11], [0, 0, 10, 10]]), "scores": torch.tensor([0.6, 0.7]), "labels": torch.tensor([1, 2])}
    out = fuse([a, b], iou=0.55, method="wbf")
    order = out["scores"].argsort(descending=True)
    boxes, scores, labels = out["boxes"][order], out["scores"][order], out["labels"][order]
    # the two label-1 boxes overlap (IoU 0.68): fused by score weights 0.9 and 0.6; score mean * 2/2
    assert torch.allclose(boxes[0], torch.tensor([0.4, 0.4, 10.4, 10.4]))
    assert scores[0].item() == pytest.approx(0.75) and labels[0] == 1
    # a box only one of two members found keeps its place, its score halved; labels never mix
    assert {(tuple(b.tolist()), round(s.item(), 4), int(l)) for b, s, l in zip(boxes[1:], scores[1:], labels[1:])} == {
        ((50.0, 50.0, 60.0, 60.0), 0.4, 1), ((0.0, 0.0, 10.0, 10.0), 0.35, 2)}
    merged = fuse([a, b], iou=0.55, method="nms_merge")
    assert len(merged["boxes"]) == 3 and merged["scores"].max().item() == pytest.approx(0.9)
    assert torch.allclose(merged["boxes"][merged["scores"].argmax()], torch.tensor([0.0, 0, 10, 10]))
    assert len(fuse([a, b], skip_score=0.85)["boxes"]) == 1


@pytest.mark.stack
def test_an_ensemble_spec_trains_members_once_and_reports_them(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    spec = tmp_path / "e.yaml"
    spec.write_text(tiny_spec("ens", """
largest: {type: classification, dataset: digits, label: largest_digit}
boxes:
  type: detection
  dataset: digits
  head: {type: FCOSHead, stacked_convs: 1, feat_channels: 8, norm_cfg: {type: GN, num_groups: 4, requires_grad: true}}
depth: {type: depth, dataset: digits}
""", """training: {epochs: 1, device: cpu}
report: {plots: false}
ensemble:
  members: {type: seeds, seeds: [0, 1]}
  strategy: {type: mean}
  per_task:
    largest: {type: vote}
    boxes: {type: box_fusion}
""", test=16))
    first = cli("run", str(spec), "--quiet", "--out", str(tmp_path / "runs"))
    assert first.exit_code == 0, first.output
    (folder,) = (tmp_path / "runs" / "ens").glob("ensemble-*")
    report = json.loads((folder / "ensemble.json").read_text())
    assert len(report["members"]) == 2 and set(report["tasks"]) == {"largest", "boxes", "depth"}
    assert [report["tasks"][t]["strategy"] for t in ("largest", "boxes", "depth")] == ["vote", "box_fusion", "mean"]
    for task, t in report["tasks"].items():
        for metric, value in t["metrics"].items():
            values = [m[metric] for m in t["members"]]
            sign = 1 if t["higher_is_better"][metric] else -1
            best = max(values) if sign > 0 else min(values)
            assert t["gain"][metric]["over_best_member"] == pytest.approx(sign * (value - best))
    assert "| largest | vote | accuracy |" in (folder / "ensemble.md").read_text()
    members_before = sorted(p.name for p in (tmp_path / "runs").iterdir())
    again = cli("run", str(spec), "--quiet", "--out", str(tmp_path / "runs"))
    assert again.exit_code == 0 and sorted(p.name for p in (tmp_path / "runs").iterdir()) == members_before
    assert len(list((tmp_path / "runs" / "ens.seed0").iterdir())) == 1  # reused, not retrained


@pytest.mark.stack
def test_the_shipped_ensemble_spec_runs_on_tiny_settings(tmp_path, monkeypatch):
    from conftest import REPO
    from mtlspec.language import validate_file
    from test_topologies import TINY

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    (result,) = validate_file(REPO / "specs" / "ensemble-seeds.yaml", TINY)
    assert result.errors == [] and result.warnings == []
    folder, report = ensemble_of(result, tmp_path / "runs", log=lambda m: None)
    assert len(report["members"]) == 3 and report["tasks"]["boxes"]["strategy"] == "box_fusion"
    assert (folder / "ensemble.md").is_file()


@pytest.mark.stack
def test_snapshot_ensemble_takes_a_member_per_learning_rate_cycle(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    spec = tmp_path / "s.yaml"
    spec.write_text(tiny_spec("snap", """
largest: {type: classification, dataset: digits, label: largest_digit}
seg: {type: segmentation, dataset: digits}
""", """training: {epochs: 3, device: cpu, scheduler: {type: cyclic, cycles: 3}}
report: {plots: false}
ensemble: {strategy: {type: snapshot}}
"""))
    result = cli("run", str(spec), "--quiet", "--out", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "runs" / "snap.cyclic").iterdir()
    snapshots = sorted(p.name for p in (run / "checkpoints").glob("snapshot-*.pt"))
    assert snapshots == ["snapshot-001.pt", "snapshot-002.pt", "snapshot-003.pt"]  # 6 steps, 3 cycles of 2
    (folder,) = (tmp_path / "runs" / "snap").glob("ensemble-*")
    report = json.loads((folder / "ensemble.json").read_text())
    assert [Path(m).name for m in report["members"]] == snapshots
    assert report["tasks"]["largest"]["strategy"] == "snapshot" and len(report["tasks"]["seg"]["members"]) == 3
    # the last snapshot is the final model: its metrics are the single run's
    final = json.loads((run / "report.json").read_text())
    assert report["tasks"]["largest"]["members"][-1] == final["tasks"]["largest"]["metrics"]


def test_fitted_mixture_weights_minimise_the_validation_nll():
    from scipy.optimize import minimize

    from mtlspec.ensemble.fit_weights import least_squares_weights, mixture_weights

    rng = np.random.default_rng(3)
    L = torch.tensor(rng.uniform(0.05, 1.0, size=(300, 3)))
    w = np.array(mixture_weights(L))

    def nll(v):
        return -np.log(L.numpy() @ v).mean()

    best = minimize(nll, np.full(3, 1 / 3), bounds=[(0, 1)] * 3, constraints={"type": "eq", "fun": lambda v: v.sum() - 1}, method="SLSQP",
                    options={"ftol": 1e-14})
    assert w.sum() == pytest.approx(1.0) and nll(w) <= best.fun + 1e-7
    perfect = torch.tensor([[0.9, 0.1]] * 50)  # member 0 always gives the truth 0.9, member 1 gives 0.1
    assert mixture_weights(perfect)[0] == pytest.approx(1.0, abs=1e-6)
    e1, e2 = torch.randn(100, dtype=torch.float64), torch.randn(100, dtype=torch.float64)
    a = float(torch.clamp(e2 @ (e2 - e1) / ((e1 - e2) @ (e1 - e2)), 0, 1))
    assert least_squares_weights([e1, e2]) == pytest.approx([a, 1 - a])


@pytest.mark.stack
def test_weighted_mean_fits_its_weights_on_the_validation_split(tmp_path, monkeypatch):
    from mtlspec.language import validate_file

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    spec = tmp_path / "w.yaml"
    spec.write_text(tiny_spec("fit", """
largest: {type: classification, dataset: digits, label: largest_digit}
count: {type: regression, dataset: digits, label: count}
seg: {type: segmentation, dataset: digits}
""", """training: {epochs: 1, device: cpu}
report: {plots: false}
ensemble:
  members: {type: seeds, seeds: [0, 1]}
  strategy: {type: weighted_mean}
  per_task:
    count: {type: weighted_mean, weights: [3, 1]}
"""))
    (result,) = validate_file(spec)
    assert result.errors == [] and result.warnings == []
    _, report = ensemble_of(result, tmp_path / "runs", log=lambda m: None)
    for task in ("largest", "seg"):
        weights = report["tasks"][task]["fitted_weights"]
        assert len(weights) == 2 and sum(weights) == pytest.approx(1.0) and min(weights) >= 0
    assert report["tasks"]["count"]["fitted_weights"] is None  # given weights are used as written


def test_bagging_mean_and_out_of_bag_match_scikit_learn():
    """scikit-learn's BaggingClassifier over members with given outputs: its predict_proba is the
    mean of the members', and its oob_decision_function_ the mean over the members that did not
    draw each sample; ours, fed the same draws, agrees."""
    from sklearn.ensemble import BaggingClassifier

    from mtlspec.ensemble.combine import oob_mean

    rng = np.random.default_rng(1)
    N, K, M = 120, 4, 6
    members = [rng.dirichlet(np.ones(K), size=N) for _ in range(M)]
    X, y = np.arange(N).reshape(-1, 1), np.arange(N) % K

    class Member(FixedMember):
        pass

    bag = BaggingClassifier(Member(np.zeros((N, K))), n_estimators=M, random_state=0).fit(X, y)
    for estimator, probs in zip(bag.estimators_, members):
        estimator.probs = probs  # the fitted members' outputs are the ones we choose
    in_bag = np.zeros((N, M), bool)
    for m, samples in enumerate(bag.estimators_samples_):
        in_bag[samples, m] = True
    expected_oob = np.zeros((N, K))
    for m, probs in enumerate(members):
        expected_oob[~in_bag[:, m]] += probs[~in_bag[:, m]]
    some = (~in_bag).any(axis=1)  # samples every member drew have no out-of-bag prediction
    expected_oob[some] /= expected_oob[some].sum(axis=1, keepdims=True)
    ours = oob_mean([torch.tensor(p) for p in members], torch.tensor(~in_bag)).numpy()
    assert some.sum() > 0.9 * N and np.allclose(ours[some], expected_oob[some])
    assert np.allclose(weighted_mean([torch.tensor(p) for p in members]).numpy(), bag.predict_proba(X))


@pytest.mark.stack
def test_bagging_trains_members_on_bootstrap_samples_and_reports_out_of_bag(tmp_path, monkeypatch):
    from mtlspec.data.build import bootstrap_indices
    from mtlspec.language import validate_file

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    spec = tmp_path / "bag.yaml"
    spec.write_text(tiny_spec("bag", """
largest: {type: classification, dataset: digits, label: largest_digit}
depth: {type: depth, dataset: digits}
""", """training: {epochs: 1, device: cpu}
report: {plots: false}
ensemble: {strategy: {type: bagging, n_members: 3}}
"""))
    (result,) = validate_file(spec)
    assert result.errors == [] and result.warnings == []
    _, report = ensemble_of(result, tmp_path / "runs", log=lambda m: None)
    assert len(report["members"]) == 3
    assert set(report["tasks"]["largest"]["out_of_bag"]) == {"accuracy", "macro_f1"}
    member = validate_file(spec, ["data.bootstrap=1", "ensemble=null"])[0].spec
    train = dataset_of(member, "train", train=True)
    drawn = bootstrap_indices(16, 1)
    assert len(train) == 16 and len(set(drawn.tolist())) < 16  # with replacement: some drawn twice
    assert train.sources["digits"].record(0)["meta"]["index"] == int(drawn[0])
