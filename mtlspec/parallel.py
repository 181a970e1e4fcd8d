"""`mtlspec run SPEC --jobs N`: the combinations of a spec's matrix trained N at a time, each in a
process of its own pinned to its share of the CPU cores (and, where there are GPUs, given one in
turn), so the jobs do not fight over cores.

A job's thread count follows from its share (`training.threads: auto` counts the cores the process
may use), so a combination run with `--jobs 2` on 2 cores uses 1 thread and its float rounding can
differ from the same combination run alone; set `training.threads` to get the same bits either way
(tested). Each job logs without a progress bar, its lines prefixed with its combination.

Ctrl-C or SIGTERM to the sweep: no further combination starts, and the parent passes the signal on
to each running job (each in a process group of its own, so a terminal's Ctrl-C reaches it once),
which stops at a step boundary with a checkpoint (train/preemption.py); a second signal stops at
once. A job whose process dies counts as a failed combination; the others go on. On Linux a job
whose parent is killed gets SIGTERM. Core pinning needs `os.sched_setaffinity` (Linux); elsewhere
the jobs share every core.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable

_SHARE: dict[str, Any] = {}


def core_shares(cores: list[int], jobs: int) -> list[list[int]]:
    """`jobs` disjoint, near-equal groups of the cores in order (with fewer cores than jobs, the
    cores are shared round-robin)."""
    if len(cores) < jobs:
        return [[cores[i % len(cores)]] for i in range(jobs)]
    size, extra = divmod(len(cores), jobs)
    out, start = [], 0
    for i in range(jobs):
        end = start + size + (1 if i < extra else 0)
        out.append(cores[start:end])
        start = end
    return out


def stopped() -> bool:
    """In a job process: whether the sweep was stopped (a combination that has not started yet
    must not; the pool may already have handed it to this process)."""
    event = _SHARE.get("stop")
    return bool(event is not None and event.is_set())


def _pin(shares: Any, stop: Any) -> None:
    """A job process's start: a process group of its own (a terminal's Ctrl-C reaches the parent
    alone, which passes each signal on once), a SIGTERM should the parent die (Linux), and a share
    of cores (and a GPU) from the queue, kept to."""
    os.setpgrp()
    _die_with_parent()
    cores, gpu = shares.get()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    _SHARE.update(cores=cores, gpu=gpu, stop=stop)


def _die_with_parent() -> None:
    """Linux: SIGTERM to this process when its parent exits (a killed sweep leaves no orphan
    training on: the job stops at a step boundary with a checkpoint)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def gpu_ids(count: int) -> list[str]:
    """The GPUs jobs take in turn, as CUDA_VISIBLE_DEVICES names them for this process (a parent
    restricted to GPUs 2 and 3 gives its jobs 2 and 3, not 0 and 1)."""
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return visible[:count] if visible else [str(i) for i in range(count)]


def run_jobs(task: Callable[..., tuple[str | None, int]], spec_file: Path, overrides: list[str], allow: list[Path], count: int, out: Path,
             jobs: int) -> list[tuple[str | None, int]]:
    """`task(spec_file, overrides, allow, index, out)` for the combinations 0..count-1, `jobs` at a
    time, each in a job process; (run directory or None, exit status) of each, in order. `task`
    must be importable by name (a module-level function): the job processes are spawned."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    jobs = max(1, min(jobs, count))
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    gpus = gpu_ids(_gpu_count())
    context = multiprocessing.get_context("spawn")  # a fresh interpreter per job: no torch state forked from the parent
    shares = context.Queue()
    for i, share in enumerate(core_shares(cores, jobs)):
        shares.put((share, gpus[i % len(gpus)] if gpus else None))
    stop_event = context.Event()
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_pin, initargs=(shares, stop_event))
    futures = [pool.submit(task, str(spec_file), overrides, [str(a) for a in allow], i, str(out)) for i in range(count)]
    stopping: list[int] = []

    def stop(signum, frame):  # noqa: ARG001  (the first signal: no new job starts, running ones stop at a step boundary)
        if stopping:
            raise KeyboardInterrupt
        stopping.append(signum)
        stop_event.set()
        print(f"{signal.Signals(signum).name}: no further combination starts; the running ones stop at a step boundary", file=sys.stderr)
        for future in futures:
            future.cancel()
        for process in list(getattr(pool, "_processes", {}).values()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return [_outcome(i, future) for i, future in enumerate(futures)]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        pool.shutdown(wait=True, cancel_futures=True)


def _outcome(index: int, future: Any) -> tuple[str | None, int]:
    """A job's (run directory, exit status); a combination never started, or whose process died
    (the OOM killer, a SIGKILL), is a failed run (3), not a failure of the whole sweep."""
    from concurrent.futures import CancelledError
    from concurrent.futures.process import BrokenProcessPool

    from mtlspec.errors import EXIT_FAILED

    try:
        return future.result()
    except CancelledError:
        print(f"combination {index + 1}: not started (the sweep was stopped)", file=sys.stderr)
    except BrokenProcessPool as exc:
        print(f"combination {index + 1}: its job process died ({exc}); its run directory, if any, says running", file=sys.stderr)
    return None, EXIT_FAILED


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001 (no usable CUDA: the jobs share the CPU)
        return 0
