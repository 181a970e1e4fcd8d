"""Is data loading the bottleneck? Loader samples/s against the training step's samples/s, same run.

Times the quickstart's train DataLoader alone (the dataset cached, as in any run after the
first), then the training step alone (forward, losses, backward, optimizer step) on batches
already in memory. Prints both rates and their ratio; the ratio must stay above 1.
Run: .venv/bin/python bench/data_loading.py [--batches N] [--spec specs/video-quickstart.yaml]
(a clip spec's samples are clips: its rates are clips/s, each clip all its frames)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mtlspec.build import build  # noqa: E402
from mtlspec.language import validate_file  # noqa: E402
from mtlspec.train.setup import BatchOrder, make_loader  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--spec", type=Path, default=REPO / "specs" / "quickstart.yaml")
    args = parser.parse_args()
    (result,) = validate_file(args.spec)
    spec = result.spec
    torch.manual_seed(0)
    built = build(spec, args.spec.resolve().parent)
    dataset = built.dataset("train", train=True)
    order = BatchOrder(dataset.sizes, spec.data.batch_size, "proportional", 2.0, spec.seed, args.batches)
    loader = make_loader(dataset, spec.data.batch_size, spec.data.num_workers, order)
    start = time.perf_counter()
    batches = list(loader)
    load_rate = args.batches * spec.data.batch_size / (time.perf_counter() - start)

    model, task_types = built.model, built.task_types
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for batch in batches[:2]:  # warm-up
        outputs = model(batch["image"])
        sum(tt.loss(outputs[t], batch["targets"][t], batch["has"][t], batch["weight"][t]) for t, tt in task_types.items()).backward()
    start = time.perf_counter()
    for batch in batches:
        outputs = model(batch["image"])
        loss = sum(tt.loss(outputs[t], batch["targets"][t], batch["has"][t], batch["weight"][t]) for t, tt in task_types.items())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    step_rate = args.batches * spec.data.batch_size / (time.perf_counter() - start)
    ratio = load_rate / step_rate
    print(f"loader (num_workers={spec.data.num_workers}): {load_rate:8.0f} samples/s")
    print(f"training step           : {step_rate:8.0f} samples/s")
    print(f"ratio loader/step       : {ratio:8.1f} (must stay > 1: loading is not the bottleneck)")
    return 0 if ratio > 1 else 1


if __name__ == "__main__":
    sys.exit(main())
