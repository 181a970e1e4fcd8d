"""The orchestrator of `mtlspec run`: a RunRequest becomes a run directory (a model trained and
reported) or an ensemble directory. It alone trains runs: baselines and ensemble members reach it
through the `train_or_reuse` callable it hands them, so nothing below it imports it back.

    RunRequest -> execute -> run_one: preflight (model on the meta device), run directory,
                                      baselines (train_or_reuse), seeded build, fit, reports
                          -> ensemble.runner.run_ensemble (members through train_or_reuse)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from mtlspec.errors import Diagnostic, SpecError, UsageError
from mtlspec import tracking
from mtlspec.io import write_text_atomic
from mtlspec.language.root import Spec
from mtlspec.language.validate import Result
from mtlspec.rundir import new_run_dir, now, read_manifest, record_failure, running, write_manifest
from mtlspec.train.timing import TIMINGS_FILE

Log = Callable[[str], None]
REFUSED_WARNINGS = ("not-implemented", "missing-file")  # warnings in validate, errors when a run would need the part


@dataclass(frozen=True)
class RunRequest:
    """One concrete spec to run: the spec, the file it came from (its data paths are relative to
    that file's folder) and its matrix label ("" without a matrix)."""

    spec: Spec
    file: str
    variant: str = ""

    @classmethod
    def of(cls, result: Result) -> "RunRequest":
        """The request for a valid result of `validate_file` (one matrix combination)."""
        variant = result.name[len(result.spec.name):].strip("[]") if result.name != result.spec.name else ""
        return cls(result.spec, result.file, variant)

    @property
    def name(self) -> str:
        return f"{self.spec.name}[{self.variant}]" if self.variant else self.spec.name


@dataclass
class Outcome:
    run_dir: Path
    report: dict[str, Any]
    kind: str = "run"  # or "ensemble"


def refusals(result: Result) -> list[Diagnostic]:
    """Errors, and the warnings that `run` turns into errors: parts this version cannot run, and
    files (a baseline run, member runs) that are not there yet."""
    return result.errors + [replace(d, severity="error") for d in result.warnings if d.code in REFUSED_WARNINGS]


def execute(request: RunRequest, root: Path, resume_dir: Path | None = None, log: Log = print, callbacks: list | tuple = ()) -> Outcome:
    """Run a request: its ensemble when the spec has one, else the model."""
    if request.spec.ensemble is not None:
        if resume_dir is not None:
            raise UsageError("--resume continues a run; an ensemble reuses its finished members by itself: run it again")
        from mtlspec.ensemble.runner import run_ensemble

        run_dir, report = run_ensemble(request, root, log, train_or_reuse)
        return Outcome(run_dir, report, "ensemble")
    return run_one(request, root, resume_dir, log, callbacks)


def preflight(request: RunRequest, sources: dict[str, Any]) -> None:
    """Build the model on torch's meta device (no memory, no image decoded) before anything is
    written: what MMDetection refuses becomes diagnostics at the spec's lines."""
    from mtlspec.deep import model_check

    problems = model_check(request, sources)
    if problems:
        raise SpecError(problems)


def truncate_metrics(path: Path, step: int, epoch: int) -> None:
    """Drop the rows a resumed run will write again: steps after the checkpoint's, and epochs after its epoch."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut short by the crash
        if (row.get("kind") == "step" and row.get("step", 0) <= step) or (row.get("kind") == "epoch" and row.get("epoch", 0) <= epoch):
            kept.append(line)
    write_text_atomic(path, "".join(line + "\n" for line in kept))


def spec_differences(run_dir: Path, spec: Any) -> str:
    """Where this spec and the run's spec.resolved.yaml differ, for the refusal's message; keys the
    run's spec lacks were added to the language after it was made (an earlier mtlspec)."""
    import yaml

    from mtlspec.language.resolved import resolved_data

    resolved = run_dir / "spec.resolved.yaml"
    if spec is None or not resolved.is_file():
        return ""
    try:
        old = yaml.safe_load(resolved.read_text())
    except yaml.YAMLError:
        return ""
    found: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in list(dict.fromkeys([*a, *b])):
                where = f"{path}.{key}" if path else str(key)
                if key not in a:
                    found.append(f"{where} (not in the run's spec: added to the language after an earlier mtlspec made the run)")
                elif key not in b:
                    found.append(f"{where} (only in the run's spec)")
                else:
                    walk(a[key], b[key], where)
        elif a != b:
            found.append(f"{path}: {a!r} in the run, {b!r} now")

    walk(old, yaml.safe_load(yaml.safe_dump(resolved_data(spec))), "")
    return f"; they differ at {', '.join(found[:5])}{' ...' if len(found) > 5 else ''}" if found else ""


def prepare_resume(run_dir: Path, digest: str, spec: Any = None) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """Everything a resume needs, checked before the run directory is touched: the manifest, the
    latest checkpoint (of this spec, loaded safely). Then the directory is tidied: leftovers of an
    interrupted write removed, metrics.jsonl cut back to the checkpoint."""
    from mtlspec.train import checkpoint as ckpt

    if not run_dir.is_dir() or not (run_dir / "manifest.json").is_file():
        raise UsageError(f"--resume takes a run directory (the folder `mtlspec run` made, holding manifest.json and checkpoints/); {run_dir} is not one")
    info = read_manifest(run_dir)
    if info.get("spec_hash") != digest:
        raise ckpt.CheckpointError(f"{run_dir} was made from a different spec (hash {str(info.get('spec_hash'))[:12]}, this spec "
                                   f"{digest[:12]}{spec_differences(run_dir, spec)}); resume only with the spec that made it (its spec.resolved.yaml)")
    path = ckpt.latest(run_dir / "checkpoints")
    if path is None:
        raise ckpt.CheckpointError(f"no checkpoint to resume from in {run_dir / 'checkpoints'}")
    state = ckpt.load(path, digest)
    ckpt.remove_partial_writes(run_dir / "checkpoints")
    ckpt.remove_partial_writes(run_dir)
    truncate_metrics(run_dir / "metrics.jsonl", state["step"], state["epoch"])
    truncate_metrics(run_dir / TIMINGS_FILE, state["step"], state["epoch"])  # its rows are epochs
    info["resumed"] = [*info.get("resumed", []), {"at": now(), "from": path.name}]
    return info, state, path


def run_one(request: RunRequest, root: Path, resume_dir: Path | None = None, log: Log = print, callbacks: list | tuple = ()) -> Outcome:
    """Train one model and write its run directory (or continue one from its latest checkpoint)."""
    from mtlspec import distributed
    from mtlspec.baselines import baseline_metrics
    from mtlspec.data.build import build_sources
    from mtlspec.language.resolved import resolved_yaml
    from mtlspec.report.manifest import manifest, spec_hash
    from mtlspec.report.run_report import write_reports
    from mtlspec.train.loop import fit, seeded_build

    spec = request.spec
    digest = spec_hash(spec)
    data_root = Path(request.file).resolve().parent
    sources = build_sources(spec, "train", data_root)
    if not distributed.current().main:
        return helper_rank(spec, digest, data_root, sources, resume_dir)
    preflight(request, sources)
    tracking.require(spec)
    state = None
    if resume_dir is not None:
        info, state, path = prepare_resume(resume_dir, digest, spec)
        run_dir = resume_dir
        log(f"resuming {run_dir} from {path.name}")
    else:
        run_dir = new_run_dir(root, spec.name, request.variant)
        write_text_atomic(run_dir / "spec.resolved.yaml", resolved_yaml(spec))
        info = manifest(spec, request.file, request.variant, digest, started=now())
        if distributed.current().active:
            info["processes"] = distributed.current().size
    info = running(info)
    write_manifest(run_dir, info)
    trackers: list = []
    try:
        baseline = baseline_metrics(spec, request.file, root, log, train_or_reuse)
        built = seeded_build(spec, data_root, sources)
        init = getattr(built.model.topology, "init_report", None)
        if init is not None:
            info["backbone_init"] = init
            log(f"backbone: {init['loaded']} of {init['of']} tensors from {init['checkpoint']}"
                + (f"; not in it: {len(init['missing'])}" if init["missing"] else "")
                + (f"; unused: {len(init['unused'])} ({', '.join(init['unused'][:3])}{', ...' if len(init['unused']) > 3 else ''})" if init["unused"] else "")
                + (f"; other shapes: {len(init['mismatched'])}" if init["mismatched"] else ""))
        if spec.meta is not None:
            from mtlspec.meta.fit import fit_meta as fit
        trackers = tracking.open_trackers(spec, run_dir, root, state["step"] if state else None)
        outcome = fit(built, digest, run_dir, resume=state, log=log, callbacks=[*callbacks, *trackers],
                      baseline_val=baseline["val"] if baseline else None)
        info.update(status="finished", device=outcome.device, threads=outcome.threads, dataset_fingerprints=outcome.fingerprints, data=outcome.splits,
                    wall_seconds=round(outcome.wall_seconds, 3), epochs_run=outcome.epochs_run, ended=now())
        report = write_reports(run_dir, spec, info, outcome, baseline)
        write_manifest(run_dir, info)
        last_step = max([0, *(e.get("step", 0) for e in outcome.history)])
        for tracker in trackers:
            tracker.finish(report, info, last_step)
    except BaseException as exc:
        for tracker in trackers:
            tracker.close()
        exc.mtlspec_trace = record_failure(run_dir, info, exc)  # type: ignore[attr-defined]
        raise
    return Outcome(run_dir, report)


def helper_rank(spec: Spec, digest: str, data_root: Path, sources: dict[str, Any], resume_dir: Path | None) -> Outcome:
    """A rank other than 0 of a run on several processes: the same training, from the same
    checkpoint when resuming, into a scratch folder removed at the end (rank 0 writes the run)."""
    import shutil
    import tempfile

    from mtlspec import distributed
    from mtlspec.train import checkpoint as ckpt
    from mtlspec.train.loop import fit, seeded_build

    state = None
    if resume_dir is not None:
        path = ckpt.latest(resume_dir / "checkpoints")
        if path is None:
            raise ckpt.CheckpointError(f"no checkpoint to resume from in {resume_dir / 'checkpoints'}")
        state = ckpt.load(path, digest)
    scratch = Path(tempfile.mkdtemp(prefix=f"mtlspec-rank{distributed.current().rank}-"))
    try:
        fit(seeded_build(spec, data_root, sources), digest, scratch, resume=state, log=lambda message: None)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Outcome(scratch, {})


def finished_run(root: Path, digest: str) -> dict[str, Any] | None:
    """The newest finished run under root made from the spec with this hash: {"run_dir", "report"}."""
    for manifest_file in sorted(root.glob("*/manifest.json"), reverse=True):
        try:
            info = json.loads(manifest_file.read_text())
            report = manifest_file.parent / "report.json"
            if info.get("spec_hash") == digest and info.get("status") == "finished" and report.is_file():
                return {"run_dir": str(manifest_file.parent), "report": json.loads(report.read_text())}
        except (OSError, ValueError):
            continue  # a run directory being written, or damaged: not one to reuse
    return None


def interrupted_run(root: Path, digest: str) -> Path | None:
    """The newest run under root of the spec with this hash that was stopped (a signal, Ctrl-C)
    before it finished and holds a checkpoint to continue from."""
    for manifest_file in sorted(root.glob("*/manifest.json"), reverse=True):
        try:
            info = json.loads(manifest_file.read_text())
        except (OSError, ValueError):
            continue
        if info.get("spec_hash") == digest and info.get("status") == "interrupted" and any((manifest_file.parent / "checkpoints").glob("epoch-*.pt")):
            return manifest_file.parent
    return None


def train_or_reuse(spec: Spec, spec_file: str, root: Path, log: Log, what: str) -> dict[str, Any]:
    """A finished run of this exact spec under root/<name>/, else an interrupted one resumed from its
    checkpoint, else a new one trained now: {"run_dir", "report"}. `what` names the run in the log
    ("ensemble: member x", "baseline: the single-task run for 'seg'")."""
    from mtlspec.report.manifest import spec_hash
    from mtlspec.train.checkpoint import CheckpointError

    label, _, name = what.partition(": ")
    digest = spec_hash(spec)
    found = finished_run(root / spec.name, digest)
    if found is not None:
        log(f"{label}: reusing {found['run_dir']} for {name}")
        return found
    stopped = interrupted_run(root / spec.name, digest)
    if stopped is not None:
        log(f"{label}: resuming {stopped} for {name} (it was stopped before it finished)")
        try:
            outcome = run_one(RunRequest(spec, spec_file), root, resume_dir=stopped, log=log)
            return {"run_dir": str(outcome.run_dir), "report": outcome.report}
        except CheckpointError as exc:  # refused before anything was touched: train it anew
            log(f"{label}: cannot resume {stopped} ({exc}); training {name} anew")
    log(f"{label}: training {name}")
    outcome = run_one(RunRequest(spec, spec_file), root, log=log)
    return {"run_dir": str(outcome.run_dir), "report": outcome.report}
