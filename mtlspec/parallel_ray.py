"""`mtlspec run SPEC --ray ADDRESS`: the same jobs as `--jobs` (single-task baselines, an
ensemble's members, matrix combinations), each a Ray task on a cluster (Ray, an existing engine:
scheduling, placement and node failures are its business, not mtlspec's).

ADDRESS is what `ray.init` takes: `auto` (a cluster this machine belongs to, or RAY_ADDRESS),
`host:port` or `ray://host:port` (Ray Client), or `local` for a Ray instance started here (how the
tests run it). Every node runs the job functions of run_command.py from the same mtlspec install,
and reads the spec and writes the run directories at the same paths: the spec's folder and `--out`
must be on storage every node mounts at one path (the driver passes absolute paths).

Each task asks Ray for `training.threads` CPUs (1 where threads is `auto`) and one GPU where the
spec trains on `cuda`; Ray sets the task's OMP_NUM_THREADS to its CPUs, which `threads: auto`
follows. With a fixed `training.threads` a combination's result is the same bits as a serial run on
the same kind of machine (tested with a local instance). Ctrl-C or SIGTERM to the driver cancels
the tasks not yet started and interrupts the running ones: Ray delivers the cancel to a running
task as SIGINT, which the trainer takes as it takes Ctrl-C, stopping at the next step boundary
with a checkpoint (seen on a local instance: a mid-epoch checkpoint, manifest `interrupted`);
`--resume RUN_DIR` continues one. A task whose worker dies is one failed job; the others go on.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any, Callable

LOCAL = "local"


def connect(address: str) -> Any:
    """ray.init for an address as `--ray` takes it; UsageError where Ray is missing or unreachable."""
    from mtlspec.errors import UsageError

    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install 'mtlspec[ray]' (or `pip install ray`) on every node") from None
    if ray.is_initialized():
        return ray
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    if address != LOCAL:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UsageError(f"--ray {address}: cannot connect ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    return ray


def resources(spec: Any) -> dict[str, float]:
    """What one job of this spec asks Ray for."""
    threads = spec.training.threads
    return {"num_cpus": float(threads) if isinstance(threads, int) else 1.0, "num_gpus": 1.0 if spec.training.device == "cuda" else 0.0}


def run_on_ray(task: Callable[..., tuple[str | None, int]], spec_file: Path, overrides: list[str], allow: list[Path], count: int,
               out: Path, address: str, ask: dict[str, float]) -> list[tuple[str | None, int]]:
    """`task(spec_file, overrides, allow, index, out)` for index 0..count-1 as Ray tasks (each
    asking for `ask`); (run directory or None, exit status) of each, in order."""
    from mtlspec.errors import EXIT_FAILED

    ray = connect(address)
    remote = ray.remote(max_retries=0, **ask)(task)
    refs = [remote.remote(str(Path(spec_file).resolve()), list(overrides), [str(Path(a).resolve()) for a in allow], i, str(Path(out).resolve()))
            for i in range(count)]
    stopping: list[int] = []

    def stop(signum, frame):  # noqa: ARG001
        if stopping:
            raise KeyboardInterrupt
        stopping.append(signum)
        print(f"{signal.Signals(signum).name}: no further job starts; the running ones are interrupted (--resume continues them)", file=sys.stderr)
        for ref in refs:
            ray.cancel(ref, force=False)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        outcomes = []
        for i, ref in enumerate(refs):
            try:
                outcomes.append(tuple(ray.get(ref)))
            except ray.exceptions.TaskCancelledError:
                print(f"job {i + 1}: not started, or interrupted (the run was stopped)", file=sys.stderr)
                outcomes.append((None, EXIT_FAILED))
            except ray.exceptions.RayError as exc:  # the worker died, or the task raised past the job's own handling
                print(f"job {i + 1}: failed on Ray ({type(exc).__name__}: {str(exc).splitlines()[0][:300]})", file=sys.stderr)
                outcomes.append((None, EXIT_FAILED))
        return outcomes
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def disconnect(address: str) -> None:
    """After the last job: a local instance is stopped, a cluster left as it was."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
