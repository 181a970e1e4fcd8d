"""The HTML reports as a person sees them: opened in headless Chromium, every image loads, the
console shows no error, and a screenshot is saved. The test setup installs Debian's chromium
package when it is missing (root on a Debian-like machine, as CI is)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import tiny_spec

pytestmark = [pytest.mark.stack, pytest.mark.slow]

PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || (e.target && e.target.src) || e.type)), true);
const original = console.error;
console.error = (...args) => { window.__errors.push(args.join(" ")); original(...args); };
window.addEventListener("load", () => setTimeout(() => {
  const images = [...document.images].map(i => ({src: i.src.slice(0, 60), ok: i.complete && i.naturalWidth > 0}));
  const fits = document.documentElement.scrollWidth <= window.innerWidth + 1;  // nothing runs off the right edge
  // a chart is drawn when its SVG has a size and holds marks: lines, points, bars or a heatmap's image
  const charts = [...document.querySelectorAll("div.chart")].map(c => {
    const svg = c.querySelector("svg.main-svg");
    const marks = c.querySelectorAll(".scatterlayer path.js-line, .scatterlayer path.point, .barlayer path, .heatmaplayer image").length;
    return {id: (c.querySelector(".js-plotly-plot") || {}).id, marks, drawn: !!svg && svg.getBoundingClientRect().width > 200 && marks > 0};
  });
  document.body.setAttribute("data-probe", JSON.stringify({images, charts, errors: window.__errors, fits}));
}, 500));
</script>"""
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--virtual-time-budget=5000", "--hide-scrollbars"]


@pytest.fixture(scope="session")
def chromium():
    path = shutil.which("chromium")
    if path is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], capture_output=True, timeout=900)
        path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium package could not be installed here")
    return path


def inspect(chromium, html_file, screenshot, tmp_path):
    probe = html_file.with_name(html_file.stem + ".probe.html")
    probe.write_text(html_file.read_text().replace("<head>", "<head>" + PROBE, 1))
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run([chromium, *FLAGS, *profile, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    match = re.search(r'data-probe="([^"]*)"', dom.stdout)
    assert match, dom.stderr[-2000:]
    result = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    subprocess.run([chromium, *FLAGS, *profile, "--window-size=1100,2400", f"--screenshot={screenshot}", html_file.as_uri()],
                   capture_output=True, timeout=120)
    probe.unlink()
    return result


def test_run_report_and_comparison_render_in_a_browser(chromium, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    spec = tmp_path / "b.yaml"
    spec.write_text(tiny_spec("browser", """
largest: {type: classification, dataset: digits, label: largest_digit}
depth: {type: depth, dataset: digits}
""", "training: {epochs: 2, device: cpu}\nmatrix:\n  weighting.type: [ew, uw]\n"))
    assert cli("run", str(spec), "--quiet", "--out", str(tmp_path / "runs")).exit_code == 0
    (run,) = (tmp_path / "runs" / "browser" / "weighting=ew").iterdir()
    report = inspect(chromium, run / "report.html", tmp_path / "report.png", tmp_path)
    assert [c["id"] for c in report["charts"]] == ["chart-loss", "chart-lr", "chart-val_metrics", "chart-time", "chart-largest_confusion",
                                                   "chart-largest_per_class"], report  # ew: no weights chart
    assert all(c["drawn"] for c in report["charts"]) and report["errors"] == [], report
    assert len(report["images"]) == 6 and all(i["ok"] for i in report["images"]), report  # the prediction examples
    runs = sorted((tmp_path / "runs" / "browser").glob("*/*"))
    html = tmp_path / "compare.html"
    assert cli("compare", *map(str, runs), "--baseline", str(runs[0]), "--format", "html", "-o", str(html)).exit_code == 0
    comparison = inspect(chromium, html, tmp_path / "compare.png", tmp_path)
    assert [c["id"] for c in comparison["charts"]] == ["chart-pareto", "chart-delta_m", "chart-training_curves", "chart-validation_curves"]
    assert all(c["drawn"] for c in comparison["charts"]), comparison
    assert comparison["errors"] == [] and comparison["fits"]
    wide = [run / f"wide-{i}" for i in range(3)]  # issue 21: many columns ran off the right edge at 1400 px
    for i, folder in enumerate(wide):
        folder.mkdir()
        tasks = {f"task{k}": {"type": "regression", "metrics": {"mae": 0.1 * k + i, "rmse": 0.2 * k + i}, "higher_is_better": {"mae": False, "rmse": False},
                              "baseline": {}} for k in range(12)}
        (folder / "report.json").write_text(json.dumps({"schema_version": 1, "name": "wide", "variant": f"lr=0.00{i},sharing=cross_stitch", "seed": 0, "tasks": tasks}))
        (folder / "manifest.json").write_text(json.dumps({"spec_hash": f"w{i}", "status": "finished"}))
    assert cli("compare", *map(str, wide), "--format", "html", "-o", str(tmp_path / "wide.html")).exit_code == 0
    assert inspect(chromium, tmp_path / "wide.html", tmp_path / "wide.png", tmp_path)["fits"]
    ensemble_spec = tmp_path / "e.yaml"
    ensemble_spec.write_text(spec.read_text().split("matrix:")[0].replace("name: browser", "name: ens")
                             + "ensemble: {members: {type: seeds, seeds: [0, 1]}, per_task: {largest: {type: vote}}}\n")
    assert cli("run", str(ensemble_spec), "--quiet", "--out", str(tmp_path / "runs")).exit_code == 0
    (folder,) = (tmp_path / "runs" / "ens").glob("ensemble-*")
    ensemble = inspect(chromium, folder / "ensemble.html", tmp_path / "ensemble.png", tmp_path)
    assert len(ensemble["images"]) == 1 and ensemble["images"][0]["ok"] and ensemble["errors"] == [], ensemble
    for shot in ("report.png", "compare.png", "ensemble.png"):
        assert (tmp_path / shot).stat().st_size > 10_000
    if os.environ.get("MTLSPEC_SAVE_SCREENSHOTS"):
        for shot in ("report.png", "compare.png", "ensemble.png"):
            shutil.copy(tmp_path / shot, os.environ["MTLSPEC_SAVE_SCREENSHOTS"])
