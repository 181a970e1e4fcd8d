"""Δm against a closed form, and single-task baselines derived from the spec, trained once and reused."""

from __future__ import annotations

import json

import pytest

from conftest import tiny_spec
from mtlspec.report.delta_m import delta_m


def test_delta_m_follows_libmtl_definition():
    metrics = {"seg": {"miou": 0.55, "pixel_accuracy": 0.8}, "depth": {"abs_err": 0.3}}
    base = {"seg": {"miou": 0.5, "pixel_accuracy": 0.8}, "depth": {"abs_err": 0.4}}
    out = delta_m(metrics, base)
    seg = 100 * ((0.55 - 0.5) / 0.5 + 0) / 2  # +5%
    depth = 100 * -(0.3 - 0.4) / 0.4  # lower is better: +25%
    assert out["per_task"] == pytest.approx({"seg": seg, "depth": depth})
    assert out["value"] == pytest.approx((seg + depth) / 2)
    assert delta_m({"boxes": {"map": 0.2}}, {"boxes": {"map": 0.0}}) == {
        "value": None, "per_task": {}, "skipped": ["boxes.map"], "definition": out["definition"]}


@pytest.mark.stack
def test_single_task_baselines_are_derived_trained_once_and_reused(tmp_path, monkeypatch):
    from conftest import run_result
    from mtlspec.language import validate_file

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    spec = tmp_path / "b.yaml"
    spec.write_text(tiny_spec("dm", """
largest: {type: classification, dataset: digits, label: largest_digit}
count: {type: regression, dataset: digits, label: count}
""", """weighting: {type: uw}
training: {epochs: 2, device: cpu, early_stopping: {monitor: val.delta_m, patience: 5}}
evaluation: {split: test, baseline: {type: single_task}}
report: {plots: false}
"""))
    (result,) = validate_file(spec)
    assert result.errors == [] and result.warnings == []
    messages: list[str] = []
    report = run_result(result, tmp_path / "runs", log=messages.append).report
    assert sum("training the single-task run" in m for m in messages) == 2
    singles = {t: json.loads(next((tmp_path / "runs" / f"dm.single.{t}").glob("*/report.json")).read_text()) for t in ("largest", "count")}
    assert set(singles["largest"]["tasks"]) == {"largest"} and set(singles["count"]["tasks"]) == {"count"}
    baseline = {t: singles[t]["tasks"][t]["metrics"] for t in singles}
    ours = {t: v["metrics"] for t, v in report["tasks"].items()}
    # LibMTL's Δp by hand: per task, the mean over its metrics of the signed relative change, in %
    gain = {t: sum(sign * (ours[t][m] - baseline[t][m]) / baseline[t][m] for m, sign in signs.items()) / len(signs)
            for t, signs in {"largest": {"accuracy": 1, "macro_f1": 1}, "count": {"mae": -1, "rmse": -1}}.items()}
    assert report["delta_m"]["value"] == pytest.approx(100 * (gain["largest"] + gain["count"]) / 2)
    assert report["delta_m"]["per_task"] == pytest.approx({t: 100 * g for t, g in gain.items()})
    assert "Δm = " in (next((tmp_path / "runs" / "dm").glob("*/report.md")).read_text())
    messages.clear()
    again = run_result(result, tmp_path / "runs", log=messages.append).report
    assert sum("reusing" in m for m in messages) == 2 and not any("training the single" in m for m in messages)
    assert again["delta_m"]["value"] == pytest.approx(report["delta_m"]["value"])
