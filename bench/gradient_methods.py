"""Gradient-based weighting: step time against LibMTL on the same model, and how the aggregation's
share of a step grows with the number of tasks.

    .venv/bin/python bench/gradient_methods.py --libmtl DIR [--tasks 4 8] [--methods PCGrad IMTL ...]
    .venv/bin/python bench/gradient_methods.py --scaling [--counts 2 4 8 16 40] [--methods mgda upgrad ...]
    .venv/bin/python bench/gradient_methods.py --backward [--tasks 4 8]

Side by side (--libmtl DIR: a folder holding LibMTL's package, e.g. `pip install --no-deps --target
DIR LibMTL==1.1.5`, or a source checkout of its repository for the newer methods; LibMTL is not a
dependency of mtlspec and nothing is imported from it without this option): the same plain
hard-sharing network (four conv layers; classification, multilabel, segmentation and depth heads,
repeated for 8 tasks), the same batch (16 at 64x64), one thread count; each side drives its own
implementation of the method; rounds alternate between the sides so both share the machine's
noise. Prints ms per step (medians) and the ratio mtlspec / LibMTL (target: at most 0.7).

Backward (--backward): the per-task gradients of one step on the plain network, three ways, rounds
interleaved: a loop of one backward pass per task (what the trainer does; each pass also gives
the task's head its gradient), one batched pass (`is_grads_batched`, vmap over the T unit
vectors), and torchjd's autogram engine (the Gramian without the Jacobian, then one weighted
backward pass), where torchjd is installed. Prints ms per step and the ratio to the loop.

Scaling (--scaling): a ResNet-18 (MMDetection's) shared by T binary classification heads on pooled
features (CelebA's layout: 40 binary attributes), batch 16 at 64x64. For each method and T, the
step time and the time spent in the method's aggregation (Gramian and solve, not the backward
passes), as a share of the step (target: under 10% at 40 tasks).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import statistics
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mtlspec.language.root import Spec  # noqa: E402
from mtlspec.language.weighting import GRADIENT_METHODS  # noqa: E402
from mtlspec.weighting import METHODS  # noqa: E402

# LibMTL's name -> (ours, our settings matching LibMTL's keyword arguments below)
PAIRS = {
    "PCGrad": ("pcgrad", {}), "IMTL": ("imtl", {}), "CAGrad": ("cagrad", {"c": 0.5, "rescale": 1}),
    "UPGrad": ("upgrad", {}), "GradNorm": ("gradnorm", {"alpha": 1.5}), "GradVac": ("gradvac", {"beta": 0.5}),
    "MGDA": ("mgda", {"normalization": "none"}), "Nash_MTL": ("nash_mtl", {}), "FairGrad": ("fairgrad", {"alpha": 1.0}),
    "DB_MTL": ("db_mtl", {"beta": 0.9, "beta_sigma": 0.0}), "Aligned_MTL": ("aligned_mtl", {}), "GradDrop": ("graddrop", {}),
}
LIBMTL_KWARGS = {"GradNorm": {"alpha": 1.5}, "CAGrad": {"calpha": 0.5, "rescale": 1}, "MGDA": {"mgda_gn": "none"},
                 "Nash_MTL": {"update_weights_every": 1, "optim_niter": 20, "max_norm": 1.0},
                 "GradVac": {"GradVac_beta": 0.5, "GradVac_group_type": 0, "beta": 0.5}, "GradDrop": {"leak": 0.0},
                 "DB_MTL": {"DB_beta": 0.9, "DB_beta_sigma": 0}, "FairGrad": {"FairGrad_alpha": 1.0},
                 "UPGrad": {"UPGrad_norm_eps": 1e-4, "UPGrad_reg_eps": 1e-4}}
KINDS = ("cls", "ml", "seg", "depth")


def weighting_section(name: str, fields: dict) -> object:
    """Our method's validated settings (every other field its default)."""
    base = {"name": "b", "data": {"datasets": {"d": {"type": "multidigits"}}}, "tasks": {"t": {"type": "depth", "dataset": "d"}}}
    return Spec.model_validate({**base, "weighting": {"type": name, **fields}}).weighting


class Plain(nn.Module):
    """Four conv layers shared; a small head per task (classification, multilabel, segmentation, depth)."""

    def __init__(self, tasks: list[str], width: int = 32):
        super().__init__()
        c = width
        self.encoder = nn.Sequential(nn.Conv2d(1, c, 3, 2, 1), nn.ReLU(), nn.Conv2d(c, 2 * c, 3, 2, 1), nn.ReLU(),
                                     nn.Conv2d(2 * c, 4 * c, 3, 2, 1), nn.ReLU(), nn.Conv2d(4 * c, 4 * c, 3, 1, 1), nn.ReLU())
        self.heads = nn.ModuleDict({t: nn.Conv2d(4 * c, 11, 1) if t.startswith("seg") else nn.Conv2d(4 * c, 1, 1) if t.startswith("depth")
                                    else nn.Linear(4 * c, 10) for t in tasks})
        self.topology = types.SimpleNamespace(representation=[])

    def forward(self, x):
        z = self.encoder(x)
        return {t: F.interpolate(h(z), size=x.shape[-2:], mode="bilinear", align_corners=False) if isinstance(h, nn.Conv2d)
                else h(z.mean((2, 3))) for t, h in self.heads.items()}

    def shared_parameters(self):
        return list(self.encoder.parameters())

    def task_parameters(self, task):
        return list(self.heads[task].parameters())

    def extra_loss(self):
        return 0.0


def plain_losses(outputs: dict, y: dict) -> list[torch.Tensor]:
    out = []
    for t, p in outputs.items():
        kind = next(k for k in KINDS if t.startswith(k))
        out.append({"cls": lambda: F.cross_entropy(p, y["cls"]), "ml": lambda: F.binary_cross_entropy_with_logits(p, y["ml"]),
                    "seg": lambda: F.cross_entropy(p, y["seg"]), "depth": lambda: F.l1_loss(p, y["depth"])}[kind]())
    return out


def plain_batch(b: int = 16, size: int = 64):
    g = torch.Generator().manual_seed(0)
    return torch.randn(b, 1, size, size, generator=g), {
        "cls": torch.randint(0, 10, (b,), generator=g), "ml": torch.randint(0, 2, (b, 10), generator=g).float(),
        "seg": torch.randint(0, 11, (b, size, size), generator=g), "depth": torch.rand(b, 1, size, size, generator=g)}


def ours(name: str, fields: dict, tasks: list[str]):
    """One training step of our method on the plain network, as the trainer runs it."""
    torch.manual_seed(0)
    model, (x, y) = Plain(tasks), plain_batch()
    method = METHODS[name](tasks, weighting_section(name, fields))
    optimizer = torch.optim.SGD(list(model.parameters()) + method.parameters(), lr=1e-3)

    def step():
        optimizer.zero_grad(set_to_none=True)
        losses = dict(zip(tasks, plain_losses(model(x), y)))
        method.backward(model, losses, {t: True for t in tasks})
        optimizer.step()
        method.after_step(lambda: dict(zip(tasks, plain_losses(model(x), y))))
    return step


def libmtl(method: str, tasks: list[str], root: Path):
    """One training step of LibMTL's method, driven as LibMTL's trainer does (its model inherits the weighting)."""
    if "LibMTL" not in sys.modules:  # a bare package: LibMTL's own __init__ imports its model zoo, which the methods do not need
        package = types.ModuleType("LibMTL")
        package.__path__ = [str(root / "LibMTL")]
        sys.modules["LibMTL"] = package
    weighting = getattr(importlib.import_module("LibMTL.weighting"), method)

    class Runner(Plain, weighting):
        def __init__(self):
            Plain.__init__(self, tasks)
            self.task_num, self.task_name, self.device, self.rep_grad = len(tasks), tasks, torch.device("cpu"), False
            self.epoch, self.train_loss_buffer = 0, torch.zeros(len(tasks), 100)

        def get_share_params(self):
            return self.encoder.parameters()

        def zero_grad_share_params(self):
            self.encoder.zero_grad(set_to_none=False)

    torch.manual_seed(0)
    runner, (x, y) = Runner(), plain_batch()
    runner.init_param()
    optimizer = torch.optim.SGD(runner.parameters(), lr=1e-3)

    def step():
        optimizer.zero_grad()
        runner.backward(torch.stack(plain_losses(runner(x), y)), **LIBMTL_KWARGS.get(method, {}))
        optimizer.step()
        runner.epoch += 1
    return step


def medians(steps: dict, rounds: int) -> dict[str, float]:
    times = {k: [] for k in steps}
    for f in steps.values():  # warm-up
        f()
        f()
    for _ in range(rounds):
        for k, f in steps.items():
            start = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def side_by_side(root: Path, counts: list[int], methods: list[str], rounds: int) -> None:
    print("tasks  method        LibMTL ms  mtlspec ms  mtlspec/LibMTL")
    for count in counts:
        tasks = [KINDS[i % 4] + (str(i) if i >= 4 else "") for i in range(count)]
        for method in methods:
            name, fields = PAIRS[method]
            try:
                t = medians({"libmtl": libmtl(method, tasks, root), "ours": ours(name, fields, tasks)}, rounds)
            except Exception as exc:  # a method LibMTL's version lacks, or fails on
                print(f"{count:5d}  {method:12s}  skipped: {type(exc).__name__}: {str(exc)[:80]}")
                continue
            print(f"{count:5d}  {method:12s}  {t['libmtl']:9.1f}  {t['ours']:10.1f}  {t['ours'] / t['libmtl']:14.2f}", flush=True)


def scaling(counts: list[int], methods: list[str], steps: int) -> None:
    from mtlspec.build import build
    from mtlspec.data.dataset import collate
    from mtlspec.weighting.base import GradientAggregator

    print("method        tasks  step ms  aggregation ms  share")
    for name in methods:
        for count in counts:
            spec = Spec.model_validate({
                "name": "scale", "data": {"datasets": {"d": {"type": "multidigits", "splits": {"train": 16, "val": 1, "test": 1}}},
                                          "batch_size": 16, "image_size": 64},
                "tasks": {f"a{i}": {"type": "classification", "dataset": "d", "label": "num_digits"} for i in range(count)},
                "model": {"backbone": {"type": "ResNet", "depth": 18}, "neck": {"type": "none"}},
                "weighting": {"type": name}})
            torch.manual_seed(0)
            built = build(spec, REPO)
            model, task_types, method = built.model, built.task_types, built.weighting
            dataset = built.dataset("train")
            batch = collate([dataset[i] for i in range(16)], task_types)
            optimizer = torch.optim.SGD(list(model.parameters()) + method.parameters(), lr=1e-3)
            spent = []
            aggregate = method.aggregate

            def timed(*args, **kwargs):
                start = time.perf_counter()
                out = aggregate(*args, **kwargs)
                spent.append(time.perf_counter() - start)
                return out

            method.aggregate = timed
            totals = []
            for s in range(steps + 1):
                start = time.perf_counter()
                optimizer.zero_grad(set_to_none=True)
                outputs = model(batch["image"])
                losses = {t: tt.loss(outputs[t], batch["targets"][t], batch["has"][t], batch["weight"][t]) for t, tt in task_types.items()}
                method.backward(model, losses, {t: True for t in losses})
                optimizer.step()
                method.after_step(lambda: losses)
                if s:
                    totals.append(time.perf_counter() - start)
            step_ms, agg_ms = statistics.median(totals) * 1e3, statistics.median(spent[1:]) * 1e3
            print(f"{name:12s}  {count:5d}  {step_ms:7.0f}  {agg_ms:14.1f}  {agg_ms / step_ms:5.1%}", flush=True)
            assert isinstance(method, GradientAggregator)


def backward_ways(counts: list[int], rounds: int) -> None:
    from mtlspec.weighting.jacobian import batched_task_jacobian, task_gradients

    print("tasks  loop ms  batched ms (ratio)  autogram ms (ratio)")
    for count in counts:
        tasks = [f"{KINDS[i % 4]}{i}" for i in range(count)]
        torch.manual_seed(0)
        model, (x, y) = Plain(tasks), plain_batch()
        shared = model.shared_parameters()
        own = [model.task_parameters(t) for t in tasks]

        def loop():
            task_gradients(plain_losses(model(x), y), shared, own)

        def batched():
            losses = torch.stack(plain_losses(model(x), y))
            batched_task_jacobian(losses, shared + [p for ps in own for p in ps])

        ways = {"loop": loop, "batched": batched}
        try:
            from torchjd.autogram import Engine

            hooked = copy.deepcopy(model)  # the engine hooks every forward pass of the modules it is given
            engine = Engine(hooked.encoder, batch_dim=None)

            def autogram():
                losses = torch.stack(plain_losses(hooked(x), y))
                K = engine.compute_gramian(losses)
                w = torch.ones(len(K)) / len(K)  # the weights a method would take from K
                (w @ losses).backward()

            ways["autogram"] = autogram
        except ImportError:
            pass
        t = medians(ways, rounds)
        auto = f"{t['autogram']:8.1f} ({t['autogram'] / t['loop']:.2f})" if "autogram" in t else "   (torchjd not installed)"
        print(f"{count:5d}  {t['loop']:7.1f}  {t['batched']:10.1f} ({t['batched'] / t['loop']:.2f})  {auto}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--libmtl", type=Path, default=os.environ.get("LIBMTL_ROOT"), help="a folder holding LibMTL's package")
    parser.add_argument("--tasks", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--methods", nargs="+", default=None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--scaling", action="store_true")
    parser.add_argument("--backward", action="store_true", help="time the per-task backward passes: loop, batched, autogram")
    parser.add_argument("--counts", type=int, nargs="+", default=[2, 4, 8, 16, 40])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.scaling:
        scaling(args.counts, args.methods or sorted(GRADIENT_METHODS), args.steps)
        return 0
    if args.backward:
        backward_ways(args.tasks, args.rounds)
        return 0
    if args.libmtl is None or not (Path(args.libmtl) / "LibMTL").is_dir():
        print("LibMTL not given (--libmtl DIR, or LIBMTL_ROOT): nothing to compare with; see the docstring")
        return 0
    side_by_side(Path(args.libmtl), args.tasks, args.methods or list(PAIRS), args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
