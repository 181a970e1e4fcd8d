"""The run directory's reports: report.json (schema-versioned), report.md and report.html from report/templates/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mtlspec.io import write_text_atomic
from mtlspec.report.plots import write_plots
from mtlspec.language.tasks import directions

REPORT_SCHEMA_VERSION = 1
TEMPLATES = Path(__file__).resolve().parent / "templates"  # package data: found in a wheel install too


def build_report(spec: Any, manifest: dict[str, Any], result: Any, plots: list[str], baseline: dict | None = None) -> dict[str, Any]:
    tasks = {}
    for task, metrics in result.metrics.items():
        chosen = spec.tasks[task].metrics
        values = {m: float(metrics[m]) for m in chosen if m in metrics}
        tasks[task] = {
            "type": result.task_types[task],
            "metrics": values,
            "higher_is_better": {m: directions(spec)[task][m] for m in values},
            "baseline": {m: float(v) for m, v in result.baselines.get(task, {}).items() if m in values},
        }
    last_val = next((e["val"] for e in reversed(result.history) if "val" in e), {})
    val = {t: {m: float(v) for m, v in last_val.get(t, {}).items() if m in spec.tasks[t].metrics} for t in last_val}
    delta = None
    if baseline is not None:
        from mtlspec.report.delta_m import delta_m

        delta = delta_m({t: v["metrics"] for t, v in tasks.items()}, baseline["test"], directions(spec))
        delta["baseline_runs"] = baseline["runs"]
        delta["baseline"] = baseline["test"]
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "delta_m": delta,
        "val": val,
        "name": spec.name,
        "variant": manifest.get("variant", ""),
        "spec_file": manifest.get("spec_file", ""),
        "spec_hash": manifest["spec_hash"],
        "seed": spec.seed,
        "split": result.split,
        "tasks": tasks,
        "run": {
            "device": result.device, "epochs_run": result.epochs_run, "stopped_early": result.stopped_early,
            "wall_seconds": result.wall_seconds, "num_parameters": result.num_parameters,
        },
        "plots": plots,
        **({"few_shot": result.few_shot} if getattr(result, "few_shot", None) else {}),
        "data": {name: {split: dict(info) for split, info in splits.items()} for name, splits in (getattr(result, "splits", None) or {}).items()},
    }


def _read_metrics(path: Path) -> tuple[list[dict], list[dict]]:
    steps, epochs = [], []
    if path.is_file():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            (steps if row["kind"] == "step" else epochs).append(row)
    return steps, epochs


def write_reports(run_dir: Path, spec: Any, manifest: dict[str, Any], result: Any, baseline: dict | None = None) -> dict[str, Any]:
    import jinja2

    metrics = {task: list(section.metrics) for task, section in spec.tasks.items()}
    plots = write_plots(*_read_metrics(run_dir / "metrics.jsonl"), run_dir / "plots", metrics) if spec.report.plots else []
    report = build_report(spec, manifest, result, plots, baseline)
    resolved = run_dir / "spec.resolved.yaml"
    spec_text = resolved.read_text() if resolved.is_file() else ""  # folded into report.md/html (report.json names the file)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=jinja2.select_autoescape(["html"]),
                             keep_trailing_newline=True)
    if "json" in spec.report.formats:
        write_text_atomic(run_dir / "report.json", json.dumps(report, indent=2) + "\n")
    if "md" in spec.report.formats:
        write_text_atomic(run_dir / "report.md", env.get_template("report.md.j2").render(report=report, spec_text=spec_text))
    if "html" in spec.report.formats:
        write_text_atomic(run_dir / "report.html", env.get_template("report.html.j2").render(report=report, spec_text=spec_text))
    return report
