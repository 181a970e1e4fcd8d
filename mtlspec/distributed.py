"""Training on several processes with torch.distributed: `mtlspec run SPEC --nproc N` on one machine,
or the same command under `torchrun` (one or several machines, through its rendezvous).

Data parallel, every rank holding the whole model: each takes its shard of every global batch
(`data.batch_size` is the global batch), and what each weighting method needs is reduced across
ranks before it acts, so that every rank takes the same step:
- the task losses' values (one all-reduce of 2T numbers): loss-based methods weight by the global
  losses, and the log shows them; each loss keeps its own rank's graph, weighted by its share of
  the task's labelled samples (a task labelled on some samples only is averaged over those);
- for a gradient method, the T x P matrix of per-task gradients of the shared part (one
  all-reduce), before the method aggregates it, identically on every rank;
- then every parameter's gradient (one all-reduce of one flat buffer), as DDP would;
- which tasks had a labelled sample anywhere, and whether any rank was asked to stop.
Evaluation is sharded by batch: rank r evaluates batches r, r + N, ...; rank 0 gathers the
predictions, updates the metrics in the single-process batch order (the same numbers as one
process), and sends the scores to every rank (early stopping decides the same everywhere).
No DistributedDataParallel wrapper: its reducer fires during backward and cannot reduce the
per-task rows that a gradient method needs before it aggregates (LibMTL issue #71; "Expected to
mark a variable ready only once" in PCGrad ports). The price: no overlap of communication with
the backward pass.

gloo on the CPU, nccl on CUDA (one GPU per rank: cuda:LOCAL_RANK). Rank 0 writes the run
directory; the others write nothing that stays.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of a run (rank 0 of 1 outside torch.distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def current() -> World:
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return World()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def join(device: str) -> World:
    """Join the process group torchrun (or `launch`) described in the environment: nccl where the
    run trains on CUDA, gloo otherwise."""
    if not (dist.is_available() and dist.is_initialized()):
        cuda = device != "cpu" and torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo", init_method="env://")
    return current()


def barrier(world: World) -> None:
    if world.active:
        dist.barrier()


def leave() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(nproc: int, target: Callable[..., Any], args: tuple) -> Any:
    """Start target(*args) in `nproc` spawned processes that form one process group on this machine
    (the environment torchrun would set: MASTER_ADDR/PORT, RANK, LOCAL_RANK, WORLD_SIZE). Returns
    torch's ProcessContext: its join() raises when a rank fails, and then ends the others."""
    import torch.multiprocessing as mp

    port = free_port()
    return mp.start_processes(_rank_main, args=(nproc, port, target, args), nprocs=nproc, join=False, start_method="spawn")


def _rank_main(rank: int, nproc: int, port: int, target: Callable[..., Any], args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(nproc))
    target(*args)


def global_losses(losses: dict[str, torch.Tensor], world: World, counts: dict[str, torch.Tensor] | None = None,
                  whole: set[str] | frozenset[str] = frozenset()) -> dict[str, torch.Tensor]:
    """Each loss with the value of the global batch's loss and a gradient whose average over the
    ranks is that loss's gradient. A task in `counts` (its labelled samples in this rank's slice)
    has a loss that is a mean over them: the global value is sum_r n_r L_r / N, and this rank's
    loss is weighted by W n_r / N (0 where it has no labelled sample; 1 when the slices hold equal
    counts). A task in `whole` computed the global batch's loss on every rank (gather_rows), each
    rank's graph reaching its own rows only: its loss is weighted by W, so the average over ranks
    sums the rows' parts. Other tasks (their own normalisation) take the plain mean of the ranks' losses."""
    if not world.active or not losses:
        return losses
    counts = {t: n for t, n in (counts or {}).items() if t not in whole}
    names = list(losses)
    values = torch.stack([losses[t].detach().float().reshape(()) for t in names])
    n = torch.stack([counts[t].float().reshape(()).to(values.device) if counts and t in counts else torch.ones((), device=values.device)
                     for t in names])
    packed = torch.cat([values * n, n])
    dist.all_reduce(packed)
    total, labelled = packed[: len(names)], packed[len(names):]
    safe = labelled.clamp(min=1e-12)
    mean = torch.where(labelled > 0, total / safe, torch.zeros_like(total))
    factor = torch.where(labelled > 0, world.size * n / safe, torch.zeros_like(n))
    out = {}
    for i, t in enumerate(names):
        local = losses[t] * (world.size if t in whole else factor[i].to(losses[t].dtype))
        out[t] = local + (mean[i].to(losses[t].dtype) - local.detach())
    return out


def gather_rows(tensors: list[torch.Tensor], world: World) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every rank's rows of each tensor, in rank order, as one batch (what a loss over the whole
    global batch reads: CLIP's negatives from every rank), and which rows are this rank's. This
    rank's own rows keep their graph; the others' come without one (each rank differentiates the
    loss with respect to its own rows; averaged over ranks with the factor global_losses gives a
    `whole` task, that is the global batch's gradient). Ranks may hold different row counts."""
    device = tensors[0].device
    count = torch.tensor([tensors[0].shape[0]], device=device)
    sizes = [torch.zeros_like(count) for _ in range(world.size)]
    dist.all_gather(sizes, count)
    counts = [int(s) for s in sizes]
    most = max(counts)
    out = []
    for tensor in tensors:
        flag = tensor.dtype == torch.bool  # gloo gathers no bool
        own = tensor.to(torch.uint8) if flag else tensor
        padded = torch.cat([own, own.new_zeros((most - own.shape[0], *own.shape[1:]))])
        parts = [torch.empty_like(padded) for _ in range(world.size)]
        dist.all_gather(parts, padded.detach().contiguous())
        parts[world.rank] = padded
        joined = torch.cat([part[:n] for part, n in zip(parts, counts)])
        out.append(joined.bool() if flag else joined)
    mine = torch.zeros(sum(counts), dtype=torch.bool, device=device)
    start = sum(counts[: world.rank])
    mine[start : start + counts[world.rank]] = True
    return out, mine


def any_rank(flags: list[bool], world: World, device: torch.device) -> list[bool]:
    """For each flag, whether it is set on any rank (tasks present in the global batch, a stop signal)."""
    if not world.active:
        return flags
    found = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=device)
    dist.all_reduce(found, op=dist.ReduceOp.MAX)
    return [bool(v) for v in found.tolist()]


@dataclass(frozen=True)
class Ranks:
    """What a gradient method's backward asks of the other ranks (weighting/base.py gradient_step)."""

    world: World
    device: torch.device

    def mean_rows(self, G: torch.Tensor) -> torch.Tensor:
        return mean_rows(G, self.world)

    def all(self, flag: bool) -> bool:
        """Whether `flag` holds on every rank."""
        return not any_rank([not flag], self.world, self.device)[0]


def mean_rows(G: torch.Tensor, world: World) -> torch.Tensor:
    """The ranks' per-task gradient matrices averaged (the gradient of the global batch's mean loss)."""
    if world.active:
        dist.all_reduce(G)
        G /= world.size
    return G


def broadcast_buffers(model: torch.nn.Module, world: World) -> None:
    """Rank 0's buffers (BatchNorm's running statistics) on every rank, as DDP's broadcast_buffers
    does: each rank's statistics come from its own slice, and evaluation, checkpoints and model.pt
    must read one model."""
    if not world.active:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def mean_gradients(parameters: list[torch.Tensor], world: World, device: torch.device | None = None) -> None:
    """Every parameter's .grad averaged over the ranks, in one flat buffer on `device` (the
    model's: nccl reduces CUDA tensors only, and a method's own weights, UW's or GradNorm's, live
    on the CPU). A parameter with a gradient on some ranks only (its task had no labelled sample
    on the others) takes zeros where it had none; one with none anywhere keeps None (the optimizer
    skips it)."""
    if not world.active or not parameters:
        return
    device = device if device is not None else parameters[0].device
    has = any_rank([p.grad is not None for p in parameters], world, device)
    chosen = [p for p, h in zip(parameters, has) if h]
    for p in chosen:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if not chosen:
        return
    flat = torch.cat([p.grad.reshape(-1).float().to(device) for p in chosen])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for p in chosen:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))  # copy_ moves it to the gradient's device and dtype
        offset += n


@contextlib.contextmanager
def rank_local() -> Iterator[None]:
    """Within the block, MMDetection's losses use this rank's counts alone: its `reduce_mean` (FCOS,
    ATSS, GFL and other heads) averages them over the ranks when a process group exists, a
    collective that evaluation's uneven shards would call a different number of times per rank.
    It asks torch.distributed.is_initialized(), which answers False here."""
    original = dist.is_initialized
    dist.is_initialized = lambda: False
    try:
        yield
    finally:
        dist.is_initialized = original


def gather_to_main(value: Any, world: World) -> list[Any] | None:
    """Every rank's `value` (any picklable object) on rank 0, in rank order; None on the others."""
    if not world.active:
        return [value]
    out: list[Any] | None = [None] * world.size if world.main else None
    dist.gather_object(value, out, dst=0)
    return out


def from_main(value: Any, world: World) -> Any:
    """Rank 0's `value` on every rank."""
    if not world.active:
        return value
    box = [value if world.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]
