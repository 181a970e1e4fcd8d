"""What a training run is set up with before its first step: the device, autocast for the
precision, the seeds, the CPU thread count, and the data loaders with the batch order of each epoch
(deterministic in seed and epoch, and able to start partway through an epoch on a resume)."""

from __future__ import annotations

import contextlib
import random
from typing import Any, Callable

import numpy as np
import torch

from mtlspec.data.dataset import collate_fn
from mtlspec.data.sampling import epoch_order
from mtlspec.train.preemption import quiet_worker


class TrainingError(Exception):
    """The run cannot go on (a loss turned NaN, a checkpoint does not fit); the message says why and what is safe."""


def resolve_device(choice: str, local_rank: int | None = None) -> torch.device:
    """The device a run trains on; with several ranks on CUDA, each its own GPU (cuda:LOCAL_RANK)."""
    if choice in ("cuda", "auto") and local_rank is not None and torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    if choice == "cuda" and not torch.cuda.is_available():
        raise TrainingError("training.device is cuda but torch sees no CUDA device (see `mtlspec env`)")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(choice)
    except RuntimeError:  # only a command-line option can name one the language does not
        from mtlspec.errors import UsageError

        raise UsageError(f"--device {choice!r}: expected cpu, cuda, cuda:N or auto") from None


def resolved_precision(device: torch.device, precision: str) -> str:
    """`auto`: bf16 on a CUDA device that has it, else fp32."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return precision


def grad_scaler_for(device: torch.device, precision: str) -> Any:
    """fp16 needs its losses scaled so small gradients survive float16's range (bf16 has float32's
    exponent and needs none): a GradScaler at torch's defaults (2^16, halved on an overflow, the
    step skipped; doubled after 2,000 clean steps). None for the other precisions."""
    if resolved_precision(device, precision) != "fp16":
        return None
    return torch.amp.GradScaler(device.type)


def autocast_for(device: torch.device, precision: str) -> Callable[[], Any]:
    precision = resolved_precision(device, precision)
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


TORCH_DEFAULT_THREADS = torch.get_num_threads()  # torch's own choice (physical cores), before any run sets it


def thread_count(spec: Any) -> int:
    """The CPU threads a run uses: `training.threads`, or for `auto` torch's default (physical
    cores) capped at the cores available less one per data-loader worker, at least 1."""
    import os

    chosen = spec.training.threads
    if chosen != "auto":
        return int(chosen)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(TORCH_DEFAULT_THREADS, cores - spec.data.num_workers))


def one_thread_per_worker(_: int) -> None:
    """Data-loader workers decode and transform; each keeps to one thread so the trainer's threads
    keep their cores, and leaves SIGTERM and SIGINT to the trainer (train/preemption.py)."""
    torch.set_num_threads(1)
    quiet_worker()


class BatchOrder(torch.utils.data.Sampler):
    """Batches of one epoch, in the order the sampling policy gives for (seed, epoch)."""

    def __init__(self, sizes: list[int], batch_size: int, policy: str, t: float, seed: int, max_steps: int | None,
                 rank: int = 0, ranks: int = 1):
        self.sizes, self.batch_size, self.policy, self.t, self.seed = sizes, batch_size, policy, t, seed
        self.max_steps, self.epoch = max_steps, 0
        self.skip = 0  # batches of this epoch already trained (a resume from within the epoch)
        self.rank, self.ranks = rank, ranks  # with several ranks, each takes its slice of every global batch

    def __iter__(self):
        order = epoch_order(self.sizes, self.policy, self.seed, self.epoch, self.t)
        share = self.batch_size // self.ranks
        # (index, epoch): the epoch travels with each index to the data-loader workers (persistent ones included)
        batches = [[(int(i), self.epoch) for i in order[start + self.rank * share : start + (self.rank + 1) * share]]
                   for start in range(0, len(order) - self.batch_size + 1, self.batch_size)]
        return iter((batches[: self.max_steps] if self.max_steps else batches)[self.skip :])

    def __len__(self) -> int:
        n = sum(self.sizes) // self.batch_size
        return min(n, self.max_steps) if self.max_steps else n


def make_loader(dataset: Any, batch_size: int, workers: int, sampler: Any = None,
                shard: tuple[int, int] | None = None, pin: bool = False) -> torch.utils.data.DataLoader:
    """Batches in the sampler's order (training) or in dataset order (evaluation). Each loader has a
    random generator of its own: every pass over a DataLoader draws its workers' base seed from
    its generator, and from torch's global one without it, which would shift every later draw
    (RLW's weights, dropout) of a run resumed within an epoch. Samples are augmented from seeds of
    their own (seed, epoch, index), so the workers' seeds change nothing they compute. `shard`
    (rank, ranks): evaluation's batches of this rank alone (train/evaluate.py gathers them). `pin`:
    batches in page-locked memory, for copies to a GPU that overlap the computation."""
    collate = collate_fn(dataset.task_types)
    common = {"collate_fn": collate, "num_workers": workers, "worker_init_fn": one_thread_per_worker if workers else None,
              "generator": torch.Generator().manual_seed(0), "pin_memory": pin,
              "persistent_workers": workers > 0}  # workers start once per loader, not once per epoch
    if sampler is None and shard is not None and shard[1] > 1:  # evaluation on several ranks: rank r takes batches r, r + N, ...
        rank, ranks = shard
        sampler = [list(range(i, min(i + batch_size, len(dataset)))) for i in range(0, len(dataset), batch_size)][rank::ranks]
    if sampler is not None:
        return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, **common)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, **common)
