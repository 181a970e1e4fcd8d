"""Mixed precision: MMDetection's heads compute their losses and boxes in float32 under autocast
(mmcv's CUDA kernels have no bfloat16), and fp16's GradScaler leaves every weighting method's
update as it is without one and skips a step that overflowed (an fp16 run, which needs CUDA, is in
test_cuda.py)."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch

from mtlspec.data.dataset import collate
from mtlspec.language import validate_file
from mtlspec.train.loop import seeded_build, train_step
from conftest import tiny_spec

pytestmark = pytest.mark.stack

TASKS = """\
largest: {type: classification, dataset: digits, label: largest_digit}
count: {type: regression, dataset: digits, label: count}
boxes: {type: detection, dataset: digits, head: {type: FCOSHead, stacked_convs: 1, feat_channels: 8, norm_cfg: {type: GN, num_groups: 4, requires_grad: true}}}
seg: {type: segmentation, dataset: digits}
"""


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))


def _built(tmp_path, overrides=(), tasks=TASKS, rest="training: {epochs: 2, device: cpu}\n"):
    path = tmp_path / "spec.yaml"
    path.write_text(tiny_spec("precision", tasks, rest))
    (result,) = validate_file(path, list(overrides))
    assert result.errors == [], [d.format() for d in result.errors]
    return result, seeded_build(result.spec, tmp_path)


def _batch(built, size=8):
    data = built.dataset("train")
    return collate([data[i] for i in range(size)], built.task_types)


@pytest.mark.parametrize("head", ["FCOSHead", "FasterRCNN"])
def test_heads_compute_losses_and_boxes_in_float32_under_bf16_autocast(tmp_path, head):
    tasks = TASKS if head == "FCOSHead" else TASKS.replace(
        "head: {type: FCOSHead, stacked_convs: 1, feat_channels: 8, norm_cfg: {type: GN, num_groups: 4, requires_grad: true}}", f"head: {{type: {head}}}")
    _, built = _built(tmp_path, tasks=tasks)
    boxes = built.task_types["boxes"]
    inner = boxes.head.head if head == "FCOSHead" else boxes.head.rpn
    seen = []
    for name in ("loss_by_feat", "predict_by_feat"):
        original = getattr(inner, name)

        def watch(*args, _original=original, _name=name, **kwargs):
            tensors = [a for a in args if torch.is_tensor(a)] + [t for a in args if isinstance(a, (list, tuple)) for t in a if torch.is_tensor(t)]
            seen.append((_name, {t.dtype for t in tensors}, torch.is_autocast_enabled("cpu")))
            return _original(*args, **kwargs)

        setattr(inner, name, watch)
    batch = _batch(built)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = built.model(batch["image"])
        assert outputs["seg"].dtype == torch.bfloat16  # the rest of the model does run in bf16
        loss = boxes.loss(outputs["boxes"], batch["targets"]["boxes"], batch["has"]["boxes"], batch["weight"]["boxes"])
        boxes.predict(outputs["boxes"], 32)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert {name for name, _, _ in seen} == {"loss_by_feat", "predict_by_feat"}
    assert all(dtypes == {torch.float32} and not autocast for _, dtypes, autocast in seen), seen


METHODS = ["ew", "uw", "dwa", "rlw", "famo", "gradnorm", "mgda", "pcgrad", "graddrop", "cagrad", "nash_mtl", "aligned_mtl", "upgrad",
           "imtl", "db_mtl"]


def _step(built, batch, scaler):
    torch.manual_seed(0)  # RLW, PCGrad and GradDrop draw from the global generator
    model, method = copy.deepcopy(built.model), copy.deepcopy(built.weighting)
    optimizer = torch.optim.SGD([*model.parameters(), *method.parameters()], lr=0.05)
    train_step(model, built.task_types, method, optimizer, batch, contextlib.nullcontext, None, None, scaler)
    return model.state_dict(), method


@pytest.mark.parametrize("method", METHODS)
def test_a_scaled_step_equals_the_unscaled_step_bit_for_bit(tmp_path, method):
    """In float32 a power-of-two scale multiplies every gradient exactly, and unscaling divides it
    back exactly: a GradScaler must change nothing, for loss weightings and gradient methods alike
    (each method aggregates unscaled rows, whatever its behaviour under a common factor)."""
    _, built = _built(tmp_path, [f"weighting.type={method}"])
    batch = _batch(built)
    plain, _ = _step(built, batch, None)
    scaled, _ = _step(built, batch, torch.amp.GradScaler("cpu", init_scale=2.0**12))
    moved = max(float((plain[k].float() - built.model.state_dict()[k].float()).abs().max()) for k in plain)
    assert moved > 0
    for key in plain:
        assert torch.equal(plain[key], scaled[key]), key


@pytest.mark.parametrize("method", ["ew", "pcgrad"])
def test_a_step_whose_gradients_overflow_is_skipped_and_the_scale_halved(tmp_path, method):
    _, built = _built(tmp_path, [f"weighting.type={method}"])
    batch = _batch(built)
    count = built.task_types["count"]
    original = count.loss
    count.loss = lambda *args: original(*args) * 1e30  # times the scale below, past float32's largest (3.4e38)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)
    after, weighting = _step(built, batch, scaler)
    before = dict(built.model.named_parameters())  # the weights (BatchNorm's running statistics move with any forward)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert scaler.get_scale() == 2.0**39
    if method == "pcgrad":
        assert weighting.last_weights is None  # the method did not aggregate the overflowed rows
