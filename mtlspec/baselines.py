"""Baselines for Δm: single-task runs derived from a multi-task spec (trained the same way, through
the orchestrator's `train_or_reuse`), or a run directory named in the spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from mtlspec.errors import UsageError
from mtlspec.language.root import Spec


def single_task_spec(spec: Spec, task: str) -> Spec:
    """The spec with one task: same data, backbone, neck, optimiser and budget; no weighting to
    choose (ew), no ensemble, no baseline of its own; hard sharing (with one task, a plain network)."""
    from mtlspec.tasks import task_type_class

    data = spec.model_dump(mode="json")
    data["name"] = f"{spec.name}.single.{task}"
    kept = data["tasks"][task]
    for name, section in spec.tasks.items():  # images the joint run holds out stay out of the baseline's training
        if name != task:
            data["data"]["held_out_classes"] += [e for e in task_type_class(section.type).holds_out(section) if e["dataset"] == kept["dataset"]]
    data["tasks"] = {task: kept}
    data["model"]["sharing"] = {"type": "hps"}
    data["weighting"] = {"type": "ew"}
    data["ensemble"] = None
    data["evaluation"]["baseline"] = {"type": "none"}
    if data["training"].get("early_stopping") and data["training"]["early_stopping"]["monitor"] == "val.delta_m":
        data["training"]["early_stopping"]["monitor"] = "val.loss"
    if data["data"]["sample_weights"].get("task") not in (None, task):
        data["data"]["sample_weights"] = {"type": "none"}
    data["matrix"] = None
    return Spec.model_validate(data)


def baseline_metrics(spec: Spec, spec_file: str, out_root: Path, log: Callable[[str], None],
                     train_or_reuse: Callable[..., dict[str, Any]]) -> dict[str, Any] | None:
    """{"test": {task: metrics}, "val": {task: metrics}, "runs": {task: run_dir}} or None without a baseline."""
    kind = spec.evaluation.baseline.type
    if kind == "none":
        return None
    if kind == "run":
        run_dir = (Path(spec_file).resolve().parent / spec.evaluation.baseline.path)
        try:
            report = json.loads((run_dir / "report.json").read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"the baseline run {run_dir} has no readable report.json ({type(exc).__name__}); is it a finished run?") from None
        return {"test": {t: v["metrics"] for t, v in report["tasks"].items()}, "val": report.get("val", {}), "runs": {"*": str(run_dir)}}
    out: dict[str, Any] = {"test": {}, "val": {}, "runs": {}}
    for task in spec.tasks:
        found = train_or_reuse(single_task_spec(spec, task), spec_file, out_root, log, f"baseline: the single-task run for '{task}'")
        out["test"][task] = found["report"]["tasks"][task]["metrics"]
        out["val"][task] = found["report"].get("val", {}).get(task, {})
        out["runs"][task] = found["run_dir"]
    return out
