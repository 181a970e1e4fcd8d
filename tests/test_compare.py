"""`mtlspec compare`, matrix sweeps' comparison, and `mtlspec reproduce`."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import tiny_spec


def fake_run(root, name, seed, metrics, variant="", spec_extra=None, versions=None):
    """A run directory as `mtlspec run` writes it, with chosen metrics."""
    run = root / f"{name}-{variant}-{seed}"
    run.mkdir(parents=True)
    higher = {"accuracy": True, "abs_err": False, "map50": True}
    tasks = {t: {"type": "x", "metrics": m, "higher_is_better": {k: higher[k] for k in m}, "baseline": {}} for t, m in metrics.items()}
    (run / "report.json").write_text(json.dumps({"schema_version": 1, "name": name, "variant": variant, "seed": seed, "tasks": tasks}))
    (run / "manifest.json").write_text(json.dumps({"spec_hash": f"{name}{variant}{seed}", "dataset_fingerprints": {"d": "f"},
                                                   "versions": versions or {"torch": "2.13.0"}}))
    (run / "spec.resolved.yaml").write_text(yaml.safe_dump({"name": name, "seed": seed, "variant": variant, **(spec_extra or {})}))
    return run


@pytest.fixture
def runs(tmp_path):
    base = fake_run(tmp_path, "base", 0, {"cls": {"accuracy": 0.5}, "depth": {"abs_err": 0.4}})
    a0 = fake_run(tmp_path, "mtl", 0, {"cls": {"accuracy": 0.6}, "depth": {"abs_err": 0.3}}, "a")
    a1 = fake_run(tmp_path, "mtl", 1, {"cls": {"accuracy": 0.7}, "depth": {"abs_err": 0.5}}, "a")
    b0 = fake_run(tmp_path, "mtl", 0, {"cls": {"accuracy": 0.4}, "depth": {"abs_err": 0.2}}, "b", versions={"torch": "2.14.1"})
    return base, a0, a1, b0


def test_markdown_table_groups_seeds_marks_best_and_computes_delta_m(cli, runs):
    base, a0, a1, b0 = runs
    result = cli("compare", str(a0), str(a1), str(b0), "--baseline", str(base), "--format", "md")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "| run | cls.accuracy ↑ | depth.abs_err ↓ | Δm % ↑ | Δm cls % ↑ | Δm depth % ↑ |"
    # a: mean of seeds 0 and 1; Δm = mean(+30% accuracy, 0% abs_err) = +15, per task +30 and 0
    assert lines[2] == "| mtl[a] (seeds 0, 1) | **0.6500 ± 0.0707** | 0.4000 ± 0.1414 | **+15.00** | **+30.00** | +0.00 |"
    # b: accuracy -20%, abs_err better by 50% -> +15 as well; its abs_err is the best (lowest)
    assert lines[3] == "| mtl[b] | 0.4000 | **0.2000** | **+15.00** | -20.00 | **+50.00** |"
    assert "LibMTL's Δp" in result.output and "differ in library versions" in result.output


def test_gates_fail_with_the_rows_named_and_malformed_gates_are_usage_errors(cli, runs):
    base, a0, a1, b0 = runs
    ok = cli("compare", str(a0), str(b0), "--baseline", str(base), "--format", "md", "--fail-if", "delta_m < 10")
    assert ok.exit_code == 0
    result = cli("compare", str(a0), str(b0), "--baseline", str(base), "--format", "md", "--fail-if", "cls.accuracy drops > 0.05")
    assert result.exit_code == 1
    assert "FAIL cls.accuracy drops > 0.05: mtl[b]: cls.accuracy dropped by 0.1000" in result.output
    assert "mtl[a]" not in [line for line in result.output.splitlines() if line.startswith("FAIL")][0]
    assert cli("compare", str(a0), "--format", "md", "--fail-if", "depth.abs_err > 0.25").exit_code == 1
    for bad in ("delta_m is low", "cls.acc < 1", "delta_m < -1"):
        assert cli("compare", str(a0), "--format", "md", "--fail-if", bad).exit_code == 2, bad
    assert cli("compare", str(a0.parent / "nothing")).exit_code == 2


def test_json_and_html_formats(cli, runs, tmp_path):
    base, a0, a1, b0 = runs
    data = json.loads(cli("compare", str(a0), str(b0), "--baseline", str(base), "--format", "json").output)
    assert data["columns"] == {"cls.accuracy": {"higher_is_better": True}, "depth.abs_err": {"higher_is_better": False}}
    assert [r["delta_m"] for r in data["rows"]] == pytest.approx([(20.0 + 25.0) / 2, (-20.0 + 50.0) / 2])
    out = tmp_path / "c.html"
    assert cli("compare", str(a0), str(b0), "--baseline", str(base), "--format", "html", "-o", str(out)).exit_code == 0
    html = out.read_text()
    assert 'id="chart-pareto"' in html and 'id="chart-delta_m"' in html and "mtl[b]" in html


@pytest.mark.stack
def test_a_matrix_run_writes_its_comparison_and_reproduce_matches(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    spec = tmp_path / "m.yaml"
    spec.write_text(tiny_spec("sweep", """
largest: {type: classification, dataset: digits, label: largest_digit}
seg: {type: segmentation, dataset: digits}
""", "training: {epochs: 1, device: cpu}\nreport: {plots: false}\nmatrix:\n  weighting.type: [ew, uw]\n"))
    result = cli("run", str(spec), "--quiet", "--out", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    table = (tmp_path / "runs" / "sweep" / "comparison.md").read_text()
    assert "| sweep[weighting=ew] |" in table and "| sweep[weighting=uw] |" in table
    assert json.loads((tmp_path / "runs" / "sweep" / "comparison.json").read_text())["rows"][1]["label"] == "sweep[weighting=uw]"
    (first,) = (tmp_path / "runs" / "sweep" / "weighting=ew").iterdir()
    again = cli("reproduce", str(first), "--out", str(tmp_path / "again"))
    assert again.exit_code == 0, again.output
    assert "largest.accuracy" in again.output and "diff 0.00e+00" in again.output


def test_runs_made_with_set_are_named_by_what_it_changed(cli, tmp_path, monkeypatch):
    """Issue 21: the quickstart with ew and with --set weighting.type=uw were both "quickstart" in
    every compare row; the override now names the run directory, the manifest and the row."""
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    spec = tmp_path / "q.yaml"
    spec.write_text(tiny_spec("q", "largest: {type: classification, dataset: digits, label: largest_digit}\n"
                                   "seg: {type: segmentation, dataset: digits}", "training: {epochs: 1, device: cpu}\nreport: {plots: false}\n"))
    runs = tmp_path / "runs"
    assert cli("run", str(spec), "--quiet", "--out", str(runs)).exit_code == 0
    done = cli("run", str(spec), "--quiet", "--out", str(runs), "--set", "weighting.type=uw", "--set", "data.hflip=0.5")
    assert done.exit_code == 0, done.output
    (variant,) = (runs / "q" / "weighting=uw,hflip=0.5").iterdir()
    assert json.loads((variant / "manifest.json").read_text())["variant"] == "weighting=uw,hflip=0.5"
    (plain,) = [p for p in (runs / "q").iterdir() if p.name[0].isdigit()]
    table = cli("compare", str(plain), str(variant), "--format", "md")
    assert table.exit_code == 0, table.output
    assert "q[weighting=uw,hflip=0.5]" in table.output


def test_the_text_table_fits_80_columns_and_names_every_run_in_full(cli, tmp_path):
    """Issue 21: at 80 columns rich cut every cell ("lar…"); the text format now transposes (a row
    per metric, numbered run columns in blocks) when a row per run does not fit."""
    metrics = {f"task{i}": {"accuracy": 0.1 * i, "abs_err": 0.05 * i} for i in range(1, 5)}
    paths = [fake_run(tmp_path, "sweep", 0, metrics, f"weighting=method{j},sharing=topology{j},lr=0.00{j}") for j in range(1, 8)]
    result = cli("compare", *map(str, paths))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    for j in range(1, 8):
        assert any(line.endswith(f"sweep[weighting=method{j},sharing=topology{j},lr=0.00{j}]") for line in lines)
    assert any(line.startswith("task4.accuracy ↑") and "0.4000*" in line for line in lines)
    few = cli("compare", *map(str, paths[:2]))
    assert "run 1" in few.output  # long labels: transposed even for two runs


def test_runs_that_did_not_finish_are_left_out_with_a_note(cli, tmp_path, runs):
    failed = tmp_path / "failed-run"
    failed.mkdir()
    (failed / "manifest.json").write_text(json.dumps({"status": "failed", "error": "TrainingError: the loss is not finite"}))
    result = cli("compare", str(runs[1]), str(failed), "--format", "md")
    assert result.exit_code == 0, result.output
    assert "Left out, not finished:" in result.output and "failed: TrainingError" in result.output
    alone = cli("compare", str(failed))
    assert alone.exit_code == 2 and "no finished run to compare" in alone.output
    stray = tmp_path / "not-a-run"
    stray.mkdir()
    assert cli("compare", str(runs[1]), str(stray)).exit_code == 2  # not a run directory at all: still an error


def test_compare_edge_cases_found_in_review(cli, tmp_path, runs):
    """A run that failed after writing report.json is left out; a damaged report is a usage error,
    not a crash; run names wrap within 80 columns; a folder of runs stands for the runs in it;
    seeds given with --set do not name the group."""
    late = fake_run(tmp_path, "late", 0, {"cls": {"accuracy": 0.9}})
    manifest = json.loads((late / "manifest.json").read_text())
    (late / "manifest.json").write_text(json.dumps({**manifest, "status": "failed", "error": "OSError: disk full"}))
    out = cli("compare", str(runs[1]), str(late), "--format", "md")
    assert out.exit_code == 0 and "0.9000" not in out.output and "failed: OSError" in out.output, out.output
    broken = fake_run(tmp_path, "broken", 0, {"cls": {"accuracy": 0.5}})
    (broken / "report.json").write_text("{not json")
    assert cli("compare", str(runs[1]), str(broken)).exit_code == 2
    long = [fake_run(tmp_path / "long", "sweep", s, {"cls": {"accuracy": 0.1 * s}}, ",".join(f"key{k}=value{k}" for k in range(8))) for s in range(3)]
    text = cli("compare", str(tmp_path / "long"))  # the folder stands for the runs in it
    assert text.exit_code == 0 and max(len(line) for line in text.output.splitlines()) <= 80, text.output
    seeded = [fake_run(tmp_path / "seeded", "q", s, {"cls": {"accuracy": 0.5}}, f"seed={s}") for s in (1, 2)]
    for run in seeded:  # one spec but for its seed: one row, named without any one seed
        (run / "spec.resolved.yaml").write_text(yaml.safe_dump({"name": "q", "seed": 0}))
    grouped = cli("compare", *map(str, seeded), "--format", "md")
    assert "| q (seeds 1, 2) |" in grouped.output, grouped.output
