"""`mtlspec compare`: several run directories (or ensemble directories) -> one table, Δm against a
baseline, pass/fail gates.

Reads only the run directories' JSON and YAML: never imports torch or MMDetection.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mtlspec.errors import UsageError
from mtlspec.report.delta_m import DEFINITION, delta_m


@dataclass
class Row:
    """One run, or several runs of one spec that differ only in their seed."""

    label: str
    runs: list[str]
    metrics: dict[str, dict[str, float]]
    spread: dict[str, dict[str, float]] = field(default_factory=dict)  # std over seeds
    higher: dict[str, bool] = field(default_factory=dict)
    delta_m: float | None = None
    delta_m_tasks: dict[str, float] = field(default_factory=dict)  # each task's Δm (its metrics' mean relative change)
    fingerprints: dict[str, str] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    spec_hash: str = ""
    own_baseline: dict[str, dict[str, float]] | None = None


def _ensemble_as_report(ensemble: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """An ensemble directory's ensemble.json in the shape of a run's report.json (its own metrics)."""
    return {"name": f"{ensemble['name']} (ensemble of {len(ensemble['members'])})", "variant": "", "seed": manifest.get("seed"),
            "tasks": {t: {"metrics": v["metrics"], "higher_is_better": v["higher_is_better"]} for t, v in ensemble["tasks"].items()}}


def _status(manifest_file: Path) -> str | None:
    """How the run ended, as its manifest says ("failed: KeyError: ...", "running (pid 12 on host)")."""
    try:
        info = json.loads(manifest_file.read_text())
    except (OSError, ValueError):
        return None
    status = info.get("status")
    if status == "running":
        return f"running (pid {info.get('pid')} on {info.get('host')}), or killed before it could record its end"
    return f"{status}: {info['error']}" if info.get("error") else status


def _read_run(path: Path) -> dict[str, Any]:
    report_file, manifest_file = path / "report.json", path / "manifest.json"
    status = _status(manifest_file)
    if status is not None and status != "finished":  # a report.json can exist before a run fails (its other reports failing)
        raise Unfinished(f"{path} ({status})")
    try:
        return _read_finished(path, report_file, manifest_file)
    except (ValueError, KeyError, TypeError) as exc:  # a damaged or truncated report.json / manifest.json
        raise UsageError(f"{path}: its report or manifest cannot be read ({type(exc).__name__}: {str(exc)[:200]})") from None


class Unfinished(UsageError):
    """A run directory whose manifest says it failed, was interrupted, or has not finished."""


def _read_finished(path: Path, report_file: Path, manifest_file: Path) -> dict[str, Any]:
    if (path / "ensemble.json").is_file() and manifest_file.is_file():
        manifest = json.loads(manifest_file.read_text())
        report = _ensemble_as_report(json.loads((path / "ensemble.json").read_text()), manifest)
    elif not report_file.is_file() or not manifest_file.is_file():
        status = _status(manifest_file)
        raise UsageError(f"{path} is not a finished run directory (report.json and manifest.json are needed) "
                         "nor an ensemble directory (ensemble.json and manifest.json)" + (f"; its manifest says: {status}" if status else ""))
    else:
        report, manifest = json.loads(report_file.read_text()), json.loads(manifest_file.read_text())
    resolved = yaml.safe_load((path / "spec.resolved.yaml").read_text()) if (path / "spec.resolved.yaml").is_file() else {}
    for key in ("seed", "extends", "matrix"):  # older runs kept the loader's keys (null) in their resolved spec
        resolved.pop(key, None)
    seedless = hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()
    return {"dir": str(path), "report": report, "manifest": manifest, "seedless": seedless}


def expand(paths: list[Path]) -> list[Path]:
    """Run directories as given; a folder that is none but holds some (runs/<name>/, a variant's
    folder) stands for those under it, in name order."""
    out = []
    for path in paths:
        if (path / "manifest.json").is_file() or not path.is_dir():
            out.append(path)
            continue
        found = sorted({m.parent for m in path.rglob("manifest.json") if "checkpoints" not in m.parts})
        out.extend(found or [path])
    return out


class Rows(list):
    """The rows of a comparison, and the runs left out of it (failed, interrupted, unfinished) with why."""

    skipped: list[str]


def load_rows(paths: list[Path]) -> Rows:
    """Rows in the order given; runs of one spec with different seeds become one row (mean ± std).
    A run directory whose manifest says it did not finish is left out with a note (all of them
    left out is a usage error); a path that is no run directory at all is a usage error."""
    runs, skipped = [], []
    for path in expand(paths):
        try:
            runs.append(_read_run(path))
        except Unfinished as exc:
            skipped.append(str(exc))
    if not runs:
        raise UsageError("no finished run to compare; left out: " + "; ".join(skipped))
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(run["seedless"], []).append(run)
    rows = []
    for members in groups.values():
        first = members[0]["report"]
        label = first["name"] + (f"[{first['variant']}]" if first.get("variant") else "")
        metrics: dict[str, dict[str, float]] = {}
        spread: dict[str, dict[str, float]] = {}
        higher: dict[str, bool] = {}
        for task, info in first["tasks"].items():
            for metric in info["metrics"]:
                values = [m["report"]["tasks"][task]["metrics"][metric] for m in members if metric in m["report"]["tasks"].get(task, {}).get("metrics", {})]
                metrics.setdefault(task, {})[metric] = statistics.fmean(values)
                if len(values) > 1:
                    spread.setdefault(task, {})[metric] = statistics.stdev(values)
                higher[f"{task}.{metric}"] = info["higher_is_better"][metric]
        seeds = sorted({m["report"]["seed"] for m in members})
        if len(members) > 1:  # the seeds are named in full; a seed in the variant (`--set seed=1`) would name one of them
            kept = [part for part in str(first.get("variant") or "").split(",") if part and not part.startswith("seed=")]
            label = first["name"] + (f"[{','.join(kept)}]" if kept else "") + f" (seeds {', '.join(map(str, seeds))})"
        own = first.get("delta_m") or {}
        rows.append(Row(label, [m["dir"] for m in members], metrics, spread, higher,
                        fingerprints=members[0]["manifest"].get("dataset_fingerprints", {}),
                        versions=members[0]["manifest"].get("versions", {}), spec_hash=members[0]["manifest"].get("spec_hash", ""),
                        own_baseline=own.get("baseline")))
    out = Rows(rows)
    out.skipped = skipped
    return out


def apply_baseline(rows: list[Row], baseline: str | None) -> dict[str, dict[str, float]] | None:
    """Fill each row's Δm. `baseline` is a run directory, 'single_task' (each run's own
    single-task baselines, recorded when it ran), or None."""
    if baseline is None:
        return None
    if baseline == "single_task":
        missing = [r.label for r in rows if r.own_baseline is None]
        if missing:
            raise UsageError(f"--baseline single_task needs runs made with evaluation.baseline: single_task; these were not: {', '.join(missing)}")
        for row in rows:
            found = delta_m(row.metrics, row.own_baseline, _directions(row))
            row.delta_m, row.delta_m_tasks = found["value"], found["per_task"]
        return None
    base = load_rows([Path(baseline)])[0]
    for row in rows:
        found = delta_m(row.metrics, base.metrics, _directions(row))
        row.delta_m, row.delta_m_tasks = found["value"], found["per_task"]
    return base.metrics


def delta_columns(rows: list[Row]) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    """The Δm columns: overall, then each task's; per row its cells as (text, best in its column)."""
    tasks = list(dict.fromkeys(t for r in rows for t in r.delta_m_tasks))
    values = [[r.delta_m, *(r.delta_m_tasks.get(t) for t in tasks)] for r in rows]
    tops = [max((v[i] for v in values if v[i] is not None), default=None) for i in range(len(tasks) + 1)]
    cells = [[("-", False) if v is None else (f"{v:+.2f}", tops[i] is not None and math.isclose(v, tops[i])) for i, v in enumerate(line)]
             for line in values]
    return ["Δm % ↑", *(f"Δm {t} % ↑" for t in tasks)], cells


GATE = re.compile(r"^\s*(delta_m|[A-Za-z][\w]*\.[\w]+)\s*(?:(<=|>=|<|>|==)\s*([-+]?[\d.]+(?:[eE][-+]?\d+)?)|(drops)\s*>\s*([-+]?[\d.]+(?:[eE][-+]?\d+)?))\s*$")


@dataclass(frozen=True)
class Gate:
    text: str
    target: str
    op: str
    threshold: float


def parse_gate(text: str, rows: list[Row], has_baseline: bool) -> Gate:
    match = GATE.match(text)
    if not match:
        raise UsageError(f"--fail-if '{text}': expected 'delta_m < -1.0', 'task.metric < 0.5' or 'task.metric drops > 0.02'")
    target = match.group(1)
    op, threshold = (match.group(2), match.group(3)) if match.group(2) else ("drops", match.group(5))
    if target == "delta_m" and not has_baseline:
        raise UsageError(f"--fail-if '{text}': Δm needs --baseline")
    if op == "drops" and not has_baseline:
        raise UsageError(f"--fail-if '{text}': 'drops' compares with --baseline, which is missing")
    if target != "delta_m" and not any(target in r.higher for r in rows):
        known = sorted({k for r in rows for k in r.higher})
        raise UsageError(f"--fail-if '{text}': no run reports '{target}' (they report: {', '.join(known)})")
    return Gate(text, target, op, float(threshold))


def failures(gate: Gate, rows: list[Row], base: dict[str, dict[str, float]] | None) -> list[str]:
    """Labels of the rows the gate fails (with the value that failed it)."""
    out = []
    for row in rows:
        if gate.target == "delta_m":
            value = row.delta_m
        else:
            task, metric = gate.target.split(".", 1)
            value = row.metrics.get(task, {}).get(metric)
        if value is None:
            continue
        if gate.op == "drops":
            task, metric = gate.target.split(".", 1)
            reference = (base or row.own_baseline or {}).get(task, {}).get(metric)
            if reference is None:
                continue
            drop = (reference - value) if row.higher[gate.target] else (value - reference)
            if drop > gate.threshold:
                out.append(f"{row.label}: {gate.target} dropped by {drop:.4f} (baseline {reference:.4f}, now {value:.4f})")
            continue
        bad = {"<": value < gate.threshold, "<=": value <= gate.threshold, ">": value > gate.threshold,
               ">=": value >= gate.threshold, "==": value == gate.threshold}[gate.op]
        if bad:
            out.append(f"{row.label}: {gate.target} = {value:.4f}")
    return out


def columns(rows: list[Row]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for task, metrics in row.metrics.items():
            for metric in metrics:
                seen.setdefault(f"{task}.{metric}")
    return list(seen)


def best(rows: list[Row], column: str) -> float | None:
    task, metric = column.split(".", 1)
    values = [r.metrics[task][metric] for r in rows if metric in r.metrics.get(task, {})]
    if not values:
        return None
    higher = next(r.higher[column] for r in rows if column in r.higher)
    return max(values) if higher else min(values)


def differences(rows: list[Row]) -> list[str]:
    """What the runs do not share, so a reader knows what the table compares across."""
    notes = []
    for what, key in (("dataset fingerprints", "fingerprints"), ("library versions", "versions")):
        if len({json.dumps(getattr(r, key), sort_keys=True) for r in rows}) > 1:
            notes.append(f"The runs differ in {what}.")
    if len({r.spec_hash for r in rows}) > 1:
        notes.append("The runs come from different specs (spec hashes differ).")
    for left_out in getattr(rows, "skipped", []):
        notes.append(f"Left out, not finished: {left_out}.")
    return notes


def cell(row: Row, column: str, best_value: float | None) -> str:
    task, metric = column.split(".", 1)
    value = row.metrics.get(task, {}).get(metric)
    if value is None:
        return "-"
    text = f"{value:.4f}"
    if metric in row.spread.get(task, {}):
        text += f" ± {row.spread[task][metric]:.4f}"
    return f"**{text}**" if best_value is not None and math.isclose(value, best_value) else text


def to_markdown(rows: list[Row], with_delta: bool) -> str:
    cols = columns(rows)
    arrows = {c: ("↑" if next(r.higher[c] for r in rows if c in r.higher) else "↓") for c in cols}
    bests = {c: best(rows, c) for c in cols}
    delta_names, delta_cells = delta_columns(rows) if with_delta else ([], [[] for _ in rows])
    header = ["run"] + [f"{c} {arrows[c]}" for c in cols] + delta_names
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, deltas in zip(rows, delta_cells):
        cells = [row.label] + [cell(row, c, bests[c]) for c in cols] + [f"**{text}**" if top else text for text, top in deltas]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("↑ higher is better, ↓ lower is better; the best value of each column is in bold; "
                 "mean ± standard deviation where runs of one spec differ only in their seed.")
    if with_delta:
        lines.append(f"{DEFINITION}.")
    lines.extend(differences(rows))
    return "\n".join(lines) + "\n"


def _grid(header: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    fmt = lambda line: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()  # noqa: E731
    return [fmt(header), "  ".join("-" * w for w in widths), *(fmt(line) for line in body)]


def to_text(rows: list[Row], with_delta: bool, width: int = 80) -> str:
    """The comparison as plain text within `width` columns: one row per run when that fits; else
    one row per metric and a column per run (runs numbered, named below), in as many blocks of
    run columns as the width needs. The best value of each metric is starred."""
    import textwrap

    cols = columns(rows)
    arrows = {c: ("↑" if next(r.higher[c] for r in rows if c in r.higher) else "↓") for c in cols}
    bests = {c: best(rows, c) for c in cols}
    values = [[cell(r, c, bests[c]).replace("**", "") + ("*" if "**" in cell(r, c, bests[c]) else "") for c in cols] for r in rows]
    names = [f"{c} {arrows[c]}" for c in cols]
    if with_delta:
        delta_names, delta_cells = delta_columns(rows)
        names += delta_names
        for line, deltas in zip(values, delta_cells):
            line += [text + ("*" if top else "") for text, top in deltas]
    lines = _grid(["run", *names], [[r.label, *v] for r, v in zip(rows, values)])
    if max(len(line) for line in lines) > width and names:  # transposed: a row per metric, a column per run
        lines = []
        label_width = max((len(n) for n in names), default=0)
        per_block = max(1, (width - label_width) // (max(len(v) for line in values for v in line + ["run 99"]) + 2))
        for start in range(0, len(rows), per_block):
            chunk = range(start, min(start + per_block, len(rows)))
            lines += _grid(["", *(f"run {i + 1}" for i in chunk)], [[n, *(values[i][k] for i in chunk)] for k, n in enumerate(names)]) + [""]
        lines += [w for i, r in enumerate(rows) for w in textwrap.wrap(f"run {i + 1}: {r.label}", width, subsequent_indent="    ",
                                                                       break_on_hyphens=False)]
    notes = ["↑ higher is better, ↓ lower is better; * marks the best of each metric; mean ± standard deviation where runs "
             "of one spec differ only in their seed."] + ([f"{DEFINITION}."] if with_delta else []) + differences(rows)
    return "\n".join(lines + [""] + [w for n in notes for w in textwrap.wrap(n, width)]) + "\n"


def to_json(rows: list[Row], with_delta: bool) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "columns": {c: {"higher_is_better": next(r.higher[c] for r in rows if c in r.higher)} for c in columns(rows)},
        "rows": [{"label": r.label, "runs": r.runs, "metrics": r.metrics, "std": r.spread, "delta_m": r.delta_m,
                  "delta_m_per_task": r.delta_m_tasks} for r in rows],
        "delta_m_definition": DEFINITION if with_delta else None,
        "notes": differences(rows),
    }


def _directions(row: Row) -> dict[str, dict[str, bool]]:
    """The row's own directions (from its report.json), per task."""
    out: dict[str, dict[str, bool]] = {}
    for key, higher in row.higher.items():
        task, _, metric = key.partition(".")
        out.setdefault(task, {})[metric] = higher
    return out


def write_comparison(folder: Path, run_dirs: list[Path]) -> Path:
    """comparison.md and comparison.json of these runs in `folder` (a matrix's runs); returns the .md."""
    from mtlspec.io import write_text_atomic

    rows = load_rows(run_dirs)
    write_text_atomic(folder / "comparison.md", to_markdown(rows, False))
    write_text_atomic(folder / "comparison.json", json.dumps(to_json(rows, False), indent=2) + "\n")
    return folder / "comparison.md"


def parse_pareto(text: str | None) -> tuple[str, str] | None:
    """--pareto task.metric,task.metric"""
    if not text:
        return None
    pair = tuple(text.split(","))
    if len(pair) != 2:
        raise UsageError("--pareto takes two metrics: task.metric,task.metric")
    return pair  # type: ignore[return-value]

