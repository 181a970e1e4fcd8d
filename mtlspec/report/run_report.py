"""The run directory's reports: report.json (schema-versioned), report.md (with PNG charts) and
report.html (with the same charts, interactive) from report/templates/."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from mtlspec.io import write_text_atomic
from mtlspec.report.figures import run_figures
from mtlspec.report.render_png import write_pngs
from mtlspec.train.timing import TIMINGS_FILE, read_timings
from mtlspec.language.tasks import directions

REPORT_SCHEMA_VERSION = 1
TEMPLATES = Path(__file__).resolve().parent / "templates"  # package data: found in a wheel install too


def reported_metrics(spec: Any) -> dict[str, list[str]]:
    """Per task, the metrics its report shows: the spec's; for a meta run's task, the few-shot
    accuracy (what its episodes score, whatever the task type)."""
    meta_task = spec.meta.task if getattr(spec, "meta", None) is not None else None
    return {task: ["accuracy"] if task == meta_task else list(section.metrics) for task, section in spec.tasks.items()}


def time_summary(timings: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Per epoch, where the time went; and over the run, the mean step, images per second and the
    share of training time spent waiting for data."""
    if not timings:
        return None
    train = sum(t["train_seconds"] for t in timings)
    steps = sum(t["steps"] for t in timings)
    return {"epochs": timings, "mean_epoch_seconds": sum(t["epoch_seconds"] for t in timings) / len(timings),
            "mean_step_seconds": (train - sum(t["data_seconds"] for t in timings)) / max(steps, 1),
            "images_per_second": sum(t["images_per_second"] * t["train_seconds"] for t in timings if t["images_per_second"]) / train if train else None,
            "data_share": sum(t["data_seconds"] for t in timings) / train if train else None}


def build_report(spec: Any, manifest: dict[str, Any], result: Any, plots: list[str], baseline: dict | None = None,
                 timings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    tasks = {}
    details = getattr(result, "details", None) or {}
    few_shot = getattr(result, "few_shot", None) or {}
    shown, higher = reported_metrics(spec), directions(spec)
    for task, metrics in result.metrics.items():
        values = {m: float(metrics[m]) for m in shown[task] if m in metrics}
        tasks[task] = {
            "type": result.task_types[task],
            "metrics": values,
            "higher_is_better": {m: True if task in few_shot else higher[task][m] for m in values},  # few-shot accuracy
            "baseline": {m: float(v) for m, v in result.baselines.get(task, {}).items() if m in values},
            **({"details": details[task]} if task in details else {}),
        }
    last_val = next((e["val"] for e in reversed(result.history) if "val" in e), {})
    val = {t: {m: float(v) for m, v in last_val.get(t, {}).items() if m in shown[t]} for t in last_val}
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
        "time": time_summary(timings or []),
        "plots": plots,
        **({"few_shot": result.few_shot} if getattr(result, "few_shot", None) else {}),
        "data": {name: {split: dict(info) for split, info in splits.items()} for name, splits in (getattr(result, "splits", None) or {}).items()},
    }


PER_CLASS_COLUMNS = ("ap", "ap50", "iou", "recall", "precision", "f1")
CONFUSION_INLINE = 50  # classes: a larger confusion matrix goes to confusion_<task>.json beside report.json


def per_class_tables(report: dict[str, Any]) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Per task with details: the columns and rows of its per-class table (a class per row)."""
    out = {}
    for task, t in report["tasks"].items():
        details = t.get("details") or {}
        names = details.get("names") or []
        count = len(names) if names else max((len(details[c]) for c in PER_CLASS_COLUMNS if isinstance(details.get(c), list)), default=0)
        columns = [c for c in PER_CLASS_COLUMNS if isinstance(details.get(c), list) and len(details[c]) == count]  # one value per class
        if not columns:
            continue
        rows = [[str(names[i]) if i < len(names) else str(i)] + ["-" if details[c][i] is None else f"{details[c][i]:.4f}" for c in columns]
                for i in range(count)]
        out[task] = (columns, rows)
    return out


def _examples(run_dir: Path, spec: Any) -> list[str]:
    """The overlays of a few evaluation images (report/examples.py) under plots/examples/; none,
    with a warning, when they cannot be drawn: the run itself has finished and must not fail here."""
    from mtlspec.report.examples import draw_examples

    try:
        return draw_examples(run_dir, spec.evaluation.split, run_dir / "plots" / "examples")
    except Exception as exc:  # noqa: BLE001 (anything: the trained model and its metrics are already safe on disk)
        import warnings

        warnings.warn(f"{run_dir}: the report's prediction examples could not be drawn ({type(exc).__name__}: {exc})", stacklevel=2)
        return []


def _read_metrics(path: Path) -> tuple[list[dict], list[dict]]:
    steps, epochs = [], []
    if path.is_file():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            (steps if row["kind"] == "step" else epochs).append(row)
    return steps, epochs


def write_reports(run_dir: Path, spec: Any, manifest: dict[str, Any], result: Any, baseline: dict | None = None) -> dict[str, Any]:
    import jinja2

    metrics = reported_metrics(spec)
    timings = read_timings(run_dir / TIMINGS_FILE)
    figures = run_figures(*_read_metrics(run_dir / "metrics.jsonl"), timings, metrics, getattr(result, "details", None)) if spec.report.plots else []
    plots = write_pngs(figures, run_dir / "plots")
    reads_text = any(getattr(type(t), "TEXT_FIELDS", ()) for t in spec.tasks.values())  # examples come from `predict`, which takes images only
    clips = spec.model.temporal is not None  # a model of clips: `predict` takes images
    examples = _examples(run_dir, spec) if spec.report.plots and spec.meta is None and not reads_text and not clips else []
    report = build_report(spec, manifest, result, plots, baseline, timings)
    report["examples"] = [f"examples/{name}" for name in examples]
    for task, t in report["tasks"].items():
        details = t.get("details") or {}
        if len(details.get("confusion") or []) > CONFUSION_INLINE:  # kept out of report.json: 150 classes are 22,500 counts
            name = f"confusion_{task}.json"
            write_text_atomic(run_dir / name, json.dumps({"task": task, "names": details.get("names"), "confusion": details["confusion"]}) + "\n")
            t["details"] = {**{k: v for k, v in details.items() if k != "confusion"}, "confusion_file": name}
    resolved = run_dir / "spec.resolved.yaml"
    spec_text = resolved.read_text() if resolved.is_file() else ""  # folded into report.md/html (report.json names the file)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=jinja2.select_autoescape(["html"]),
                             keep_trailing_newline=True)
    if "json" in spec.report.formats:
        write_text_atomic(run_dir / "report.json", json.dumps(report, indent=2) + "\n")
    if "md" in spec.report.formats:
        write_text_atomic(run_dir / "report.md", env.get_template("report.md.j2").render(report=report, spec_text=spec_text, per_class=per_class_tables(report)))
    if "html" in spec.report.formats:
        from mtlspec.report import render_plotly

        charts = [render_plotly.chart(f) for f in figures]
        inline = {name: "data:image/png;base64," + base64.b64encode((run_dir / "plots" / name).read_bytes()).decode() for name in report["examples"]}
        page = env.get_template("report.html.j2").render(report=report, spec_text=spec_text, charts=charts, per_class=per_class_tables(report), examples=inline,
                                                         plotly=render_plotly.script() if charts else "")
        write_text_atomic(run_dir / "report.html", page)
    return report
