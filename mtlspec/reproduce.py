"""`mtlspec reproduce`: re-run a run directory from its own resolved spec and manifest."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from mtlspec.errors import UsageError


def reproduce_run(run_dir: Path, out: Path) -> tuple[list[tuple[str, str, float, float]], Path]:
    """Train again from spec.resolved.yaml (data paths resolved as in the original run, from the
    file the manifest names); returns (task, metric, old, new) for every metric, and the new run directory."""
    from mtlspec.language.root import Spec
    from mtlspec.run import RunRequest, run_one

    try:
        spec = Spec.model_validate(yaml.safe_load((run_dir / "spec.resolved.yaml").read_text()))
        manifest = json.loads((run_dir / "manifest.json").read_text())
        old = json.loads((run_dir / "report.json").read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{run_dir} is not a finished run directory: {exc}") from None
    request = RunRequest(spec, manifest.get("spec_file") or str(run_dir / "spec.resolved.yaml"), manifest.get("variant", ""))
    outcome = run_one(request, out, log=lambda m: None)
    rows = []
    for task, info in old["tasks"].items():
        for metric, value in info["metrics"].items():
            rows.append((task, metric, value, outcome.report["tasks"][task]["metrics"][metric]))
    return rows, outcome.run_dir
