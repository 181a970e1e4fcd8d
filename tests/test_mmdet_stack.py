"""The MMDetection stack really works here: dense heads built from config dicts train and predict on CPU."""

from __future__ import annotations

import pytest

from conftest import REPO

torch = pytest.importorskip("torch")
pytest.importorskip("mmdet")

from mmdet.registry import MODELS  # noqa: E402
from mmdet.structures import DetDataSample  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.config import ConfigDict  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

pytestmark = pytest.mark.stack

IMAGE = 64
STRIDES = (8, 16, 32)
CHANNELS = 32
NUM_CLASSES = 3

TEST_CFG = ConfigDict(nms_pre=100, min_bbox_size=0, score_thr=0.0, nms=dict(type="nms", iou_threshold=0.5), max_per_img=20)
HEADS = {
    "FCOSHead": dict(
        type="FCOSHead",
        regress_ranges=((-1, 16), (16, 32), (32, 1e8)),
        norm_on_bbox=True,
        centerness_on_reg=True,
    ),
    "RetinaHead": dict(
        type="RetinaHead",
        anchor_generator=dict(type="AnchorGenerator", octave_base_scale=4, scales_per_octave=3, ratios=[0.5, 1.0, 2.0], strides=list(STRIDES)),
        train_cfg=ConfigDict(
            assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0, ignore_iof_thr=-1),
            sampler=dict(type="PseudoSampler"),
            allowed_border=-1,
            pos_weight=-1,
            debug=False,
        ),
    ),
}


def _samples() -> list[DetDataSample]:
    samples = []
    for boxes, labels in (([[4.0, 6.0, 30.0, 34.0], [36.0, 10.0, 60.0, 40.0]], [0, 2]), ([[10.0, 12.0, 50.0, 58.0]], [1])):
        sample = DetDataSample(metainfo=dict(img_shape=(IMAGE, IMAGE), pad_shape=(IMAGE, IMAGE), scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(bboxes=torch.tensor(boxes), labels=torch.tensor(labels))
        samples.append(sample)
    return samples


@pytest.mark.parametrize("name", sorted(HEADS))
def test_dense_head_trains_and_predicts(name):
    register_all_modules(init_default_scope=False)
    cfg = dict(HEADS[name], num_classes=NUM_CLASSES, in_channels=CHANNELS, feat_channels=CHANNELS, stacked_convs=1, test_cfg=TEST_CFG)
    if name == "FCOSHead":
        cfg["strides"] = list(STRIDES)
    torch.manual_seed(0)
    head = MODELS.build(cfg)
    head.init_weights()
    feats = tuple(torch.randn(2, CHANNELS, IMAGE // s, IMAGE // s) for s in STRIDES)
    samples = _samples()

    losses = head.loss(feats, samples)
    total = sum(v.sum() if torch.is_tensor(v) else sum(x.sum() for x in v) for k, v in losses.items() if "loss" in k)
    assert torch.isfinite(total), losses
    assert total.item() > 0
    total.backward()
    for pname, param in head.named_parameters():
        assert param.grad is not None, f"{name}: no gradient reached {pname}"
        assert torch.isfinite(param.grad).all(), f"{name}: non-finite gradient in {pname}"
    assert any(p.grad.abs().sum() > 0 for p in head.parameters())

    head.eval()
    with torch.no_grad():
        results = head.predict(feats, samples, rescale=False)
    assert len(results) == 2
    for result in results:
        assert result.bboxes.ndim == 2 and result.bboxes.shape[1] == 4
        assert result.scores.shape == result.labels.shape == (result.bboxes.shape[0],)
        assert 0 < result.bboxes.shape[0] <= TEST_CFG.max_per_img
        assert ((result.labels >= 0) & (result.labels < NUM_CLASSES)).all()


def test_the_dense_head_table_validate_reads_matches_the_installed_mmdetection():
    """validate checks head fields against spec/dense_head_args.py without importing MMDetection;
    regenerate it with tools/dense_head_args.py when this fails."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("dense_head_args_tool", REPO / "tools" / "dense_head_args.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.render() == (REPO / "mtlspec" / "language" / "dense_head_args.py").read_text()
