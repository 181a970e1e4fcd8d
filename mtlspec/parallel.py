"""`mtlspec run SPEC --jobs N`: the combinations of a spec's matrix trained N at a time, each in a
process of its own pinned to its share of the CPU cores (and, where there are GPUs, given one in
turn), so the jobs do not fight over cores.

A job's thread count follows from its share (`training.threads: auto` counts the cores the process
may use), so a combination run with `--jobs 2` on 2 cores uses 1 thread and its float rounding can
differ from the same combination run alone; set `training.threads` to get the same bits either way
(tested). Each job logs without a progress bar, its lines prefixed with its combination. Ctrl-C or
SIGTERM reach every job: each stops at a step boundary with a checkpoint (train/preemption.py).
"""

from __future__ import annotations

import os
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


def _pin(shares: Any) -> None:
    """A job process's start: take a share of cores (and a GPU) from the queue and keep to it."""
    cores, gpu = shares.get()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    _SHARE.update(cores=cores, gpu=gpu)


def run_jobs(task: Callable[..., tuple[str | None, int]], spec_file: Path, overrides: list[str], allow: list[Path], count: int, out: Path,
             jobs: int) -> list[tuple[str | None, int]]:
    """`task(spec_file, overrides, allow, index, out)` for the combinations 0..count-1, `jobs` at a
    time, each in a job process; (run directory or None, exit status) of each, in order. `task`
    must be importable by name (a module-level function): the job processes are spawned."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    jobs = max(1, min(jobs, count))
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    gpus = _gpu_count()
    context = multiprocessing.get_context("spawn")  # a fresh interpreter per job: no torch state forked from the parent
    shares = context.Queue()
    for i, share in enumerate(core_shares(cores, jobs)):
        shares.put((share, i % gpus if gpus else None))
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_pin, initargs=(shares,)) as pool:
        futures = [pool.submit(task, str(spec_file), overrides, [str(a) for a in allow], i, str(out)) for i in range(count)]
        return [f.result() for f in futures]


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # noqa: BLE001 (no usable CUDA: the jobs share the CPU)
        return 0
