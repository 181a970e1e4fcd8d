"""Cost of one meta-training step of each algorithm, against an ordinary training step on the same
images measured in the same run (specs/meta-maml.yaml's model and episodes).

An ordinary step is forward, cross-entropy and backward on all the images of a meta-batch
(meta_batch x ways x (shots + queries)) and an optimizer step; a meta step adapts on each
episode's support set (inner_steps steps) and back-propagates the query loss. Steps alternate
between the kinds, so a machine's slow moments fall on all of them alike; medians of --steps each.
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
        "maml": MAML(meta), "fomaml": MAML(meta, first_order=True), "anil": MAML(meta, heads_only=True), "reptile": Reptile(meta),
    }
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
            optimizer.step()
            if step >= 2:  # the first two are warm-up
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["ordinary step"])
    print(f"{meta.meta_batch} episodes of {meta.episodes.ways}-way {meta.episodes.shots}-shot with {meta.episodes.queries} queries "
          f"({len(images)} images), {meta.inner_steps} inner steps, {args.steps} steps each, {torch.get_num_threads()} threads")
    print(f"{'step':<14} {'median ms':>10} {'x ordinary':>11}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<14} {1000 * median:>10.1f} {median / base:>11.2f}")


if __name__ == "__main__":
    main()
