"""`mtlspec run`: validate a spec, refuse what this version cannot run, train, write the run directory."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from mtlspec.errors import Diagnostic
from mtlspec.io import write_text_atomic
from mtlspec.spec.validate import Result


@dataclass
class RunOutcome:
    run_dir: Path
    report: dict[str, Any]


def refusals(result: Result) -> list[Diagnostic]:
    """Errors, and the not-implemented warnings that `run` turns into errors."""
    return result.errors + [d for d in result.warnings if d.code == "not-implemented"]


def new_run_dir(root: Path, name: str, variant: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = root / name / variant if variant else root / name
    path = base / stamp
    n = 1
    while path.exists():
        n += 1
        path = base / f"{stamp}-{n}"
    path.mkdir(parents=True)
    return path


def run_one(result: Result, root: Path, resume_dir: Path | None = None, log: Callable[[str], None] = print,
            progress: Any = None, stop_after_epoch: int | None = None) -> RunOutcome:
    from mtlspec.baselines import baseline_metrics
    from mtlspec.report.manifest import manifest, spec_hash
    from mtlspec.report.run_report import write_reports
    from mtlspec.train import checkpoint as ckpt
    from mtlspec.train.loop import TrainingError, fit

    spec = result.spec
    digest = spec_hash(spec)
    variant = result.name[len(spec.name):].strip("[]") if result.name != spec.name else ""
    resume = None
    if resume_dir is not None:
        run_dir = resume_dir
        resume = resume_dir if resume_dir.is_file() else ckpt.latest(resume_dir / "checkpoints")
        if resume_dir.is_file():
            run_dir = resume_dir.parent.parent
        if resume is None:
            raise TrainingError(f"no checkpoint to resume from in {resume_dir / 'checkpoints'}")
    else:
        run_dir = new_run_dir(root, spec.name, variant)
    write_text_atomic(run_dir / "spec.resolved.yaml", yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    info = manifest(spec, result.file, variant, digest, status="running",
                    started=datetime.datetime.now().isoformat(timespec="seconds"))
    write_text_atomic(run_dir / "manifest.json", json.dumps(info, indent=2) + "\n")
    baseline = baseline_metrics(spec, result.file, root, log)
    outcome = fit(spec, digest, run_dir, resume=resume, log=log, progress=progress, stop_after_epoch=stop_after_epoch,
                  data_root=Path(result.file).resolve().parent, baseline_val=baseline["val"] if baseline else None)
    info.update(status="finished", device=outcome.device, dataset_fingerprints=outcome.fingerprints,
                wall_seconds=round(outcome.wall_seconds, 3), epochs_run=outcome.epochs_run,
                finished=datetime.datetime.now().isoformat(timespec="seconds"))
    write_text_atomic(run_dir / "manifest.json", json.dumps(info, indent=2) + "\n")
    report = write_reports(run_dir, spec, info, outcome, baseline)
    return RunOutcome(run_dir, report)


def finished_run(root: Path, digest: str) -> dict[str, Any] | None:
    """The newest finished run under root made from the spec with this hash: {"run_dir", "report"}."""
    for manifest_file in sorted(root.glob("*/manifest.json"), reverse=True):
        info = json.loads(manifest_file.read_text())
        report = manifest_file.parent / "report.json"
        if info.get("spec_hash") == digest and info.get("status") == "finished" and report.is_file():
            return {"run_dir": str(manifest_file.parent), "report": json.loads(report.read_text())}
    return None


def train_or_reuse(spec: Any, spec_file: str, root: Path, log: Callable[[str], None], what: str) -> dict[str, Any]:
    """A finished run of this exact spec under root/<name>/, or a new one trained now: {"run_dir", "report"}.
    `what` names the run in the log ("ensemble: member x", "baseline: the single-task run for 'seg'")."""
    from mtlspec.report.manifest import spec_hash

    label, _, name = what.partition(": ")
    found = finished_run(root / spec.name, spec_hash(spec))
    if found is not None:
        log(f"{label}: reusing {found['run_dir']} for {name}")
        return found
    log(f"{label}: training {name}")
    outcome = run_one(Result(spec_file, spec.name, [], spec), root, log=log)
    return {"run_dir": str(outcome.run_dir), "report": outcome.report}
