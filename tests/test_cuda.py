"""On a CUDA machine (skipped elsewhere): the same model, batch and weights give the same losses and
update on the GPU as on the CPU, mmcv's compiled NMS agrees between devices, and a whole run trains
on CUDA. Run by tools/gpu_check.sh on a lent GPU machine; CI has none."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from mtlspec.language import validate_file

pytestmark = [pytest.mark.stack, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]

TINY = """\
name: tiny_cuda
seed: 5
data:
  datasets:
    digits: {type: multidigits, canvas: 32, objects: {min: 1, max: 2}, splits: {train: 64, val: 16, test: 32}}
  batch_size: 16
  image_size: 32
tasks:
  largest: {type: classification, dataset: digits, label: largest_digit}
  present: {type: multilabel, dataset: digits, label: present}
  count: {type: regression, dataset: digits, label: count}
  boxes:
    type: detection
    dataset: digits
    head: {type: FCOSHead, stacked_convs: 1, feat_channels: 8, norm_cfg: {type: GN, num_groups: 4, requires_grad: true}}
  seg: {type: segmentation, dataset: digits}
  depth: {type: depth, dataset: digits}
model:
  backbone: {type: SmallCNN, channels: [8, 16]}
  neck: {type: FPN, out_channels: 8}
training:
  epochs: 2
  optimizer: {type: adamw, lr: 0.003}
evaluation: {split: test}
"""


@pytest.fixture(autouse=True)
def exact_float32(monkeypatch, tmp_path):
    """TF32 rounds products to 10 mantissa bits; off here so CPU and GPU differ only in summation order."""
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _spec(tmp_path, overrides=()):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    (result,) = validate_file(path, list(overrides))
    assert result.errors == [], [d.format() for d in result.errors]
    return result


def _step_on(device: str, built, batch):
    """One fp32 SGD step of a copy of the built model on `device`: its losses and updated weights."""
    from mtlspec.train.evaluate import to_device
    from mtlspec.train.loop import autocast_for, train_step

    torch.manual_seed(0)  # PCGrad draws its task order from the global generator
    model = copy.deepcopy(built.model).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    losses, _ = train_step(model, built.task_types, copy.deepcopy(built.weighting), optimizer, to_device(batch, torch.device(device)),
                           autocast_for(torch.device(device), "fp32"))
    return {t: float(v.detach()) for t, v in losses.items()}, {n: p.detach().cpu() for n, p in model.named_parameters()}


@pytest.mark.parametrize("method", ["ew", "pcgrad", "upgrad"])
def test_a_step_on_cuda_equals_the_step_on_cpu(tmp_path, method):
    """Losses to 1e-4 and the updated weights to 1e-4 of the largest step: float32 on both, the
    difference only the order of summation (cuDNN's convolution algorithms, atomics in backward)."""
    from mtlspec.data.dataset import collate
    from mtlspec.train.loop import seeded_build

    result = _spec(tmp_path, [f"weighting.type={method}"])
    built = seeded_build(result.spec, tmp_path)
    data = built.dataset("train")
    batch = collate([data[i] for i in range(16)], built.task_types)
    start = {n: p.detach().clone() for n, p in built.model.named_parameters()}
    cpu_losses, cpu_params = _step_on("cpu", built, batch)
    gpu_losses, gpu_params = _step_on("cuda", built, batch)
    for task in cpu_losses:
        assert gpu_losses[task] == pytest.approx(cpu_losses[task], rel=1e-4, abs=1e-6), task
    largest = max(float((cpu_params[n] - start[n]).abs().max()) for n in start)
    assert largest > 0
    for name in start:
        assert float((gpu_params[name] - cpu_params[name]).abs().max()) <= 1e-4 * largest + 1e-7, name


def test_mmcv_nms_on_cuda_keeps_the_boxes_it_keeps_on_cpu():
    from mmcv.ops import nms

    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(500, 2, generator=generator) * 100
    boxes = torch.cat([corners, corners + 5 + torch.rand(500, 2, generator=generator) * 30], dim=1)
    scores = torch.randperm(500, generator=generator).float() / 500  # distinct scores: no ties to break differently
    _, kept_cpu = nms(boxes, scores, 0.5)
    _, kept_gpu = nms(boxes.cuda(), scores.cuda(), 0.5)
    assert kept_gpu.cpu().tolist() == kept_cpu.tolist()


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_a_run_on_cuda_trains_and_evaluates(tmp_path, precision):
    from conftest import run_result

    result = _spec(tmp_path, ["training.device=cuda", f"training.precision={precision}"])
    outcome = run_result(result, tmp_path / "runs")
    report = json.loads((outcome.run_dir / "report.json").read_text())
    assert report["run"]["device"].startswith("cuda")
    rows = [json.loads(line) for line in (outcome.run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [row["loss"] for row in rows if row["kind"] == "step"]
    assert all(v == v and abs(v) < 1e6 for step in losses for v in step.values())
    first, last = losses[0], losses[-1]
    assert sum(last.values()) < sum(first.values())  # two epochs of a fresh model: the loss goes down


def test_an_fp16_run_checkpoints_its_scale_and_resumes(tmp_path):
    """fp16 trains with a GradScaler; its scale is part of the checkpoint and a resume goes on from
    it. (Bit-identity is promised on the CPU only: some CUDA kernels add with atomics.)"""
    from conftest import StopAfter, run_result
    from mtlspec.train.loop import TrainingError

    result = _spec(tmp_path, ["training.device=cuda", "training.precision=fp16", "weighting.type=pcgrad",
                              "training.checkpoint={every_epochs: 1, keep: 3}"])
    whole = run_result(result, tmp_path / "a").report
    with pytest.raises(TrainingError, match="stopped after epoch 1"):
        run_result(result, tmp_path / "b", callbacks=[StopAfter(1)])
    (stopped,) = list((tmp_path / "b" / "tiny_cuda").iterdir())
    state = torch.load(stopped / "checkpoints" / "epoch-0001.pt", weights_only=False)
    assert state["scaler"]["scale"] > 0
    resumed = run_result(result, tmp_path / "b", resume_dir=stopped).report
    assert resumed["tasks"].keys() == whole["tasks"].keys()
    assert all(v == v for task in resumed["tasks"].values() for v in task["metrics"].values())
