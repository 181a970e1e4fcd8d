"""The `mtlspec` command line: each command a thin wrapper over one library call.

Heavy libraries (torch, MMDetection) are imported inside the commands that need them, so
`validate` and `schema` start fast.
"""

from __future__ import annotations

import functools
from enum import Enum
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from mtlspec import __version__
from mtlspec.errors import EXIT_FAILED, EXIT_INVALID, EXIT_USAGE, SpecError, UsageError, printable
from mtlspec.run_command import (
    EXIT_STOPPED, combination, execute_one, fail_usage as _fail_usage, internal_error as _internal_error, runnable as _runnable,
)

app = typer.Typer(
    name="mtlspec",
    help="A declarative experiment language and toolchain for multi-task learning in computer vision.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def guarded(command):
    """A command whose unexpected exceptions (bugs) end in one line and exit 4, the trace in a file."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            raise typer.Exit(_internal_error(exc, command.__name__)) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mtlspec {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    """A declarative experiment language and toolchain for multi-task learning in computer vision."""


SetOption = Annotated[
    Optional[list[str]], typer.Option("--set", "-s", help="Override a value: path.to.key=value (YAML scalar). Repeatable.")
]


AllowOption = Annotated[
    Optional[list[Path]],
    typer.Option("--allow-path", help="A folder outside the spec's project root that the spec may name (data, bases, runs). Repeatable."),
]


@app.command()
def env() -> None:
    """Show Python, torch, CUDA, mmengine, mmcv (with a live ops check) and mmdet."""
    from rich.console import Console
    from rich.table import Table

    from mtlspec.env import collect

    report = collect()
    table = Table(title="mtlspec environment")
    table.add_column("component")
    table.add_column("version / state")
    table.add_column("ok")
    for check in report.checks:
        table.add_row(check.name, check.detail, "[green]ok[/]" if check.ok else "[red]FAIL[/]")
    Console(emoji=False).print(table)
    failure = report.first_failure
    if failure:
        typer.echo(f"error: {failure.name}: {failure.detail} (run `make install`, see docs/install.md)", err=True)
        raise typer.Exit(EXIT_USAGE)


class Format(str, Enum):
    text = "text"
    json = "json"
    github = "github"


class DecodeChoice(str, Enum):
    sample = "sample"
    all = "all"


@app.command()
@guarded
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Spec files, or folders to search for *.yaml specs.")],
    format: Annotated[Format, typer.Option("--format", "-f", help="text, json, or github (workflow annotations).")] = Format.text,
    set_: SetOption = None,
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings (e.g. not-implemented) as errors.")] = False,
    deep: Annotated[
        bool, typer.Option("--deep", help="Also scan the data (every file present, a sample decoded) and build the model on torch's meta device to check shapes.")
    ] = False,
    decode: Annotated[DecodeChoice, typer.Option("--decode", help="With --deep: decode a sample of each split's images, or all of them.")] = DecodeChoice.sample,
    allow: AllowOption = None,
) -> None:
    """Check specs and report every problem at once, with file:line:col. Exit 1 if any is invalid."""
    from mtlspec.report.validation import render_validation
    from mtlspec.language import validate_paths

    try:
        results = validate_paths(paths, set_ or [], allow=allow or [])
    except UsageError as exc:
        _fail_usage(str(exc))
    if not results:
        _fail_usage("no spec files (*.yaml, *.yml) found in " + ", ".join(map(str, paths)))
    if deep:
        from mtlspec.deep import deep_check

        for result in results:
            if result.spec is not None and not [d for d in result.warnings if d.code == "not-implemented"]:
                result.diagnostics.extend(deep_check(result, decode.value))
    render_validation(results, format.value, strict)
    if not all(r.ok(strict) for r in results):
        raise typer.Exit(EXIT_INVALID)


@app.command()
@guarded
def run(
    spec: Annotated[Path, typer.Argument(help="The spec file to run (every combination of its matrix).")],
    set_: SetOption = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Root folder of run directories.")] = Path("runs"),
    resume: Annotated[
        Optional[Path], typer.Option("--resume", help="A run directory to continue from its latest checkpoint.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    allow: AllowOption = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Train this many matrix combinations (or an ensemble's members, or single-task baselines) at once, each in its own process on its share of the cores.")] = 1,
    nproc: Annotated[int, typer.Option("--nproc", min=1, help="Train one run on this many processes (data parallel, torch.distributed: gloo on CPU, one GPU each on CUDA); under torchrun, its ranks.")] = 1,
    ray: Annotated[Optional[str], typer.Option("--ray", metavar="ADDRESS", help="Train the combinations (and baselines, ensemble members) as tasks on a Ray cluster: auto, host:port, ray://host:port, or local (a Ray instance here). The spec's folder and --out must be at the same path on every node.")] = None,
) -> None:
    """Compile a spec into a model, train it, evaluate it, and write a run directory with reports.

    Exit codes: 0 finished, 1 invalid spec, 2 usage error, 3 a run could not finish (bad data, diverged, unusable checkpoint, interrupted), 4 a bug in mtlspec (trace written to a file)."""
    from rich.console import Console

    from mtlspec.run import RunRequest

    results = _runnable(spec, set_ or [], allow or [])
    if resume is not None and len(results) > 1:
        _fail_usage("--resume continues one run; this spec has a matrix of several")
    console = Console(stderr=True, highlight=False, emoji=False)  # ":100:" in a message is a line number, not an emoji
    from mtlspec.run_command import baseline_job, baseline_specs, distributed_refusal, ensemble_members, launch_ranks, member_job, rank_main

    torchrun = int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ
    if nproc > 1 or torchrun:
        if torchrun and nproc > 1:
            _fail_usage("--nproc: this process is one of torchrun's ranks already (RANK and WORLD_SIZE are set); give torchrun the process count")
        refusal = distributed_refusal(results, int(os.environ["WORLD_SIZE"]) if torchrun else nproc,
                                      int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"])) if torchrun else None)
        if refusal or jobs > 1 or ray:
            _fail_usage(f"--nproc: {refusal or 'give --jobs, --ray or --nproc, not several'}")
        arguments = (str(spec), list(set_ or []), [str(a) for a in allow or []], str(out), str(resume) if resume else None, quiet)
        if torchrun:
            rank_main(*arguments)
            raise typer.Exit(0)
        raise typer.Exit(launch_ranks(nproc, *arguments))
    if ray and jobs > 1:
        _fail_usage("--ray: Ray schedules the jobs on the cluster's resources; give --ray or --jobs, not both")
    if ray and resume is not None:
        _fail_usage("--ray: --resume continues one run here; run it without --ray")
    parallel = jobs > 1 or ray is not None
    if parallel and len(results) > 1 and any(r.spec.ensemble is not None for r in results):
        _fail_usage(f"{'--ray' if ray else '--jobs'}: this matrix trains ensembles, whose members parallel jobs would train several "
                    f"times over at once; run it without {'--ray' if ray else '--jobs'}")
    if ray:
        from functools import partial

        from mtlspec.parallel_ray import connect, disconnect, resources, run_on_ray

        try:
            connect(ray)
        except UsageError as exc:
            _fail_usage(str(exc))
        in_parallel = partial(run_on_ray, address=ray, ask=resources(results[0].spec))
    else:
        from mtlspec.parallel import run_jobs

        def in_parallel(task, *args):
            return run_jobs(task, *args, jobs)

    flag = "--ray" if ray else "--jobs"

    def pace(count: int) -> str:
        return "as Ray tasks" if ray else f"{min(jobs, count)} at a time"

    try:
        def first(task, count: int, what: str, otherwise: str) -> None:
            """`count` jobs before the combinations, in parallel; the combinations then find them done."""
            typer.echo(f"{flag}: training {what} first, {pace(count)}", err=True)
            failed = [status for _, status in in_parallel(task, spec, set_ or [], allow or [], count, out) if status]
            if failed:
                typer.echo(f"error: {len(failed)} of {count} did not finish; {otherwise}", err=True)
                raise typer.Exit(max(failed))

        baselines = baseline_specs(results) if parallel and resume is None else []
        if baselines:
            first(baseline_job, len(baselines), f"{len(baselines)} single-task baseline(s)", "no combination was started")
        members = ensemble_members(results) if parallel and resume is None else []
        if len(members) > 1:
            first(member_job, len(members), f"the ensemble's {len(members)} members", "the ensemble was not combined")
        if (jobs > 1 and len(results) > 1) or ray:
            outcomes = [(Path(d) if d else None, status) for d, status in in_parallel(combination, spec, set_ or [], allow or [], len(results), out)]
            done = [d for d, _ in outcomes if d is not None]
        else:
            outcomes = []
            for result in results:
                outcome, status = execute_one(RunRequest.of(result), out, resume, console, quiet)
                outcomes.append((outcome, status))
                if status is EXIT_STOPPED:  # a stop signal ends the sweep, not only this combination
                    break
            done = [outcome.run_dir for outcome, _ in outcomes if outcome is not None]
    finally:
        if ray:
            disconnect(ray)
    if len(results) > 1 and done:
        from mtlspec.report.compare import write_comparison

        path = write_comparison(out / results[0].spec.name, done)
        failed = len(results) - len(done)
        typer.echo(f"comparison of {len(done)} run(s) in {path}" + (f"; {failed} combination(s) failed" if failed else ""))
    raise typer.Exit(max(status for _, status in outcomes))


class GraphFormat(str, Enum):
    text = "text"
    json = "json"


@app.command()
@guarded
def graph(
    spec: Annotated[Path, typer.Argument(help="The spec file whose model to show.")],
    set_: SetOption = None,
    format: Annotated[GraphFormat, typer.Option("--format", "-f", help="text (a tree) or json.")] = GraphFormat.text,
    image_size: Annotated[Optional[int], typer.Option("--image-size", help="Image side for the MAC count (default: the spec's).")] = None,
    allow: AllowOption = None,
) -> None:
    """Show the compiled model: shared and per-task parts, parameter counts, MACs per image."""
    from rich.console import Console

    from mtlspec.graph import model_graph, render_tree

    results = _runnable(spec, set_ or [], allow or [])
    graphs = [model_graph(r.spec, spec.resolve().parent, image_size) | {"spec": r.name} for r in results]
    if format is GraphFormat.json:
        import json

        typer.echo(json.dumps(graphs if len(graphs) > 1 else graphs[0], indent=2))
    else:
        for g in graphs:
            Console(emoji=False).print(render_tree(g))


class CompareFormat(str, Enum):
    text = "text"
    md = "md"
    html = "html"
    json = "json"


@app.command()
@guarded
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run or ensemble directories (made by `mtlspec run`).")],
    baseline: Annotated[
        Optional[str], typer.Option("--baseline", help="A run directory, or single_task (each run's own single-task baselines).")
    ] = None,
    format: Annotated[CompareFormat, typer.Option("--format", "-f", help="text, md (CI summaries, PR comments), html, json.")] = CompareFormat.text,
    fail_if: Annotated[
        Optional[list[str]], typer.Option("--fail-if", help="A gate, e.g. 'delta_m < -1.0' or 'boxes.map50 drops > 0.02'. Repeatable.")
    ] = None,
    pareto: Annotated[Optional[str], typer.Option("--pareto", help="Two metrics for the HTML Pareto plot: task.metric,task.metric")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Compare runs: one table with each metric's direction, the best marked, Δm, and pass/fail gates."""
    from mtlspec.io import write_text_atomic
    from mtlspec.report.compare import apply_baseline, failures, load_rows, parse_gate, parse_pareto
    from mtlspec.report.formats import render

    try:
        rows = load_rows(runs)
        base = apply_baseline(rows, baseline)
        gates = [parse_gate(g, rows, baseline is not None) for g in fail_if or []]
        text = render(rows, format.value, baseline is not None, parse_pareto(pareto))
    except UsageError as exc:
        _fail_usage(str(exc))
    if output is not None:
        write_text_atomic(output, text)
    else:
        typer.echo(text, nl=False)
    failed = [f"FAIL {gate.text}: {line}" for gate in gates for line in failures(gate, rows, base)]
    for line in failed:
        typer.echo(line, err=True)
    if failed:
        raise typer.Exit(EXIT_INVALID)


@app.command()
@guarded
def reproduce(
    run_dir: Annotated[Path, typer.Argument(help="A run directory to re-run from its own resolved spec and manifest.")],
    tolerance: Annotated[float, typer.Option("--tolerance", help="Largest absolute difference allowed per metric (0: identical).")] = 0.0,
    out: Annotated[Path, typer.Option("--out", "-o", help="Root folder for the new run directory.")] = Path("runs"),
) -> None:
    """Re-run a run from its resolved spec; print each metric old vs new; exit 0 only if they match."""
    from mtlspec.reproduce import reproduce_run

    try:
        rows, new_dir = reproduce_run(run_dir, out)
    except UsageError as exc:
        _fail_usage(str(exc))
    worst = 0.0
    for task, metric, old, new in rows:
        diff = abs(new - old)
        worst = max(worst, diff)
        typer.echo(f"{task}.{metric:<16} old {old:.6f}  new {new:.6f}  diff {diff:.2e}")
    typer.echo(f"new run: {new_dir}")
    if worst > tolerance:
        typer.echo(f"error: metrics differ by up to {worst:.2e} (tolerance {tolerance:g})", err=True)
        raise typer.Exit(EXIT_INVALID)


@app.command()
@guarded
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (made by `mtlspec run`).")],
    inputs: Annotated[list[str], typer.Argument(help="Images, folders of images, or one split of the run's data: train, val or test.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the predictions.")] = Path("predictions"),
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")] = 16,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or auto.")] = "cpu",
    overlays: Annotated[bool, typer.Option("--overlays/--no-overlays", help="An annotated copy of each image under _overlays/.")] = True,
    score_threshold: Annotated[float, typer.Option("--score-threshold", help="Boxes drawn on overlays from this score (all are written).")] = 0.3,
) -> None:
    """Predict every task of a run on new images or a split: CSV, COCO results JSON, PNG maps, overlays."""
    from rich.progress import Progress

    from mtlspec.data.records import DataError
    from mtlspec.inference.predict import predict as run_predict
    from mtlspec.train.checkpoint import CheckpointError
    from mtlspec.train.loop import TrainingError, resolve_device

    with Progress(transient=True) as bar:
        task = bar.add_task("predicting", total=None)
        try:
            summary = run_predict(run_dir, inputs, out, batch_size, str(resolve_device(device)), overlays, score_threshold,
                                  progress=lambda done, total: bar.update(task, completed=done, total=total))
        except UsageError as exc:
            _fail_usage(str(exc))
        except (DataError, CheckpointError, TrainingError) as exc:  # an unreadable image, a damaged model file
            typer.echo(f"error: {printable(str(exc))}", err=True)
            raise typer.Exit(EXIT_FAILED) from None
    typer.echo(f"{summary['images']} image(s) from {summary['inputs']}; model: {summary['model']['selected']}")
    for name, info in summary["tasks"].items():
        typer.echo(f"  {name:<12} {out / (info.get('file') or info.get('folder', ''))}  ({info.get('format', '')})")
    if summary["overlays"]:
        typer.echo(f"  overlays     {out / '_overlays'}")


class ExportFormat(str, Enum):
    torchscript = "torchscript"
    onnx = "onnx"


@app.command()
@guarded
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (made by `mtlspec run`).")],
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="torchscript or onnx.")] = ExportFormat.torchscript,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="The file to write (default: RUN_DIR/model.ts or model.onnx).")] = None,
) -> None:
    """Export a run's model (raw head outputs) to TorchScript or ONNX, checked against eager on the same images."""
    from mtlspec.inference.export import export as run_export
    from mtlspec.train.checkpoint import CheckpointError

    try:
        info = run_export(run_dir, format.value, out)
    except UsageError as exc:
        _fail_usage(str(exc))
    except CheckpointError as exc:
        typer.echo(f"error: {printable(str(exc))}", err=True)
        raise typer.Exit(EXIT_FAILED) from None
    checked = info["checked"]
    typer.echo(f"{info['file']}: {len(info['outputs'])} output(s); on {checked['images']} images the largest difference from eager "
               f"is {checked['max_relative_difference']:.1e} (relative); inputs and outputs in {info['file']}.json")


@app.command()
@guarded
def adapt(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (made by `mtlspec run`): meta-learned or any other.")],
    task: Annotated[Path, typer.Option("--task", help="A spec file with one classification task: the new task, its data and labels.")],
    shots: Annotated[int, typer.Option("--shots", min=1, help="Labelled examples per class to adapt on (K).")] = 1,
    ways: Annotated[Optional[int], typer.Option("--ways", min=2, help="Classes per episode (N); the run's or the task spec's meta section, else 5.")] = None,
    queries: Annotated[Optional[int], typer.Option("--queries", min=1, help="Examples per class each episode is scored on; default as --ways.")] = None,
    episodes: Annotated[int, typer.Option("--episodes", min=1, help="Episodes averaged over.")] = 100,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="Gradient steps on each support set; default as --ways, else 10.")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", min=1e-12, help="Their learning rate (above 0); default as --ways, else 0.05.")] = None,
    heads_only: Annotated[Optional[bool], typer.Option("--heads-only/--all-parameters", help="Adapt the head alone, or every parameter.")] = None,
    scratch: Annotated[bool, typer.Option("--scratch", help="Start the run's architecture from a seeded fresh start instead of its weights.")] = False,
    from_task: Annotated[Optional[str], typer.Option("--from-task", help="Which of the run's tasks' features feed the new head (default: its meta task, else its first image-level task).")] = None,
    classes: Annotated[Optional[str], typer.Option("--classes", help="Draw episodes from these classes only, comma-separated (e.g. the ones a meta run held out).")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Draws the episodes (and a new head's start).")] = 0,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Also write the result as JSON to this file.")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or auto.")] = "cpu",
) -> None:
    """Adapt a trained model to a new classification task from K examples per class: mean accuracy over N-way K-shot episodes, with its 95% interval."""
    import json

    from mtlspec.data.records import DataError
    from mtlspec.io import write_text_atomic
    from mtlspec.meta.adapt import adapt as run_adapt
    from mtlspec.train.checkpoint import CheckpointError
    from mtlspec.train.loop import TrainingError, resolve_device

    try:
        chosen = [int(c) for c in classes.split(",") if c.strip()] if classes else None
    except ValueError:
        _fail_usage(f"--classes takes class numbers separated by commas, not {classes!r}")
    try:
        result = run_adapt(run_dir, task, shots, ways, queries, episodes, steps, lr, heads_only, scratch, seed, from_task,
                           str(resolve_device(device)), chosen)
    except SpecError as exc:
        for d in exc.diagnostics:
            typer.echo(d.format(), err=True)
        raise typer.Exit(EXIT_INVALID) from None
    except UsageError as exc:
        _fail_usage(str(exc))
    except (DataError, CheckpointError, TrainingError) as exc:  # bad data, a damaged run, no CUDA device
        typer.echo(f"error: {printable(str(exc))}", err=True)
        raise typer.Exit(EXIT_FAILED) from None
    if out is not None:
        write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    typer.echo(f"{result['task']}: {result['ways']}-way {result['shots']}-shot, {result['episodes']} episodes of the {result['split']} split, "
               f"from {result['start']} ({result['head']}; {result['inner']['steps']} steps at lr {result['inner']['lr']:g}, adapting {result['inner']['adapts']})")
    typer.echo(f"  accuracy {result['accuracy']:.4f} +/- {result['ci95']:.4f} (95% interval; chance {1 / result['ways']:.4f})")


class SchemaFormat(str, Enum):
    json = "json"
    md = "md"


@app.command()
def schema(
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
    format: Annotated[SchemaFormat, typer.Option("--format", "-f", help="json (Draft-07 JSON Schema) or md (field reference).")] = SchemaFormat.json,
) -> None:
    """Print the spec language as a Draft-07 JSON Schema (for editors and tools) or a reference."""
    from mtlspec.io import write_text_atomic

    if format is SchemaFormat.md:
        from mtlspec.language.reference import markdown_reference

        text = markdown_reference()
    else:
        from mtlspec.language.schema import json_schema_text

        text = json_schema_text()
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_text_atomic(output, text)


if __name__ == "__main__":  # pragma: no cover
    app()
