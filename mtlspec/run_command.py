"""How `mtlspec run` runs concrete specs from the command line: the specs a file stands for (or
exit 1 naming why not), one run with its progress bar, signals and one-line failures, a `--jobs`
combination in its own process, and the one-line report of a bug. cli.py's `run` command is the
thin layer over these.

Imports nothing heavy at import time: `validate` and `schema` load this module too."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import typer

from mtlspec.errors import EXIT_FAILED, EXIT_INTERNAL, EXIT_INVALID, EXIT_OK, EXIT_USAGE, SpecError, UsageError, printable


def fail_usage(message: str) -> None:
    typer.echo(f"error: {printable(message)}", err=True)
    raise typer.Exit(EXIT_USAGE)


def runnable(spec: Path, overrides: list[str], allow: list[Path]) -> list:
    """Every concrete spec the file stands for, or exit 1 naming each error, each part this
    version cannot run and each file a run would need that is not there."""
    from mtlspec.run import refusals
    from mtlspec.language import validate_file

    if not spec.is_file():
        fail_usage(f"no such spec file: {spec}")
    try:
        results = validate_file(spec, overrides, allow=allow)
    except UsageError as exc:
        fail_usage(str(exc))
    blocked = [r for r in results if refusals(r)]
    if blocked:
        for r in blocked:
            for d in refusals(r):
                typer.echo(d.format(), err=True)
        typer.echo(f"error: {len(blocked)} of {len(results)} spec(s) cannot run", err=True)
        raise typer.Exit(EXIT_INVALID)
    return results


def internal_error(exc: BaseException, what: str) -> int:
    """One line for a bug, with where its full trace went."""
    from mtlspec.errors import write_trace

    trace = getattr(exc, "mtlspec_trace", None) or write_trace(exc)
    typer.echo(printable(f"error: {what}: internal error ({type(exc).__name__}: {exc})")[:400], err=True)
    typer.echo(f"  this is a bug in mtlspec; the full trace is in {trace} (please report it)", err=True)
    return EXIT_INTERNAL


def combination(spec_file: str, overrides: list[str], allow: list[str], index: int, out: str) -> tuple[str | None, int]:
    """In a `--jobs` process (mtlspec/parallel.py): train combination `index` of the spec (validated
    again here: specs are cheap to check, and only paths cross the process boundary). Returns (run
    directory or None, exit status)."""
    from rich.console import Console

    from mtlspec.parallel import stopped
    from mtlspec.run import RunRequest

    if stopped():
        typer.echo(f"combination {index + 1}: not started (the sweep was stopped)", err=True)
        return None, EXIT_FAILED
    results = runnable(Path(spec_file), overrides, [Path(a) for a in allow])
    request = RunRequest.of(results[index])
    console = Console(stderr=True, highlight=False, emoji=False)

    class Prefixed:  # every line says which combination it is about (not wrapped: a continuation line would not)
        def print(self, message: str, **kwargs: Any) -> None:
            console.print(f"[{request.name}] {message}", soft_wrap=True, **kwargs)

    outcome, status = execute_one(request, Path(out), None, Prefixed(), quiet=True)
    return (str(outcome.run_dir) if outcome is not None else None), int(status)


class _Stopped(int):
    """The exit status of a run stopped by a signal: 3 like any run that could not finish, told
    apart (`is EXIT_STOPPED`) so a sweep stops there instead of starting the next combination."""


EXIT_STOPPED = _Stopped(EXIT_FAILED)


def execute_one(request, out: Path, resume: Optional[Path], console, quiet: bool, reuse: bool = False):
    """Run one concrete spec (or its ensemble); returns (outcome or None, exit status), a failure in
    one line. `reuse`: a finished run of the same spec under `out` is the outcome, and a stopped one
    is resumed (train_or_reuse: how single-task baselines are trained)."""
    import contextlib
    import signal

    from mtlspec.data.records import DataError
    from mtlspec.report.progress import RunProgress
    from mtlspec.report.summary import summary_lines
    from mtlspec.run import execute
    from mtlspec.train.checkpoint import CheckpointError
    from mtlspec.train.loop import TrainingError

    def log(message: str) -> None:
        console.print(printable(message), markup=False)

    def terminated(signum, frame):  # SIGTERM (a scheduler's stop) ends the run as Ctrl-C does: recorded, resumable
        raise KeyboardInterrupt

    log(f"{request.name}: training")
    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        with contextlib.ExitStack() as stack:
            callbacks = [] if quiet else [stack.enter_context(RunProgress(console))]
            if reuse:
                from mtlspec.run import Outcome, train_or_reuse

                found = train_or_reuse(request.spec, request.file, out, log, f"baseline: {request.name}")
                outcome = Outcome(Path(found["run_dir"]), found["report"])
            else:
                outcome = execute(request, out, resume, log, callbacks)
    except SpecError as exc:
        for d in exc.diagnostics:
            typer.echo(d.format(), err=True)
        return None, EXIT_INVALID
    except UsageError as exc:
        typer.echo(printable(f"error: {request.name}: {exc}"), err=True)
        return None, EXIT_USAGE
    except (TrainingError, CheckpointError, DataError) as exc:
        typer.echo("\n".join(printable(line) for line in f"error: {request.name}: {exc}".splitlines()), err=True)
        return None, EXIT_FAILED
    except KeyboardInterrupt as exc:
        if str(exc):  # stopped at a step boundary on a signal: the message names the checkpoint and the resume
            typer.echo(printable(f"error: {request.name}: {exc}"), err=True)
            return None, EXIT_STOPPED
        where = getattr(exc, "mtlspec_trace", None)
        resume_hint = f"; continue with --resume {where.parent}" if where is not None and (where.parent / "checkpoints").is_dir() else ""
        typer.echo(f"error: {request.name}: interrupted{resume_hint}", err=True)
        return None, EXIT_STOPPED
    except Exception as exc:
        return None, internal_error(exc, request.name)
    finally:
        signal.signal(signal.SIGTERM, previous)
    typer.echo("\n".join(printable(line) for line in summary_lines(request.name, outcome.run_dir, outcome.report, outcome.kind)))
    return outcome, EXIT_OK


def distributed_refusal(results: list, nproc: int, local: int | None = None) -> str | None:
    """Why these specs cannot train on `nproc` processes as one run (`local` of them on this
    machine; all when None), or None."""
    if len(results) > 1:
        return "it trains one run on several processes; this spec has a matrix of several (run one combination with --set)"
    spec = results[0].spec
    if spec.ensemble is not None or spec.evaluation.baseline.type == "single_task" or spec.meta is not None:
        return "ensembles, single-task baselines and meta-learning train on one process for now"
    if getattr(spec.weighting, "space", "params") == "representation":
        return ("weighting.space: representation reduces per-sample gradients, which differ between ranks' shards; "
                "use space: params with several processes")
    if spec.data.batch_size % nproc:
        return f"data.batch_size {spec.data.batch_size} (the global batch) does not split evenly over {nproc} processes"
    if spec.training.device == "cuda" or spec.training.device == "auto":
        import torch

        here = nproc if local is None else local
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if spec.training.device == "cuda" and visible < here or 0 < visible < here:
            return f"{here} processes on this machine train on one GPU each, and {visible} GPU(s) are visible (CUDA_VISIBLE_DEVICES)"
    return None


def rank_main(spec_file: str, overrides: list[str], allow: list[str], out: str, resume: Optional[str], quiet: bool) -> None:
    """One rank of `run --nproc N` (spawned by mtlspec/distributed.py) or of `torchrun -m mtlspec
    run`: join the process group, train; rank 0 alone prints and writes the run directory. Exits
    with the run's status."""
    import sys

    from rich.console import Console

    from mtlspec import distributed
    from mtlspec.run import RunRequest

    results = runnable(Path(spec_file), overrides, [Path(a) for a in allow])
    request = RunRequest.of(results[0])
    world = distributed.join(request.spec.training.device)

    try:
        if world.main:
            console = Console(stderr=True, highlight=False, emoji=False)
            _, status = execute_one(request, Path(out), Path(resume) if resume else None, console, quiet)
        else:  # the same steps, quietly: rank 0 reports; a failure of this rank alone is still shown
            from mtlspec.data.records import DataError
            from mtlspec.run import execute
            from mtlspec.train.checkpoint import CheckpointError
            from mtlspec.train.loop import TrainingError

            try:
                execute(request, Path(out), Path(resume) if resume else None, lambda message: None)
                status = EXIT_OK
            except (SpecError, UsageError, TrainingError, CheckpointError, DataError, KeyboardInterrupt) as exc:
                if not isinstance(exc, KeyboardInterrupt) or not str(exc):  # (a stop at a step boundary is rank 0's to report)
                    typer.echo(printable(f"[rank {world.rank}] {type(exc).__name__}: {exc}")[:600], err=True)
                status = EXIT_FAILED
        # every rank ended its run the same way: wait until all have (rank 0 may still be writing its
        # checkpoint or reports; the launcher ends every rank once one has exited with a failure)
        distributed.barrier(world)
    finally:
        distributed.leave()
    if status:
        sys.exit(int(status))


def launch_ranks(nproc: int, spec_file: str, overrides: list[str], allow: list[str], out: str, resume: Optional[str], quiet: bool) -> int:
    """`run --nproc N`: N ranks on this machine; SIGTERM and SIGINT are passed on to them (each
    stops at the same step boundary and rank 0 checkpoints). Returns the exit status."""
    import signal

    import torch.multiprocessing as mp

    from mtlspec import distributed

    context = distributed.launch(nproc, rank_main, (spec_file, overrides, allow, out, resume, quiet))

    def forward(signum, frame):  # noqa: ARG001
        for process in context.processes:
            if process.is_alive():
                os.kill(process.pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not context.join():
            pass
    except mp.ProcessExitedException as exc:
        return int(exc.exit_code) if exc.exit_code and exc.exit_code > 0 else EXIT_FAILED
    except mp.ProcessRaisedException as exc:
        return internal_error(exc, f"rank {exc.error_index}")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return EXIT_OK


def baseline_specs(results: list) -> list[tuple[int, str]]:
    """The single-task baselines the combinations need, each once: (combination, task) of the first
    combination that needs each distinct spec (combinations sharing a baseline train it once)."""
    from mtlspec.baselines import single_task_spec
    from mtlspec.report.manifest import spec_hash

    seen: set[str] = set()
    out = []
    for index, result in enumerate(results):
        if result.spec.evaluation.baseline.type != "single_task":
            continue
        for task in result.spec.tasks:
            digest = spec_hash(single_task_spec(result.spec, task))
            if digest not in seen:
                seen.add(digest)
                out.append((index, task))
    return out


def ensemble_members(results: list) -> list[tuple[Any, str]]:
    """The members one ensemble spec trains that can train in parallel (ensemble.members.trained_members):
    none for a matrix (refused with --jobs), or for an ensemble of given runs, or boosting (each
    member is fitted to the ones before it)."""
    if len(results) != 1 or results[0].spec.ensemble is None or results[0].spec.ensemble.strategy.type == "boosting":
        return []
    from mtlspec.ensemble.members import trained_members

    return trained_members(results[0].spec, results[0].file)


def member_job(spec_file: str, overrides: list[str], allow: list[str], index: int, out: str) -> tuple[str | None, int]:
    """In a `--jobs` process: train (or reuse, or resume) the index-th member of ensemble_members.
    Returns (run directory or None, exit status)."""
    from rich.console import Console

    from mtlspec.parallel import stopped
    from mtlspec.run import RunRequest

    single, file = ensemble_members(runnable(Path(spec_file), overrides, [Path(a) for a in allow]))[index]
    name = f"member {single.name}"
    if stopped():
        typer.echo(f"{name}: not started (the run was stopped)", err=True)
        return None, EXIT_FAILED
    console = Console(stderr=True, highlight=False, emoji=False)

    class Prefixed:
        def print(self, message: str, **kwargs: Any) -> None:
            console.print(f"[{name}] {message}", soft_wrap=True, **kwargs)

    outcome, status = execute_one(RunRequest(single, file), Path(out), None, Prefixed(), quiet=True, reuse=True)
    return (str(outcome.run_dir) if outcome is not None else None), int(status)


def baseline_job(spec_file: str, overrides: list[str], allow: list[str], index: int, out: str) -> tuple[str | None, int]:
    """In a `--jobs` process: train (or reuse, or resume) the index-th baseline of baseline_specs.
    Returns (run directory or None, exit status)."""
    from rich.console import Console

    from mtlspec.baselines import single_task_spec
    from mtlspec.parallel import stopped
    from mtlspec.run import RunRequest

    results = runnable(Path(spec_file), overrides, [Path(a) for a in allow])
    combination, task = baseline_specs(results)[index]
    name = f"{results[combination].spec.name} baseline {task}"
    if stopped():
        typer.echo(f"{name}: not started (the sweep was stopped)", err=True)
        return None, EXIT_FAILED
    request = RunRequest(single_task_spec(results[combination].spec, task), results[combination].file)
    console = Console(stderr=True, highlight=False, emoji=False)

    class Prefixed:
        def print(self, message: str, **kwargs: Any) -> None:
            console.print(f"[{name}] {message}", soft_wrap=True, **kwargs)

    outcome, status = execute_one(request, Path(out), None, Prefixed(), quiet=True, reuse=True)
    return (str(outcome.run_dir) if outcome is not None else None), int(status)
