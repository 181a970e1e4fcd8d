"""Training on several processes (mtlspec/distributed.py), on the CPU with gloo: 2 processes x 8
images take the same steps as 1 process x 16, for equal weights, learned weights (UW), weights from
the loss values (GLS), a gradient method (PCGrad) and a contrastive loss over the global batch; `run --nproc 2` writes one run directory; refusals are usage errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import REPO, tiny_spec

pytestmark = [pytest.mark.stack, pytest.mark.slow]

# Depth is left out: its loss averages over valid pixels, whose count differs between shards, so
# the mean of the ranks' means is not the global mean. The others average over equal counts
# (samples, pixels), or, for FCOS, over the positive count that MMDetection averages across ranks.
TASKS = """\
largest: {type: classification, dataset: digits, label: largest_digit}
present: {type: multilabel, dataset: digits, label: present}
count: {type: regression, dataset: digits, label: count}
boxes: {type: detection, dataset: digits, head: {type: FCOSHead, stacked_convs: 1, feat_channels: 8, norm_cfg: {type: GN, num_groups: 4, requires_grad: true}}}
seg: {type: segmentation, dataset: digits}
"""


def _steps(rank: int, size: int, port: int, method: str, folder: str, partial: bool = False, batch_norm: bool = False) -> None:
    """Two SGD steps on global batches of 16 (this rank's slice of each); the weights saved. With
    `partial`, the count task is labelled on 3 images of each global batch, all in rank 0's slice."""
    import contextlib
    from pathlib import Path

    import torch.distributed as dist

    from mtlspec import distributed
    from mtlspec.data.dataset import collate
    from mtlspec.language import validate_file
    from mtlspec.train.loop import seeded_build, train_step

    torch.set_num_threads(1)
    if size > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size), LOCAL_RANK=str(rank))
        dist.init_process_group("gloo", init_method="env://")
    os.environ["MTLSPEC_CACHE"] = str(Path(folder) / "cache")
    path = Path(folder) / "spec.yaml"
    (result,) = validate_file(path, [f"weighting.type={method}"])
    built = seeded_build(result.spec, Path(folder))
    model = built.model
    for module in model.modules():  # BatchNorm in eval: each rank's batch statistics would differ from the whole batch's
        if isinstance(module, torch.nn.BatchNorm2d) and not batch_norm:
            module.eval()
    optimizer = torch.optim.SGD([*model.parameters(), *built.weighting.parameters()], lr=0.05)
    data = built.dataset("train")
    share = 16 // size
    for step in range(2):
        chosen = range(16 * step + rank * share, 16 * step + (rank + 1) * share)
        batch = collate([data[i] for i in chosen], built.task_types)
        if partial:
            batch["has"]["count"] = torch.tensor([i % 16 < 3 for i in chosen])
        train_step(model, built.task_types, built.weighting, optimizer, batch, contextlib.nullcontext, world=distributed.current())
    torch.save({**{n: p.detach() for n, p in model.named_parameters()}, **{f"weighting.{i}": p.detach() for i, p in enumerate(built.weighting.parameters())}},
               Path(folder) / f"weights-{size}-{rank}.pt")
    torch.save(model.state_dict(), Path(folder) / f"state-{size}-{rank}.pt")
    if size > 1:
        dist.destroy_process_group()


@pytest.mark.parametrize("method,partial", [("ew", False), ("uw", False), ("gls", False), ("pcgrad", False), ("ew", True), ("pcgrad", True)])
def test_two_processes_of_8_take_the_steps_of_one_process_of_16(tmp_path, monkeypatch, method, partial):
    """Equal up to float summation order (convolutions and reductions over 8 images instead of 16):
    within 1e-4 of the largest change of any weight; the two ranks bit-identical to each other. A
    task labelled on a few images, all on one rank, is averaged over those images, as in one process."""
    (tmp_path / "spec.yaml").write_text(tiny_spec("ddp", TASKS, "training: {device: cpu}\n", test=8).replace("train: 16", "train: 32"))
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    _one_and_two_processes_agree(tmp_path, method, partial)


def test_contrastive_negatives_come_from_every_rank(tmp_path, monkeypatch):
    """CLIP's InfoNCE on 2 processes x 8 reads all 16 samples as negatives (gathered; each rank's
    gradient reaches its own rows, the learned temperature through its own rows' logits), so the
    steps are one process x 16's, to the same 1e-4; with each rank's 8 alone they would not be."""
    tasks = ("retrieval: {type: image_text_retrieval, dataset: digits, text: caption}\n"
             "largest: {type: classification, dataset: digits, label: largest_digit}\n")
    spec = tiny_spec("ddp", tasks, "training: {device: cpu}\n", test=8).replace("train: 16", "train: 32")
    spec = spec.replace("neck: {type: FPN, out_channels: 8}}", "neck: {type: FPN, out_channels: 8}, text: {type: transformer, width: 16, layers: 1, heads: 2}}")
    (tmp_path / "spec.yaml").write_text(spec)
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    _one_and_two_processes_agree(tmp_path, "ew", False)


def _one_and_two_processes_agree(tmp_path, method: str, partial: bool) -> None:
    import torch.multiprocessing as mp

    from mtlspec.distributed import free_port

    _steps(0, 1, 0, method, str(tmp_path), partial)
    mp.start_processes(_steps, args=(2, free_port(), method, str(tmp_path), partial), nprocs=2, start_method="spawn")
    one = torch.load(tmp_path / "weights-1-0.pt")
    rank0, rank1 = torch.load(tmp_path / "weights-2-0.pt"), torch.load(tmp_path / "weights-2-1.pt")
    assert all(torch.equal(rank0[k], rank1[k]) for k in one)

    from mtlspec.language import validate_file
    from mtlspec.train.loop import seeded_build

    (result,) = validate_file(tmp_path / "spec.yaml", [f"weighting.type={method}"])
    built = seeded_build(result.spec, tmp_path)
    start = {**{n: p.detach() for n, p in built.model.named_parameters()},
             **{f"weighting.{i}": p.detach() for i, p in enumerate(built.weighting.parameters())}}
    largest = max(float((one[k] - start[k]).abs().max()) for k in one)
    assert largest > 1e-3
    worst = max(float((rank0[k] - one[k]).abs().max()) for k in one)
    assert worst <= 1e-4 * largest, (worst, largest)


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "MTLSPEC_CACHE": str(cwd / "cache"), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "mtlspec", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_run_with_nproc_2_writes_one_run_directory(tmp_path):
    (tmp_path / "spec.yaml").write_text(tiny_spec("ddp", TASKS, "training: {device: cpu, epochs: 2}\n"))
    done = _cli("run", "spec.yaml", "--nproc", "2", "--quiet", "--out", "runs", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (run_dir,) = list((tmp_path / "runs" / "ddp").iterdir())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["processes"] == 2
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"step"' in line and '"kind": "step"' in line]
    assert len(steps) == 2 * (16 // 8)  # the global batch of 8 over 16 training images, two epochs
    assert json.loads((run_dir / "report.json").read_text())["tasks"].keys() == {"largest", "present", "count", "boxes", "seg"}
    assert done.stdout.count("run directory") == 1


def test_nproc_refuses_what_it_cannot_split(tmp_path):
    (tmp_path / "spec.yaml").write_text(tiny_spec("ddp", TASKS, "training: {device: cpu}\n"))
    done = _cli("run", "spec.yaml", "--nproc", "3", "--out", "runs", cwd=tmp_path)
    assert done.returncode == 2 and "does not split evenly over 3 processes" in done.stderr
    done = _cli("run", "spec.yaml", "--nproc", "2", "--set", "weighting={type: pcgrad, space: representation}", "--out", "runs", cwd=tmp_path)
    assert done.returncode == 2 and "representation" in done.stderr
    assert not (tmp_path / "runs").exists()


def _evaluate(rank: int, size: int, port: int, folder: str) -> None:
    """The validation split of 40 images in batches of 8, evaluated on this rank's batches."""
    import contextlib
    from pathlib import Path

    import torch.distributed as dist

    from mtlspec import distributed
    from mtlspec.language import validate_file
    from mtlspec.train.evaluate import evaluate
    from mtlspec.train.loop import make_loader, seeded_build

    torch.set_num_threads(1)
    if size > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size), LOCAL_RANK=str(rank))
        dist.init_process_group("gloo", init_method="env://")
    os.environ["MTLSPEC_CACHE"] = str(Path(folder) / "cache")
    (result,) = validate_file(Path(folder) / "spec.yaml")
    built = seeded_build(result.spec, Path(folder))
    dataset = built.dataset("val")
    world = distributed.current()
    details: dict = {}
    scores, losses = evaluate(built.model, built.task_types, make_loader(dataset, 8, 0, shard=(world.rank, world.size)), torch.device("cpu"),
                              32, contextlib.nullcontext, details, world)
    torch.save({"scores": scores, "losses": losses, "details": details}, Path(folder) / f"evaluation-{size}-{rank}.pt")
    if size > 1:
        dist.destroy_process_group()


def test_evaluation_on_two_processes_scores_the_split_as_one_process_does(tmp_path, monkeypatch):
    """5 batches over 2 ranks (3 and 2: MMDetection's losses must not wait for the other rank):
    every metric, mean loss and detail (COCO evaluation of the gathered boxes, the confusion matrix)
    equals the single process's, bit for bit, on both ranks. (The model is untrained: its box mAP
    is 0, so the boxes' part shows only that the gathered evaluation runs; a mispairing of
    predictions and targets shows in the other tasks' scores.)"""
    import torch.multiprocessing as mp

    from mtlspec.distributed import free_port

    (tmp_path / "spec.yaml").write_text(tiny_spec("ddp", TASKS, "training: {device: cpu}\n").replace("val: 8", "val: 40"))
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    _evaluate(0, 1, 0, str(tmp_path))
    mp.start_processes(_evaluate, args=(2, free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    one = torch.load(tmp_path / "evaluation-1-0.pt")
    assert one["scores"]["largest"]["accuracy"] > 0 and one["scores"]["seg"]["miou"] > 0 and "confusion" in json.dumps(one["details"]["largest"])
    for rank in (0, 1):
        assert torch.load(tmp_path / f"evaluation-2-{rank}.pt") == one


def test_batch_norm_statistics_are_rank_0s_on_every_rank(tmp_path, monkeypatch):
    """BatchNorm in training mode sees each rank's slice; after every step rank 0's running
    statistics are sent to all, so evaluation and checkpoints read one model."""
    import torch.multiprocessing as mp

    from mtlspec.distributed import free_port

    (tmp_path / "spec.yaml").write_text(tiny_spec("ddp", TASKS, "training: {device: cpu}\n", test=8).replace("train: 16", "train: 32"))
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    mp.start_processes(_steps, args=(2, free_port(), "ew", str(tmp_path), False, True), nprocs=2, start_method="spawn")
    rank0, rank1 = torch.load(tmp_path / "state-2-0.pt"), torch.load(tmp_path / "state-2-1.pt")
    running = [k for k in rank0 if k.endswith("running_mean")]
    assert running and all(torch.equal(rank0[k], rank1[k]) for k in rank0)


def test_the_same_spec_runs_under_torchrun(tmp_path):
    """torchrun's ranks (its rendezvous, its RANK/WORLD_SIZE) train the run as --nproc does."""
    (tmp_path / "spec.yaml").write_text(tiny_spec("ddp", TASKS, "training: {device: cpu, epochs: 1}\n"))
    from mtlspec.distributed import free_port

    env = {**os.environ, "MTLSPEC_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()), "-m", "mtlspec",
                           "run", "spec.yaml", "--quiet", "--out", "runs"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (run_dir,) = list((tmp_path / "runs" / "ddp").iterdir())
    assert json.loads((run_dir / "manifest.json").read_text())["processes"] == 2
    assert done.stdout.count("run directory") == 1
    # a rank of torchrun's (RANK and WORLD_SIZE set) given --nproc too (torchrun's own parser takes --nproc for itself)
    refused = subprocess.run([sys.executable, "-m", "mtlspec", "run", "spec.yaml", "--nproc", "2", "--out", "runs"], cwd=tmp_path,
                             env={**env, "RANK": "0", "WORLD_SIZE": "2"}, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "torchrun's ranks already" in refused.stderr
