"""Cost of one meta-training step of each algorithm, against an ordinary training step on the same
images measured in the same run (specs/meta-maml.yaml's model and episodes); and the inner loop
looped over episodes (what mtlspec runs) against the same loop vectorised over episodes with
torch.func.vmap.

An ordinary step is forward, cross-entropy and backward on all the images of a meta-batch
(meta_batch x ways x (shots + queries)) and an optimizer step; a meta step adapts on each
episode's support set (inner_steps steps) and back-propagates the query loss. Steps alternate
between the kinds, so a machine's slow moments fall on all of them alike; medians of --steps each.
The vmapped variants also print how far their meta-gradient is from the looped one (the largest
difference over parameters, relative to that parameter's largest gradient entry). First-order MAML
and Reptile vmapped are mtlspec's own (`meta.vectorize`); second-order MAML vmapped is written here
only, to measure it (its meta-gradient through BatchNorm is off; see the finite-difference line).
Run: .venv/bin/python bench/meta_step.py [--steps N] [--inner-steps K]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mtlspec.language import validate_file  # noqa: E402
from mtlspec.meta.maml import MAML  # noqa: E402
from mtlspec.meta.reptile import Reptile  # noqa: E402
from mtlspec.meta.vectorized import VectorizedFirstOrder, batch_statistics_only  # noqa: E402
from mtlspec.train.loop import seeded_build  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--inner-steps", type=int, default=None, help="override meta.inner_steps")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    (result,) = validate_file(REPO / "specs" / "meta-maml.yaml", [] if args.inner_steps is None else [f"meta.inner_steps={args.inner_steps}"])
    spec = result.spec
    built = seeded_build(spec, REPO / "specs")
    from mtlspec.meta.fit import MetaTrainer

    trainer = MetaTrainer(built, "bench", Path("/nonexistent"), lambda m: None, [], None)
    model, task, meta = trainer.model, spec.meta.task, spec.meta
    model.train()
    sampler = trainer.train_sampler
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    kinds = {
        "ordinary step": None,
        "maml": MAML(meta), "maml vmapped": Vmapped(meta), "fomaml": MAML(meta, first_order=True),
        "fomaml vmapped": VectorizedFirstOrder(meta, "fomaml"), "anil": MAML(meta, adapt="heads"), "reptile": Reptile(meta),
        "reptile vmapped": VectorizedFirstOrder(meta, "reptile"),
    }
    gap: dict[str, float] = {}
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for step in range(args.steps + 2):
        episodes = [sampler.tensors(sampler.episode(0, step, b), trainer.device) for b in range(meta.meta_batch)]
        images = torch.cat([torch.cat([sx, qx]) for sx, _, qx, _ in episodes])
        labels = torch.cat([torch.cat([sy, qy]) for _, sy, _, qy in episodes])
        for name, algorithm in kinds.items():
            optimizer.zero_grad(set_to_none=True)
            start = time.perf_counter()
            if algorithm is None:
                F.cross_entropy(model(images)[task], labels).backward()
            else:
                algorithm.meta_gradient(model, task, episodes)
            if step == 0 and name in ("maml", "fomaml", "reptile"):
                looped = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
            if step == 0 and name.endswith("vmapped"):
                gap[name] = max(float((p.grad - looped[n]).abs().max() / looped[n].abs().max().clamp(min=1e-30))
                                for n, p in model.named_parameters() if n in looped)
            if step == 0:
                optimizer.zero_grad(set_to_none=True)  # the first steps compare gradients from the same weights
                continue
            optimizer.step()
            if step >= 2:  # the first two are warm-up
                times[name].append(time.perf_counter() - start)
    check = finite_difference_check(task, meta)
    base = statistics.median(times["ordinary step"])
    print(f"{meta.meta_batch} episodes of {meta.episodes.ways}-way {meta.episodes.shots}-shot with {meta.episodes.queries} queries "
          f"({len(images)} images), {meta.inner_steps} inner steps, {args.steps} steps each, {torch.get_num_threads()} threads")
    print(f"{'step':<14} {'median ms':>10} {'x ordinary':>11}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<14} {1000 * median:>10.1f} {median / base:>11.2f}" + (f"   gradient off the looped one by {gap[name]:.1e}" if name in gap else ""))
    print(check)


class Smooth(torch.nn.Module):
    """Linear, BatchNorm, tanh and a head, in float64: smooth everywhere (no ReLU kinks), so central
    finite differences of the query loss are exact to O(h^2) and can referee the meta-gradient."""

    def __init__(self, task: str, ways: int):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(16, 12), torch.nn.BatchNorm1d(12), torch.nn.Tanh()).double()
        self.heads = torch.nn.ModuleDict({task: torch.nn.Linear(12, ways).double()})

    def forward(self, x):
        return {name: head(self.body(x)) for name, head in self.heads.items()}


def finite_difference_check(task, meta) -> str:
    """MAML's meta-gradient with respect to every BatchNorm scale and shift of a smooth model (where
    the second-order term passes through batch norm), looped and vmapped, against central finite
    differences (h = 1e-6, float64) of the episodes' mean query loss: the largest error of each,
    relative to the largest entry."""
    from mtlspec.meta.functional import adapted, logits

    torch.manual_seed(0)
    ways, shots, queries = meta.episodes.ways, meta.episodes.shots, meta.episodes.queries
    model = Smooth(task, ways)
    episodes = [(torch.randn(ways * shots, 16, dtype=torch.float64), torch.arange(ways).repeat_interleave(shots),
                 torch.randn(ways * queries, 16, dtype=torch.float64), torch.arange(ways).repeat_interleave(queries)) for _ in range(2)]
    params = {n: p for n, p in model.named_parameters()}
    norm = [n for n in params if n.startswith("body.1.")]

    def query_loss(p) -> float:
        total = 0.0
        for sx, sy, qx, qy in episodes:
            fast = adapted(model, p, list(p), task, sx, sy, meta.inner_steps, meta.inner_lr, create_graph=False)
            total += float(F.cross_entropy(logits(model, fast, task, qx), qy)) / len(episodes)
        return total

    numeric = []
    for name in norm:
        for i in range(params[name].numel()):
            values = []
            for sign in (1.0, -1.0):
                p = {n: v.detach().clone().requires_grad_(True) for n, v in params.items()}
                with torch.no_grad():
                    p[name].view(-1)[i] += sign * 1e-6
                values.append(query_loss(p))
            numeric.append((values[0] - values[1]) / 2e-6)
    numeric = torch.tensor(numeric, dtype=torch.float64)
    errors = {}
    for label, algorithm in (("looped", MAML(meta)), ("vmapped", Vmapped(meta))):
        model.zero_grad(set_to_none=True)
        algorithm.meta_gradient(model, task, episodes)
        found = torch.cat([params[n].grad.reshape(-1) for n in norm])
        errors[label] = float((found - numeric).abs().max() / numeric.abs().max())
    return (f"MAML meta-gradient w.r.t. the {len(numeric)} BatchNorm parameters of a smooth float64 model, against finite "
            f"differences: looped off by {errors['looped']:.1e}, vmapped off by {errors['vmapped']:.1e} (of the largest entry)")


class Vmapped:
    """The MAML meta-gradient with the episodes' inner loops vectorised by torch.func.vmap (grad
    inside vmap; BatchNorm on each episode's own batch statistics, as the looped loop, with the
    running statistics detached from the modules while it runs, since vmap cannot update them)."""

    def __init__(self, meta, first_order: bool = False):
        self.meta, self.first_order = meta, first_order

    def meta_gradient(self, model, task, episodes):
        from torch.func import functional_call, grad, vmap

        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        steps, lr = self.meta.inner_steps, self.meta.inner_lr

        def call(p, x):
            return functional_call(model, p, (x,))[task]

        def query_loss(p, sx, sy, qx, qy):
            fast = p
            for _ in range(steps):
                g = grad(lambda q: F.cross_entropy(call(q, sx), sy))(fast)
                fast = {n: fast[n] - lr * (g[n].detach() if self.first_order else g[n]) for n in fast}
            return F.cross_entropy(call(fast, qx), qy)

        stacked = [torch.stack(parts) for parts in zip(*episodes)]
        with batch_statistics_only(model):
            losses = vmap(query_loss, in_dims=(None, 0, 0, 0, 0))(params, *stacked)
        losses.mean().backward()
        return float(losses.detach().mean()), 0.0


if __name__ == "__main__":
    main()
