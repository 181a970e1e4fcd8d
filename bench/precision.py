"""Training images per second of the quickstart's model (five tasks, FCOS detection head) at fp32,
under bf16 autocast, with channels_last memory format and (--compile) through torch.compile, each against fp32 measured in the same
run: the figures that decide which of these mtlspec should offer or turn on by default.

One step is mtlspec's own `train_step` (forward, the five losses, the weighting method's backward,
the optimizer step) on one fixed batch of the quickstart's images. Kinds alternate step by step,
so a machine's slow moments fall on all of them alike; medians of --steps each. On a CUDA machine
the same kinds run on the GPU (with torch.cuda.synchronize around each step), plus fp16 autocast
with its GradScaler, as training runs it.
Run: .venv/bin/python bench/precision.py [--steps N] [--batch B] [--device cpu|cuda] [--spec FILE] [--set K=V ...] [--compile]
(--spec: another model, e.g. bench/specs/dense-resnet50.yaml, compute-bound on a GPU; its training
split is cut to the batch.)
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mtlspec.data.dataset import collate  # noqa: E402
from mtlspec.language import validate_file  # noqa: E402
from mtlspec.train.evaluate import to_device  # noqa: E402
from mtlspec.train.loop import autocast_for, grad_scaler_for, seeded_build, train_step  # noqa: E402
from mtlspec.train.optim import build_optimizer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--spec", type=Path, default=REPO / "specs" / "quickstart.yaml")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[])
    parser.add_argument("--compile", action="store_true", help="also fp32 and bf16 with the shared network through torch.compile "
                                                                 "(inductor; its compile time is spent in the warm-up steps)")
    args = parser.parse_args()
    device = torch.device(args.device)
    (result,) = validate_file(args.spec, [f"data.datasets.digits.splits.train={max(args.batch, 200)}", *args.overrides])
    assert result.errors == [], [d.format() for d in result.errors]
    built = seeded_build(result.spec, args.spec.resolve().parent)
    dataset = built.dataset("train")
    batch = to_device(collate([dataset[i] for i in range(args.batch)], built.task_types), device)
    kinds = {"fp32": ("fp32", False), "bf16 autocast": ("bf16", False), "fp32 channels_last": ("fp32", True),
             "bf16 channels_last": ("bf16", True)}
    if device.type == "cuda":
        kinds["fp16 autocast"] = ("fp16", False)
    if args.compile:
        kinds.update({"fp32 compiled": ("fp32", False), "bf16 compiled": ("bf16", False)})
    setups = {}
    for name, (precision, channels_last) in kinds.items():
        model = copy.deepcopy(built.model).to(device)
        if name.endswith("compiled"):
            model.compile_shared("inductor", "default")  # as training.compile does
        images = batch["image"]
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            images = images.contiguous(memory_format=torch.channels_last)
        optimizer = build_optimizer(result.spec.training.optimizer, list(model.parameters()))
        setups[name] = (model, optimizer, {**batch, "image": images}, autocast_for(device, precision), grad_scaler_for(device, precision))
    times: dict[str, list[float]] = {name: [] for name in kinds}
    for step in range(args.steps + 2):
        for name, (model, optimizer, data, autocast, scaler) in setups.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            train_step(model, built.task_types, copy.copy(built.weighting), optimizer, data, autocast, None, lambda losses: None, scaler)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if step >= 2:  # the first two are warm-up
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["fp32"])
    print(f"{result.spec.name} model, batch {args.batch} at {result.spec.data.image_size} px, {device}, {torch.get_num_threads()} threads, "
          f"{args.steps} steps each (medians)")
    print(f"{'kind':<20} {'ms/step':>8} {'images/s':>9} {'x fp32':>7}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<20} {1000 * median:>8.1f} {args.batch / median:>9.1f} {base / median:>7.2f}")


if __name__ == "__main__":
    main()
