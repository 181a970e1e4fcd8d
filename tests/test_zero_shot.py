"""Zero-shot classification: each method against its paper's definition or closed form, the metric
against Xian et al.'s definitions (and a brute-force sweep for AUSUC), the class table's errors,
validate's rules, and a run end to end (unseen images held out, the table carried in model.pt)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from mtlspec.data.formats.class_attributes import ClassAttributes, TableProblem, read_class_attributes
from mtlspec.language import validate_file
from mtlspec.tasks import zero_shot_methods as methods
from mtlspec.tasks.zero_shot_metric import ZeroShotMetric, area, harmonic, seen_unseen_curve
from tests.conftest import dataset_of, run_result, tiny_spec


def test_eszsl_minimised_by_minibatch_terms_is_its_closed_form():
    """The per-sample ESZSL terms plus the per-sample penalty, minimised on fixed features, give
    Romera-Paredes & Torr's closed form V = (X X^T + g I)^-1 X Y S^T (S S^T + l I)^-1 with the paper's
    gamma = N x the per-sample one. A strictly convex quadratic (features and classes well spread),
    solved to machine precision by L-BFGS in float64: 1e-6 bounds the solver's stopping tolerance."""
    generator = torch.Generator().manual_seed(0)
    d, a, z, n = 6, 5, 4, 40
    x = torch.randn(d, n, generator=generator, dtype=torch.float64)  # paper: X (d, m)
    s = torch.randn(a, z, generator=generator, dtype=torch.float64)  # paper: S (a, z)
    target = torch.arange(n) % z
    y = -torch.ones(n, z, dtype=torch.float64)
    y[torch.arange(n), target] = 1.0
    gamma, lam = 0.7, 0.3
    expected = methods.eszsl_closed_form(x, y, s, gamma, lam)  # (d, a)

    weight = torch.zeros(a, d, dtype=torch.float64, requires_grad=True)  # torch's Linear weight: V^T
    optimizer = torch.optim.LBFGS([weight], lr=1, max_iter=500, tolerance_grad=1e-14, tolerance_change=1e-16, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        embedded = x.T @ weight.T  # (n, a): each image's z = x^T V
        loss = methods.eszsl_loss(embedded, s.T, target, lam).double().mean() + methods.eszsl_penalty(weight, s.T, gamma / n, lam).double()
        loss.backward()
        return loss

    for _ in range(5):
        optimizer.step(objective)
    assert torch.allclose(weight.detach().T, expected, atol=1e-6, rtol=1e-6)


def test_dap_posterior_on_a_hand_made_example():
    """Lampert et al. eq. 2: sum over attributes of log p(a_m = s_km | x) - log p(a_m = s_km), the
    priors the mean over the training classes. Two attributes, classes [1,0], [0,1] (seen), [1,1]
    (unseen): priors 1/2, 1/2; posteriors p = 0.9, 0.2."""
    attributes = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    seen = torch.tensor([True, True, False])
    logits = torch.logit(torch.tensor([[0.9, 0.2]]))
    got = methods.dap_scores(logits, attributes, seen)[0]
    half = math.log(0.5)
    expected = [math.log(0.9) + math.log(0.8) - 2 * half, math.log(0.1) + math.log(0.2) - 2 * half, math.log(0.9) + math.log(0.2) - 2 * half]
    assert got.tolist() == pytest.approx(expected, abs=1e-5)  # float32 logs of these numbers
    assert int(got.argmax()) == 0
    # the priors are the seen classes' alone: with the unseen class counted they would be 2/3
    assert methods.dap_scores(logits, attributes, torch.tensor([True, True, True]))[0].tolist() != pytest.approx(expected, abs=1e-3)


def test_dap_binarises_a_continuous_table_at_each_attributes_mean():
    values = torch.tensor([[0.1, 5.0], [0.9, 1.0], [0.6, 3.5]])
    seen = torch.tensor([True, True, False])
    assert methods.class_embeddings(values, "dap", seen).tolist() == [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
    bilinear = methods.class_embeddings(values, "ale", seen)
    assert torch.allclose(bilinear.norm(dim=1), torch.ones(3))
    # centred and scaled on the seen classes alone: their two rows are opposite
    assert torch.allclose(bilinear[0], -bilinear[1])


def test_ale_and_sje_losses_on_hand_made_scores():
    """ALE (Akata et al. 2016): beta_r / r x the sum of the r margin violations, beta_r = 1 + ... + 1/r;
    SJE (Akata et al. 2015): max_k (Delta + F(x, k)) - F(x, y)."""
    scores = torch.tensor([[2.0, 1.5, 0.0], [2.0, 1.5, 0.0], [0.0, -2.0, 3.0]])
    target = torch.tensor([0, 2, 2])
    # row 0: violation 0.5 (class 1), r = 1; row 1: violations 3 and 2.5, r = 2, beta = 1.5; row 2: none
    assert methods.ale_loss(scores, target).tolist() == pytest.approx([0.5, 1.5 / 2 * 5.5, 0.0])
    assert methods.sje_loss(scores, target).tolist() == pytest.approx([0.5, 3.0, 0.0])


def _metric(probs, target, seen, calibration=0.0):
    metric = ZeroShotMetric(torch.tensor(seen), calibration)
    metric.update(torch.tensor(probs), torch.tensor(target), torch.ones(len(target), dtype=torch.bool))
    return metric, metric.compute()


def test_gzsl_u_s_and_h_are_per_class_accuracies_and_their_harmonic_mean():
    """Xian et al. eqs. 5-6 on four classes (0, 1 seen; 2, 3 unseen) with unequal class counts, so
    per-class and per-sample accuracies differ."""
    seen = [True, True, False, False]
    rows = [  # (true class, probabilities)
        (0, [0.7, 0.1, 0.1, 0.1]), (0, [0.7, 0.1, 0.1, 0.1]), (0, [0.1, 0.7, 0.1, 0.1]),  # class 0: 2/3
        (1, [0.1, 0.7, 0.1, 0.1]),  # class 1: 1/1
        (2, [0.6, 0.1, 0.3, 0.0]), (2, [0.1, 0.1, 0.7, 0.1]),  # class 2: 1/2 overall, 2/2 among unseen
        (3, [0.1, 0.6, 0.2, 0.1]), (3, [0.1, 0.1, 0.1, 0.7]), (3, [0.1, 0.1, 0.7, 0.1]), (3, [0.1, 0.1, 0.1, 0.7]),  # class 3: 2/4, 2/4
    ]
    _, got = _metric([p for _, p in rows], [t for t, _ in rows], seen)
    s, u = (2 / 3 + 1) / 2, (1 / 2 + 2 / 4) / 2
    assert got["gzsl_s"] == pytest.approx(s) and got["gzsl_u"] == pytest.approx(u)
    assert got["gzsl_h"] == pytest.approx(2 * u * s / (u + s))
    assert got["zsl_top1"] == pytest.approx((2 / 2 + 2 / 4) / 2)
    assert harmonic(0.0, 0.0) == 0.0


def test_ausuc_equals_a_brute_force_sweep_of_the_seen_class_penalty():
    """Chao et al.'s curve: for each penalty on the seen classes' log-probabilities, u and s as
    per-class accuracies; the exact breakpoints against a dense grid (the grid's area converges to
    the exact one as its step shrinks: 1e-3 bounds its error on 30 images)."""
    generator = torch.Generator().manual_seed(3)
    seen = torch.tensor([True, True, True, False, False])
    probs = torch.softmax(torch.randn(30, 5, generator=generator) * 2, dim=1)
    target = torch.randint(0, 5, (30,), generator=generator)
    metric, got = _metric(probs.tolist(), target.tolist(), seen.tolist())
    log_probs = torch.log(probs.double())
    grid = torch.linspace(-12, 12, 48001, dtype=torch.float64)
    us, ss = [], []
    for g in grid:
        predicted = (log_probs - g * seen.double()).argmax(dim=1)
        correct = predicted == target
        acc = [[float(correct[target == c].double().mean()) for c in target[seen[target] == flag].unique()] for flag in (False, True)]
        us.append(sum(acc[0]) / len(acc[0]))
        ss.append(sum(acc[1]) / len(acc[1]))
    brute = sum((us[i + 1] - us[i]) * (ss[i + 1] + ss[i]) / 2 for i in range(len(us) - 1))
    assert got["ausuc"] == pytest.approx(brute, abs=1e-3)
    curve = seen_unseen_curve(log_probs, target, seen)
    assert area(curve) == pytest.approx(got["ausuc"])
    assert curve["seen"][0] == pytest.approx(ss[0]) and curve["unseen"][-1] == pytest.approx(us[-1])  # the two ends
    details = metric.details()
    assert details["best_h"]["h"] >= got["gzsl_h"] - 1e-12  # the sweep passes through the uncalibrated point


def test_the_best_calibration_reported_reaches_the_best_h():
    generator = torch.Generator().manual_seed(5)
    seen = [True, True, True, False, False]
    probs = torch.softmax(torch.randn(40, 5, generator=generator) * 2 + torch.tensor([1.5, 1.5, 1.5, 0, 0]), dim=1)
    target = torch.randint(0, 5, (40,), generator=generator)
    metric, _ = _metric(probs.tolist(), target.tolist(), seen)
    best = metric.details()["best_h"]
    penalty = best["calibration"]
    recalibrated = torch.softmax(torch.log(probs) - penalty * torch.tensor(seen).float(), dim=1)
    _, again = _metric(recalibrated.tolist(), target.tolist(), seen)
    assert again["gzsl_h"] == pytest.approx(best["h"], abs=1e-9)


# --- the class table -------------------------------------------------------------------------

@pytest.mark.parametrize("text,line,words", [
    ("class,a,b\n0,1,0\n1,0\n", 3, "1 attribute value(s), the header names 2"),
    ("class,a,b\n0,1,0\n1,0,yes\n", 3, "'yes', not a number"),
    ("class,a,b\n0,1,0\n0,0,1\n", 3, "second row (the first is line 2)"),
    ("name,a\n0,1\n1,0\n", 1, "header must be `class,<attribute>,...`"),
    ("class,a,a\n0,1,0\n1,0,1\n", 1, "distinct"),
    ("class,a\n0,nan\n1,0\n", 2, "not a finite number"),
    ("class,a\n0,1\n", 2, "fewer than two classes"),
    ("", 1, "empty"),
])
def test_a_bad_table_names_its_line(tmp_path, text, line, words):
    path = tmp_path / "table.csv"
    path.write_text(text)
    with pytest.raises(TableProblem) as caught:
        read_class_attributes(path)
    assert caught.value.line == line and words in str(caught.value)


def test_the_shipped_digit_table_describes_every_digit_distinctly():
    from mtlspec.data.formats.class_attributes import BUILTIN

    table = read_class_attributes(BUILTIN["multidigits"])
    assert table.classes == tuple(str(d) for d in range(10))
    rows = [table.row(c) for c in table.classes]
    assert len(set(rows)) == 10  # no two digits share a description: each is recognisable from it
    assert ClassAttributes.from_json(json.loads(json.dumps(table.to_json()))) == table


def _zs_spec(extra: str = "", tasks: str | None = None, table: str = "multidigits", unseen: str = "[3, 7]") -> str:
    return tiny_spec("zs", tasks or f"zs: {{type: zero_shot, dataset: digits, label: largest_digit, attributes: {table}, unseen: {unseen}{extra}}}\n",
                     "training: {epochs: 2, device: cpu, threads: 1}\nreport: {formats: [json], plots: false}\n")


def test_validate_points_a_bad_table_at_the_spec_line_and_the_tables(write):
    write("tables/digits.csv", "class,a,b\n0,1,0\n1,0\n")
    path = write("spec.yaml", _zs_spec(table="tables/digits.csv"))
    (result,) = validate_file(path)
    (error,) = result.errors
    assert error.code == "bad-table" and error.path == "tasks.zs.attributes" and "tables/digits.csv:3" in error.message


def test_validate_refuses_a_table_without_a_row_for_a_dataset_class(write):
    write("digits.csv", "class,a\n" + "".join(f"{d},{d % 2}\n" for d in range(9)))  # no 9
    (result,) = validate_file(write("spec.yaml", _zs_spec(table="digits.csv")))
    assert [(e.code, e.path) for e in result.errors] == [("undescribed-class", "tasks.zs.attributes")] and "digit(s) 9" in result.errors[0].message


def test_validate_refuses_the_shipped_table_for_another_dataset_and_a_table_outside_the_project(write, tmp_path):
    text = _zs_spec().replace("    digits: {type: multidigits", "    pics: {type: image_folder, root: pics}\n    digits: {type: multidigits")
    text = text.replace("dataset: digits, label: largest_digit", "dataset: pics, label: class").replace("unseen: [3, 7]", "unseen: [cat]")
    (tmp_path / ".git").mkdir()
    (result,) = validate_file(write("spec.yaml", text))
    assert [(e.code, e.path) for e in result.errors] == [("incompatible", "tasks.zs.attributes")]
    (result,) = validate_file(write("spec2.yaml", _zs_spec(table="../elsewhere.csv")))
    assert [(e.code, e.path) for e in result.errors] == [("outside-project", "tasks.zs.attributes")]


def test_validate_warns_when_another_task_trains_on_labelled_unseen_digits(write):
    tasks = ("zs: {type: zero_shot, dataset: digits, label: largest_digit, attributes: multidigits, unseen: [3, 7]}\n"
             "seg: {type: segmentation, dataset: digits}\n"
             "largest: {type: classification, dataset: digits, label: largest_digit}\n")
    (result,) = validate_file(write("spec.yaml", _zs_spec(tasks=tasks)))
    assert not result.errors
    assert [(w.code, w.path) for w in result.warnings] == [("unseen-leak", "tasks.seg")]  # classification of the same label: held out too
    one_digit = _zs_spec(tasks=tasks).replace("objects: {max: 2}", "objects: {min: 1, max: 1}")
    (result,) = validate_file(write("one.yaml", one_digit))
    assert not result.warnings


# --- a run -----------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["dap", "eszsl", "ale", "sje"])
def test_a_zero_shot_run_scores_every_metric_and_predicts_from_its_model_file(tmp_path, write, method):
    from mtlspec.inference.model_file import load_run

    text = _zs_spec(f", method: {method}").replace("objects: {max: 2}", "objects: {min: 1, max: 1}")
    (result,) = validate_file(write("spec.yaml", text))
    assert result.ok(), [e.format() for e in result.errors]
    outcome = run_result(result, tmp_path / "runs")
    report = json.loads((outcome.run_dir / "report.json").read_text())
    metrics = report["tasks"]["zs"]["metrics"]
    assert set(metrics) == {"zsl_top1", "gzsl_u", "gzsl_s", "gzsl_h", "ausuc"} and all(0 <= v <= 1 for v in metrics.values())
    details = report["tasks"]["zs"]["details"]
    assert details["seen"] == [d not in (3, 7) for d in range(10)] and details["seen_unseen_curve"]["unseen"][0] == 0.0
    loaded = load_run(outcome.run_dir)  # the table comes from model.pt: no file, no data read
    task = loaded.task_types["zs"]
    assert task.table.classes == tuple(str(d) for d in range(10)) and task.seen.tolist() == details["seen"]
    with torch.no_grad():
        probs = task.predict(loaded.model(torch.zeros(2, 3, 32, 32))["zs"], 32)
    assert probs.shape == (2, 10) and torch.allclose(probs.sum(dim=1), torch.ones(2))


def test_training_holds_out_every_image_of_an_unseen_class_unless_told_not_to(write):
    from mtlspec.language.root import Spec

    def labels(text, split, train):
        (result,) = validate_file(write("spec.yaml", text))
        dataset = dataset_of(result.spec if hasattr(result, "spec") else Spec.model_validate(result.model), split, train)
        return [int(dataset[i]["meta"]["labels"]["largest_digit"]) if "labels" in dataset[i]["meta"] else int(dataset[i]["targets"]["zs"])
                for i in range(len(dataset))]

    text = _zs_spec()
    trained = labels(text, "train", True)
    assert trained and not {3, 7} & set(trained)
    assert {3, 7} & set(labels(text, "test", False))  # evaluation sees them
    kept = labels(_zs_spec(", hold_out_images: false"), "train", True)
    assert {3, 7} & set(kept)


def _folder_spec(tmp_path, rows: str) -> "Path":
    import numpy as np
    from PIL import Image

    for k, cls in enumerate(("cat", "dog", "fox")):
        for i in range(6):
            path = tmp_path / "pets" / cls / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((20, 20, 3), 40 + 80 * k + i, np.uint8)).save(path)
    (tmp_path / "pets.csv").write_text("class,dark,furry\n" + rows)
    spec = tmp_path / "pets.yaml"
    spec.write_text("name: pets\ndata: {datasets: {pets: {type: image_folder, root: pets}}, batch_size: 4, image_size: 32}\n"
                    "tasks:\n  kind: {type: zero_shot, dataset: pets, label: class, attributes: pets.csv, unseen: [fox], method: sje}\n"
                    "model: {backbone: {type: SmallCNN, channels: [8, 16]}, neck: {type: FPN, out_channels: 8}}\n"
                    "training: {epochs: 1, device: cpu}\nevaluation: {split: val}\nreport: {formats: [json], plots: false}\n")
    return spec


def test_a_users_table_of_folder_classes_trains_and_a_class_without_a_row_is_refused_before_training(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    spec = _folder_spec(tmp_path, "cat,1,1\ndog,0,1\nfox,0.5,0\n")
    done = cli("run", str(spec), "--out", str(tmp_path / "runs"), "--quiet")
    assert done.exit_code == 0, done.output
    (run_dir,) = (tmp_path / "runs" / "pets").iterdir()
    details = json.loads((run_dir / "report.json").read_text())["tasks"]["kind"]["details"]
    assert details["names"] == ["cat", "dog", "fox"] and details["seen"] == [True, True, False]

    spec = _folder_spec(tmp_path, "cat,1,1\nfox,0.5,0\n")  # no row for dog: validate cannot know the folders, run's preflight does
    (result,) = validate_file(spec)
    assert result.ok()
    done = cli("run", str(spec), "--out", str(tmp_path / "runs2"), "--quiet")
    assert done.exit_code != 0 and "no row for class(es) 'dog'" in done.output and "Traceback" not in done.output
    assert not (tmp_path / "runs2").exists() or not list((tmp_path / "runs2").rglob("checkpoints"))


def test_the_report_draws_the_seen_unseen_curve_with_its_best_point(tmp_path):
    from mtlspec.report.figures import detail_figures
    from mtlspec.report.render_png import write_pngs

    metric, _ = _metric([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.5, 0.1, 0.4]], [0, 1, 2], [True, True, False])
    figures = {f.name: f for f in detail_figures("zs", {**metric.details(), "names": ["a", "b", "c"]})}
    curve = figures["zs_seen_unseen"].panels[0].series
    assert curve[0].x == metric.details()["seen_unseen_curve"]["unseen"] and curve[1].style == "points"
    assert write_pngs([figures["zs_seen_unseen"]], tmp_path) == ["zs_seen_unseen.png"]
    assert (tmp_path / "zs_seen_unseen.png").stat().st_size > 0


def test_an_ensemble_of_seeds_averages_zero_shot_probabilities_and_stacking_is_refused(tmp_path, write):
    from tests.conftest import ensemble_of

    base = _zs_spec(", method: sje").replace("objects: {max: 2}", "objects: {min: 1, max: 1}")
    (result,) = validate_file(write("ens.yaml", base + "ensemble: {members: {type: seeds, seeds: [0, 1]}, strategy: {type: mean}}\n"))
    assert result.ok(), [e.format() for e in result.errors]
    _, report = ensemble_of(result, tmp_path / "runs")
    combined = report["tasks"]["zs"]["metrics"]
    assert set(combined) == {"zsl_top1", "gzsl_u", "gzsl_s", "gzsl_h", "ausuc"}
    (refused,) = validate_file(write("stack.yaml", base + "ensemble: {members: {type: seeds, seeds: [0, 1]}, strategy: {type: stacking}}\n"))
    assert [(e.code, e.path) for e in refused.errors] == [("incompatible", "ensemble.strategy.type")]


def test_the_shipped_digit_table_is_what_its_tool_measures_and_ships_in_the_package():
    """tools/digit_attributes.py recomputes the table from scikit-learn's scans (1e-3: the CSV keeps
    three decimals); the wheel's package data carries the CSV (as test_docs checks the templates)."""
    import importlib.util
    import tomllib

    from conftest import REPO
    from mtlspec.data.formats.class_attributes import BUILTIN

    spec = importlib.util.spec_from_file_location("digit_attributes", REPO / "tools" / "digit_attributes.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    shipped = read_class_attributes(BUILTIN["multidigits"])
    assert list(shipped.attributes) == tool.NAMES
    assert torch.allclose(torch.tensor(shipped.values, dtype=torch.float64), torch.tensor(tool.table(), dtype=torch.float64), atol=1.5e-3)
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "*.csv" in config["mtlspec.data"] and BUILTIN["multidigits"].parent.name == "data"


def test_a_single_task_baseline_of_a_joint_zero_shot_spec_trains_on_the_same_images(write):
    """Δm compares like with like: the segmentation baseline derived from a spec whose zero-shot
    task holds out digits 3 and 7 keeps them out too (data.held_out_classes)."""
    from mtlspec.baselines import single_task_spec

    tasks = ("zs: {type: zero_shot, dataset: digits, label: largest_digit, attributes: multidigits, unseen: [3, 7]}\n"
             "seg: {type: segmentation, dataset: digits}\n")
    text = _zs_spec(tasks=tasks).replace("objects: {max: 2}", "objects: {min: 1, max: 1}")
    (result,) = validate_file(write("spec.yaml", text))
    baseline = single_task_spec(result.spec, "seg")
    assert [(e.dataset, e.label, [str(c) for c in e.classes]) for e in baseline.data.held_out_classes] == [("digits", "largest_digit", ["3", "7"])]
    trained = dataset_of(baseline, "train", True)
    digits = {int(trained.sources["digits"].labels(i)["largest_digit"]) for i in range(len(trained))}
    assert digits and not digits & {3, 7}
    held = text.replace("  batch_size: 8\n", "  batch_size: 8\n  held_out_classes: [{dataset: nodata, label: largest_digit, classes: [1]}]\n")
    (bad,) = validate_file(write("bad.yaml", held))
    assert [(e.code, e.path) for e in bad.errors] == [("unknown-dataset", "data.held_out_classes.0.dataset")]
