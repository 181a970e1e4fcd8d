"""Cost of one training step per weighting method, against `ew` measured in the same run.

Part 1: the quickstart model and batch (5 tasks), every method, median of N steps each,
ratio to ew. Part 2: how the cost grows with the number of tasks (2, 4, 8) on a small model,
for ew and the gradient methods. Run: .venv/bin/python bench/weighting_cost.py [--steps N] [--markdown]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mtlspec.build import build  # noqa: E402
from mtlspec.data.dataset import collate  # noqa: E402
from mtlspec.language import validate_file  # noqa: E402
from mtlspec.language.root import Spec  # noqa: E402
from mtlspec.language.weighting import GRADIENT_METHODS  # noqa: E402
from mtlspec.train.loop import train_step  # noqa: E402
from mtlspec.weighting import METHODS  # noqa: E402

EIGHT_TASKS = {
    "largest": "{type: classification, dataset: digits, label: largest_digit}",
    "seg": "{type: segmentation, dataset: digits}",
    "smallest": "{type: classification, dataset: digits, label: smallest_digit}",
    "count": "{type: regression, dataset: digits, label: count}",
    "present": "{type: multilabel, dataset: digits, label: present}",
    "mean": "{type: regression, dataset: digits, label: mean_digit}",
    "sum": "{type: regression, dataset: digits, label: digit_sum}",
    "depth": "{type: depth, dataset: digits}",
}


def _time_method(spec, name: str, steps: int) -> float:
    torch.manual_seed(0)
    built = build(spec, REPO / "specs")
    dataset = built.dataset("val")
    batch = collate([dataset[i] for i in range(spec.data.batch_size)], built.task_types)
    model, task_types = built.model, built.task_types
    weighting_spec = Spec.model_validate({**spec.model_dump(mode="json"), "weighting": {"type": name}}).weighting  # the defaults
    method = METHODS[name](list(spec.tasks), weighting_spec)
    optimizer = torch.optim.AdamW(list(model.parameters()), lr=1e-3)
    if method.parameters():
        optimizer.add_param_group({"params": method.parameters(), "weight_decay": 0.0})
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        train_step(model, task_types, method, optimizer, batch, contextlib.nullcontext)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--markdown", action="store_true", help="print markdown tables (for docs/results.md)")
    args = parser.parse_args()
    (result,) = validate_file(REPO / "specs" / "quickstart.yaml")
    spec = result.spec
    base = _time_method(spec, "ew", args.steps)
    rows = [(name, _time_method(spec, name, args.steps)) for name in METHODS]
    print("| method | kind | step (ms) | ratio to ew |" if args.markdown else "method        kind      step ms   / ew")
    if args.markdown:
        print("|---|---|---|---|")
    for name, t in rows:
        kind = "gradient" if name in GRADIENT_METHODS else "loss"
        print(f"| {name} | {kind} | {t * 1000:.0f} | {t / base:.2f} |" if args.markdown else f"{name:<13} {kind:<9} {t * 1000:7.0f}  {t / base:5.2f}")
    print(f"\n(ew: {base * 1000:.0f} ms per step on the quickstart model, batch {spec.data.batch_size}, same run)\n")
    small = {"model": {"backbone": {"type": "SmallCNN", "channels": [16, 32]}, "neck": {"type": "FPN", "out_channels": 16}}}
    print("| method | 2 tasks | 4 tasks | 8 tasks |" if args.markdown else "scaling with tasks (ratio to ew at the same task count)")
    if args.markdown:
        print("|---|---|---|---|")
    specs = {}
    for n in (2, 4, 8):
        data = spec.model_dump(mode="json")
        data.update(small)
        data["tasks"] = {k: yaml.safe_load(v) for k, v in list(EIGHT_TASKS.items())[:n]}
        specs[n] = Spec.model_validate(data)
    bases = {n: _time_method(specs[n], "ew", args.steps) for n in specs}
    for name in ("ew", *GRADIENT_METHODS, "famo"):
        ratios = [_time_method(specs[n], name, args.steps) / bases[n] for n in specs]
        cells = [f"{r:.2f}" for r in ratios]
        print(f"| {name} | " + " | ".join(cells) + " |" if args.markdown else f"{name:<13} " + "  ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
