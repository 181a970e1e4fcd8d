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


METHODS = ["static", "ew", "uw", "dwa", "rlw", "gls", "famo", "gradnorm", "mgda", "pcgrad", "graddrop", "gradvac", "cagrad", "nash_mtl",
           "aligned_mtl", "upgrad", "imtl", "db_mtl", "fairgrad"]


def _steps(built, batches, scaler, model=None, method=None):
    """SGD steps of copies of the built model and method (or of the ones given) on the batches."""
    torch.manual_seed(0)  # RLW, PCGrad and GradDrop draw from the global generator
    model = model if model is not None else copy.deepcopy(built.model)
    method = method if method is not None else copy.deepcopy(built.weighting)
    optimizer = torch.optim.SGD([*model.parameters(), *method.parameters()], lr=0.05)
    for batch in batches:
        train_step(model, built.task_types, method, optimizer, batch, contextlib.nullcontext, None, None, scaler)
    return model, method


def _same(a, b) -> bool:
    """Equal, bit for bit: tensors, arrays, numbers and the containers of a method's state."""
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.shape == b.shape and bool(torch.equal(a, b) or (a.isnan() == b.isnan()).all() and torch.equal(a.nan_to_num(), b.nan_to_num()))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if hasattr(a, "shape"):  # numpy
        return _same(torch.as_tensor(a), torch.as_tensor(b))
    return a == b or (a != a and b != b)


@pytest.mark.parametrize("method", METHODS)
def test_scaled_steps_equal_unscaled_steps_bit_for_bit(tmp_path, method):
    """In float32 a power-of-two scale multiplies every gradient exactly, and unscaling divides it
    back exactly: a GradScaler must change nothing over three steps, neither the weights nor the
    method's own state and learned weights (GradNorm's, UW's), for loss weightings and gradient
    methods alike (each aggregates unscaled rows, whatever its behaviour under a common factor)."""
    _, built = _built(tmp_path, [f"weighting.type={method}"])
    data = built.dataset("train")
    batches = [collate([data[i] for i in range(8 * k, 8 * k + 8)], built.task_types) for k in range(2)] * 2
    plain_model, plain_method = _steps(built, batches[:3], None)
    scaled_model, scaled_method = _steps(built, batches[:3], torch.amp.GradScaler("cpu", init_scale=2.0**12))
    start = built.model.state_dict()
    assert max(float((plain_model.state_dict()[k].float() - start[k].float()).abs().max()) for k in start) > 0
    assert _same(plain_model.state_dict(), scaled_model.state_dict())
    assert _same(plain_method.state_dict(), scaled_method.state_dict()), method
    assert _same([p.detach() for p in plain_method.parameters()], [p.detach() for p in scaled_method.parameters()])


OVERFLOWS = [(m, w) for m in ("ew", "pcgrad", "nash_mtl", "db_mtl") for w in ("every task", "one task's own parameters")] + [("famo", "every task")]


@pytest.mark.parametrize("method,where", OVERFLOWS)
def test_a_step_whose_gradients_overflow_is_skipped_and_the_method_learns_nothing(tmp_path, method, where):
    _, built = _built(tmp_path, [f"weighting.type={method}"])
    batch = _batch(built)
    model, weighting = copy.deepcopy(built.model), copy.deepcopy(built.weighting)
    count = built.task_types["count"]
    original = count.loss
    if where == "every task":
        # times the scale below, past float32's largest (3.4e38); FAMO weights the losses' logarithms, so for it the loss itself is inf
        big = float("inf") if method == "famo" else 1e30
        count.loss = lambda *args: original(*args) * big
    else:  # the shared rows stay finite; only the count head's last parameter overflows
        last = [p for p in model.task_parameters("count") if p.requires_grad][-1]
        count.loss = lambda *args: original(*args) + 1e30 * last.sum()
    weights_before = {k: v.detach().clone() for k, v in model.named_parameters()}  # (BatchNorm's running statistics move with any forward)
    state_before = copy.deepcopy(weighting.state_dict())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)
    _steps(built, [batch], scaler, model, weighting)
    assert all(torch.equal(v, weights_before[k]) for k, v in model.named_parameters())
    assert scaler.get_scale() == 2.0**39
    assert _same(weighting.state_dict(), state_before)


@pytest.mark.parametrize("head", ["{type: FCOSHead, dcn_on_last_conv: true}", "{type: FoveaHead, with_deform: true}"])
def test_heads_with_deformable_convolutions_run_their_forward_in_float32_under_bf16(tmp_path, head):
    """mmcv's deformable convolutions have no bfloat16 kernels: "modulated_deformable_im2col_cpu not
    implemented for 'BFloat16'" before such heads ran their forward in float32."""
    tasks = TASKS.replace("{type: FCOSHead, stacked_convs: 1, feat_channels: 8, norm_cfg: {type: GN, num_groups: 4, requires_grad: true}}", head)
    _, built = _built(tmp_path, ["model.neck.out_channels=32"], tasks=tasks)
    boxes = built.task_types["boxes"]
    batch = _batch(built, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = built.model(batch["image"])
        loss = boxes.loss(outputs["boxes"], batch["targets"]["boxes"], batch["has"]["boxes"], batch["weight"]["boxes"])
    assert torch.isfinite(loss)
    loss.backward()


def test_meta_learning_refuses_a_precision_it_would_ignore():
    from conftest import REPO

    (result,) = validate_file(REPO / "specs" / "meta-maml.yaml", ["training.precision=bf16"])
    assert [(d.path, d.code) for d in result.errors] == [("training.precision", "incompatible")]


@pytest.mark.parametrize("method", ["ew", "pcgrad"])
def test_a_channels_last_step_equals_the_default_step_up_to_rounding(tmp_path, method):
    """training.channels_last changes the memory order, not the model: one step's weights agree
    with the default order's to 1e-4 of the largest change (convolution kernels sum in another order)."""
    _, built = _built(tmp_path, [f"weighting.type={method}"])
    batch = _batch(built)
    plain, _ = _steps(built, [batch], None)
    model = copy.deepcopy(built.model)
    model.use_channels_last()
    assert any(p.dim() == 4 and p.shape[1] > 1 and not p.is_contiguous() and p.is_contiguous(memory_format=torch.channels_last)
               for p in model.parameters())
    fast, _ = _steps(built, [batch], None, model)
    start = built.model.state_dict()
    largest = max(float((plain.state_dict()[k].float() - start[k].float()).abs().max()) for k in start)
    worst = max(float((fast.state_dict()[k].float() - plain.state_dict()[k].float()).abs().max()) for k in start)
    assert 0 < worst <= 1e-4 * largest or worst == 0, (worst, largest)


def test_a_run_in_channels_last_order_trains_and_evaluates(tmp_path):
    from conftest import run_result

    result, _ = _built(tmp_path, ["training.channels_last=true", "training.epochs=1"])
    outcome = run_result(result, tmp_path / "runs")
    assert all(v == v for task in outcome.report["tasks"].values() for v in task["metrics"].values())
