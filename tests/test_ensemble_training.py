"""Boosting, stacking and `specs` members end to end on tiny settings: what each member was
trained on (weights, residual targets, held-out folds), checked against closed forms."""

import json
import math

import numpy as np
import pytest
import torch
import yaml
from conftest import dataset_of, ensemble_of, tiny_spec, train_sources

from mtlspec.language import validate_file

pytestmark = pytest.mark.stack

BOOST_TASKS = """
largest: {type: classification, dataset: digits, label: largest_digit}
total: {type: regression, dataset: digits, label: digit_sum}
depth: {type: depth, dataset: digits}
"""


def _logs():
    lines: list[str] = []
    return lines, lines.append


def test_boosting_reweights_samples_and_fits_residuals(tmp_path, monkeypatch):
    from mtlspec.ensemble.members import load_member, member_predictions

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    spec = tmp_path / "boost.yaml"
    spec.write_text(tiny_spec("boost", BOOST_TASKS, """training: {epochs: 1, device: cpu}
report: {plots: false}
ensemble: {strategy: {type: boosting, n_members: 3, learning_rate: 0.5}}
"""))
    (result,) = validate_file(spec)
    assert result.errors == [] and result.warnings == []
    folder, report = ensemble_of(result, tmp_path / "runs", log=lambda m: None)
    largest, total = report["tasks"]["largest"], report["tasks"]["total"]
    assert largest["combined_by"] == "AdaBoost SAMME" and total["combined_by"] == "gradient boosting on residuals"
    assert report["tasks"]["depth"]["combined_by"] == "mean"
    members = len(report["members"])
    assert len(largest["boosting"]["member_weights"]) == members and len(largest["boosting"]["staged"]) == members
    assert largest["boosting"]["staged"][-1] == largest["metrics"] and total["boosting"]["staged"][-1] == total["metrics"]
    assert "## Boosting: largest" in (folder / "ensemble.md").read_text()
    assert "<h2>Boosting: total</h2>" in (folder / "ensemble.html").read_text()  # report.plots is off: no chart
    made_by = json.loads((folder / "manifest.json").read_text())
    assert made_by["kind"] == "ensemble" and made_by["members"] == report["members"] and (folder / "spec.resolved.yaml").is_file()

    # member 2 trained on the weights and residuals member 1 left, by the closed forms
    runs = sorted((tmp_path / "runs").glob("boost.boost[01]/*"))
    specs = [result.spec.__class__.model_validate(yaml.safe_load((r / "spec.resolved.yaml").read_text())) for r in runs]
    first = np.load(specs[0].data.sample_overrides)
    second = np.load(specs[1].data.sample_overrides)
    assert np.allclose(first["weight/largest/digits"], 1.0)
    train = dataset_of(result.spec, "train", train=False)
    y_cls = np.array([train[i]["targets"]["largest"] for i in range(len(train))])
    y_sum = np.array([train[i]["targets"]["total"] for i in range(len(train))])
    assert np.allclose(first["target/total/digits"], y_sum - y_sum.mean(), atol=1e-5)
    from mtlspec.train.checkpoint import latest

    member = load_member(runs[0], latest(runs[0] / "checkpoints"), train_sources(result.spec, tmp_path))
    outputs = [(b, p) for b, p in member_predictions(result.spec, [member], "train", tmp_path)]
    predicted = torch.cat([p["largest"][0].argmax(dim=1) for _, p in outputs]).numpy()
    fitted = torch.cat([p["total"][0] for _, p in outputs]).numpy()
    wrong = predicted != y_cls
    err = wrong.mean()
    alpha = 0.5 * (math.log((1 - err) / err) + math.log(9))
    expected = np.exp(alpha * wrong)
    assert np.allclose(second["weight/largest/digits"], expected / expected.mean(), rtol=1e-5)
    assert largest["boosting"]["member_weights"][0] == pytest.approx(alpha)
    assert np.allclose(second["target/total/digits"], y_sum - y_sum.mean() - 0.5 * fitted, atol=1e-4)

    # the member's training data carries them: per-task weight and replaced target, other tasks untouched
    member_train = dataset_of(specs[1], "train", train=True)
    sample = member_train[3]
    assert sample["weight"]["largest"] == pytest.approx(float(second["weight/largest/digits"][3]))
    assert sample["weight"]["depth"] == 1.0 and sample["targets"]["total"] == pytest.approx(float(second["target/total/digits"][3]))

    # compare takes the ensemble directory as a row beside its members
    from typer.testing import CliRunner

    from mtlspec.cli import app

    table = CliRunner().invoke(app, ["compare", str(folder), str(runs[0]), "--format", "json", "--fail-if", "total.mae > 1000"])
    assert table.exit_code == 0, table.output
    rows = {r["label"]: r for r in json.loads(table.output)["rows"]}
    assert rows["boost (ensemble of 3)"]["metrics"]["total"] == total["metrics"]
    assert not any("fingerprints" in note for note in json.loads(table.output)["notes"])

    lines, log = _logs()
    ensemble_of(result, tmp_path / "runs", log=log)
    assert sum("reusing" in line for line in lines) == members and not any("training" in line for line in lines)


def test_stacking_fits_its_meta_model_on_out_of_fold_predictions(tmp_path, monkeypatch):
    from mtlspec.data.build import fold_ids
    from mtlspec.ensemble.members import given_members, load_member, member_predictions
    from mtlspec.ensemble.out_of_fold import out_of_fold
    from mtlspec.run import train_or_reuse
    from mtlspec.train.checkpoint import latest

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    spec = tmp_path / "stack.yaml"
    spec.write_text(tiny_spec("stack", """
largest: {type: classification, dataset: digits, label: largest_digit}
present: {type: multilabel, dataset: digits, label: present}
total: {type: regression, dataset: digits, label: digit_sum}
seg: {type: segmentation, dataset: digits}
""", """training: {epochs: 1, device: cpu}
report: {plots: false}
ensemble:
  members: {type: seeds, seeds: [0, 1]}
  strategy: {type: stacking, folds: 2}
  per_task: {seg: {type: mean}}
"""))
    (result,) = validate_file(spec)
    assert result.errors == [] and result.warnings == []
    _, report = ensemble_of(result, tmp_path / "runs", log=lambda m: None)
    assert report["tasks"]["largest"]["combined_by"].startswith("stacking: softmax")
    assert report["tasks"]["present"]["stacking"]["meta_model"] == "Logistic"
    assert report["tasks"]["total"]["stacking"] == {"fit_on": "out_of_fold", "folds": 2, "meta_model": "Ridge"}
    assert report["tasks"]["seg"]["combined_by"] == "mean"

    # each fold copy trained without its fold ...
    folds = fold_ids(16, 2)
    fold_runs = {}
    for seed in (0, 1):
        for k in (0, 1):
            (run,) = (tmp_path / "runs" / f"stack.seed{seed}.fold{k}of2").iterdir()
            fold_spec = result.spec.__class__.model_validate(yaml.safe_load((run / "spec.resolved.yaml").read_text()))
            trained_on = {dataset_of(fold_spec, "train", train=True)[i]["meta"]["index"] for i in range(8)}
            assert trained_on == set(np.flatnonzero(folds != k).tolist())
            fold_runs[seed, k] = run
    # ... and each training sample's out-of-fold prediction is that of the copy that never saw it
    sources = train_sources(result.spec, tmp_path)
    chosen = given_members(result.spec, str(spec), tmp_path / "runs", lambda m: None, train_or_reuse)
    members = [load_member(d, c, sources) for d, c in chosen]
    oof, targets, labelled = out_of_fold(result.spec, members, 2, ["largest", "total"], str(spec), tmp_path / "runs", sources, lambda m: None, train_or_reuse)
    assert labelled["largest"].all() and len(targets["total"]) == 16
    for k in (0, 1):
        copy = load_member(fold_runs[1, k], latest(fold_runs[1, k] / "checkpoints"), sources)
        alone = torch.cat([p["largest"][0] for _, p in member_predictions(result.spec, [copy], "train", tmp_path, ["largest"])]).numpy()
        assert np.allclose(oof["largest"][1][folds == k], alone[folds == k], atol=1e-6)
        assert not np.allclose(oof["largest"][1][folds != k], alone[folds != k], atol=1e-6)


def test_spec_members_are_trained_from_their_own_files_and_checked(tmp_path, monkeypatch, cli):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    tasks = "largest: {type: classification, dataset: digits, label: largest_digit}\nseg: {type: segmentation, dataset: digits}\n"
    rest = "training: {epochs: 1, device: cpu}\nreport: {plots: false}\n"
    (tmp_path / "a.yaml").write_text(tiny_spec("a", tasks, rest + "weighting: {type: uw}\n"))
    (tmp_path / "b.yaml").write_text(tiny_spec("b", tasks, rest))
    (tmp_path / "ens.yaml").write_text(tiny_spec("ens", tasks, rest + "ensemble: {members: {type: specs, paths: [a.yaml, b.yaml]}}\n"))
    first = cli("run", str(tmp_path / "ens.yaml"), "--quiet", "--out", str(tmp_path / "runs"))
    assert first.exit_code == 0, first.output
    (folder,) = (tmp_path / "runs" / "ens").glob("ensemble-*")
    report = json.loads((folder / "ensemble.json").read_text())
    assert [m.split("/runs/")[1].split("/")[0] for m in report["members"]] == ["a", "b"]
    (a_run,) = (tmp_path / "runs" / "a").iterdir()
    assert yaml.safe_load((a_run / "spec.resolved.yaml").read_text())["weighting"]["type"] == "uw"

    (tmp_path / "c.yaml").write_text(tiny_spec("c", "largest: {type: classification, dataset: digits, label: largest_digit}", rest))
    (tmp_path / "d.yaml").write_text(tiny_spec("d", tasks, rest + "weighting: {type: nope}\n"))
    (tmp_path / "bad.yaml").write_text(tiny_spec("bad", tasks, rest + "ensemble:\n  members: {type: specs, paths: [a.yaml, missing.yaml, c.yaml, d.yaml]}\n"))
    out = cli("validate", str(tmp_path / "bad.yaml"), "--format", "json")
    assert out.exit_code == 1
    found = {(d["code"], d["file"].split("/")[-1], d["line"]) for d in json.loads(out.output)["results"][0]["diagnostics"]}
    line = 1 + tiny_spec("bad", tasks, rest).count("\n") + 1
    assert ("missing-file", "bad.yaml", line) in found and ("incompatible", "bad.yaml", line) in found
    assert ("invalid", "bad.yaml", line) in found and any(code == "unknown-type" and f == "d.yaml" for code, f, _ in found)

    # run directories: checked by their resolved spec; one not there yet is only a warning
    only_largest = "largest: {type: classification, dataset: digits, label: largest_digit}"
    (tmp_path / "runs.yaml").write_text(tiny_spec("r", only_largest, rest + f"ensemble:\n  members: {{type: runs, paths: [{a_run}, runs/later]}}\n"))
    out = json.loads(cli("validate", str(tmp_path / "runs.yaml"), "--format", "json").output)["results"][0]["diagnostics"]
    assert {(d["code"], d["severity"], d["path"]) for d in out} == {
        ("incompatible", "error", "ensemble.members.paths.0"), ("missing-file", "warning", "ensemble.members.paths.1")}


@pytest.mark.parametrize("name", ["ensemble-boosting", "ensemble-stacking"])
def test_the_shipped_boosting_and_stacking_specs_run_on_tiny_settings(name, tmp_path, monkeypatch):
    from conftest import REPO
    from test_topologies import TINY


    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    (result,) = validate_file(REPO / "specs" / f"{name}.yaml", TINY)
    assert result.errors == [] and result.warnings == []
    folder, report = ensemble_of(result, tmp_path / "runs", log=lambda m: None)
    assert (folder / "ensemble.md").is_file() and report["tasks"]["boxes"]["members"]
    combined = {t: v["combined_by"] for t, v in report["tasks"].items()}
    if name == "ensemble-boosting":
        assert combined["largest"] == "AdaBoost SAMME" and combined["total"] == "gradient boosting on residuals"
    else:
        assert combined["largest"].startswith("stacking") and combined["present"].startswith("stacking") and combined["seg"] == "mean"


def test_members_of_other_seeds_train_on_the_ensembles_own_splits(tmp_path, monkeypatch, cli):
    """multidigits draws its canvases and its disjoint scan pools from the seed: a member trained
    with seed 1 on seed 1's data would hold scans of seed 0's test split. Members pin the data seed."""
    from mtlspec.data.build import build_sources
    from mtlspec.ensemble.members import derived, member_specs

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    spec = tmp_path / "s.yaml"
    spec.write_text(tiny_spec("s", BOOST_TASKS, "ensemble: {members: {type: seeds, seeds: [0, 3]}}\n"))
    (result,) = validate_file(spec)
    own = {split: build_sources(result.spec, split)["digits"].fingerprint() for split in ("train", "test")}
    for member in member_specs(result.spec) + [derived(result.spec, "b", seed=5)]:
        assert member.data_seed() == 0 and member.seed in (0, 3, 5)
        assert {split: build_sources(member, split)["digits"].fingerprint() for split in ("train", "test")} == own
    unpinned = result.spec.model_copy(update={"seed": 3})
    assert build_sources(unpinned, "train")["digits"].fingerprint() != own["train"]

    (tmp_path / "other.yaml").write_text(tiny_spec("other", BOOST_TASKS, "seed: 4\n"))
    (tmp_path / "ens.yaml").write_text(tiny_spec("ens", BOOST_TASKS, "ensemble: {members: {type: specs, paths: [s.yaml, other.yaml]}}\n"))
    out = cli("validate", str(tmp_path / "ens.yaml"))
    assert out.exit_code == 1 and "generates and splits its datasets with seed 4" in out.output


def _informative(member_predictions):
    """Member predictions with real signal: each member's probabilities are a softmax of a noisy
    one-hot of the true class (fixed by member, split and sample). One-epoch members predict
    nearly the same probabilities for every image, and a meta-model fitted on constant features
    is ill-conditioned: two correct solvers then differ (issue 13)."""
    def wrapped(spec, members, split, data_root, tasks=None):
        for batch, predictions in member_predictions(spec, members, split, data_root, tasks):
            if "largest" in predictions:
                y = batch["targets"]["largest"]
                noisy = []
                for m, _ in enumerate(predictions["largest"]):
                    noise = torch.tensor(np.stack([np.random.default_rng([m, len(split), meta["index"]]).normal(size=10) for meta in batch["meta"]]))
                    noisy.append(torch.softmax((1.5 + m) * torch.nn.functional.one_hot(y, 10).double() + noise, dim=1).float())
                predictions = {**predictions, "largest": noisy}
            yield batch, predictions

    return wrapped


def test_stacking_on_the_validation_split_trains_no_fold_copies_and_matches_logistic_regression(tmp_path, monkeypatch):
    from sklearn.linear_model import LogisticRegression

    from mtlspec.ensemble import members as members_module, runner
    from mtlspec.ensemble.members import given_members, load_member
    from mtlspec.run import train_or_reuse

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    predictions = _informative(members_module.member_predictions)
    monkeypatch.setattr(runner, "member_predictions", predictions)
    spec = tmp_path / "sv.yaml"
    spec.write_text(tiny_spec("sv", "largest: {type: classification, dataset: digits, label: largest_digit}", """training: {epochs: 1, device: cpu}
report: {plots: false}
ensemble:
  members: {type: seeds, seeds: [0, 1]}
  strategy: {type: stacking, fit_on: validation, alpha: 0.5}
""", test=24).replace("val: 8", "val: 24"))
    (result,) = validate_file(spec)
    _, report = ensemble_of(result, tmp_path / "runs", log=lambda m: None)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["sv", "sv.seed0", "sv.seed1"]  # no fold copies
    assert report["tasks"]["largest"]["stacking"] == {"fit_on": "validation", "meta_model": "Softmax"}
    sources = train_sources(result.spec, tmp_path)
    members = [load_member(d, c, sources) for d, c in given_members(result.spec, str(spec), tmp_path / "runs", lambda m: None, train_or_reuse)]

    def features(split):
        batches = list(predictions(result.spec, members, split, tmp_path))
        X = np.concatenate([torch.cat([p["largest"][i] for _, p in batches]).numpy() for i in range(2)], axis=1)
        return X, torch.cat([b["targets"]["largest"] for b, _ in batches]).numpy()

    X_val, y_val = features("val")
    X_test, y_test = features("test")
    meta = runner._stackers(result.spec, members, str(spec), tmp_path / "runs", sources, print, train_or_reuse)["largest"]
    ours = meta.predict([X_test[:, :10], X_test[:, 10:]])
    # The same L2-penalised softmax regression (C = 1/alpha, unpenalised intercept), strictly convex
    # and on features that carry the label: both solvers reach its one minimum, far inside 1e-5.
    # scikit-learn's meta-model knows only the classes present in the validation targets; ours
    # gives the others probability 0.
    # Both in float64: scikit-learn keeps float32 input in float32, where its solver stops ~1e-5 away.
    X_val, X_test = X_val.astype(np.float64), X_test.astype(np.float64)
    oracle = LogisticRegression(C=2.0, tol=1e-12, max_iter=100000).fit(X_val, y_val)
    assert len(oracle.classes_) > 2 and oracle.score(X_val, y_val) > 0.5  # features with signal: not the class priors
    assert np.allclose(ours[:, oracle.classes_], oracle.predict_proba(X_test), atol=1e-5)
    assert np.allclose(np.delete(ours, oracle.classes_, axis=1), 0.0)
    # and the report scores exactly these probabilities (as float32, like every prediction)
    expected = (ours.astype(np.float32).argmax(axis=1) == y_test).mean()
    assert report["tasks"]["largest"]["metrics"]["accuracy"] == pytest.approx(expected)
