"""The compiler: every supported MMDetection head through the adapter, ResNet from the registry, hps branching."""

from __future__ import annotations

import pytest
import torch

from mtlspec.model.backbones import mmdet_resnet, small_cnn
from mtlspec.tasks.dense_head import DenseHeadAdapter, head_config
from mtlspec.model.sharing.hps import HardParameterSharing

pytestmark = pytest.mark.stack

STRIDES = [4, 8, 16]


def _targets():
    return [
        {"boxes": torch.tensor([[4.0, 6.0, 20.0, 24.0], [30.0, 30.0, 50.0, 56.0]]), "labels": torch.tensor([1, 3])},
        {"boxes": torch.tensor([[10.0, 12.0, 40.0, 44.0]]), "labels": torch.tensor([0])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]


@pytest.mark.parametrize("head", ["FCOSHead", "RetinaHead", "ATSSHead", "GFLHead", "FSAFHead", "FoveaHead", "PAAHead",
                                  "AutoAssignHead", "FreeAnchorRetinaHead"])
def test_every_supported_head_trains_and_predicts_through_the_adapter(head):
    from mtlspec.capabilities import IMPLEMENTED
    from mtlspec.language.tasks import DENSE_HEADS

    assert set(DENSE_HEADS) | {"FasterRCNN", "MaskRCNN"} == set(IMPLEMENTED["detection head"])  # every head the language names runs (these tests and test_instance_segmentation.py cover them)
    torch.manual_seed(0)
    adapter = DenseHeadAdapter({"type": head, "stacked_convs": 1}, num_classes=4, in_channels=32, strides=STRIDES, image_size=64)
    assert adapter.config["num_classes"] == 4 and adapter.config["in_channels"] == 32
    pyramid = [torch.randn(3, 32, 64 // s, 64 // s, requires_grad=True) for s in STRIDES]
    optimizer = torch.optim.SGD(adapter.parameters(), lr=0.01)
    has = torch.tensor([True, True, False])  # the third image carries no boxes label: it adds nothing
    losses = []
    for _ in range(3):
        loss = adapter.loss(adapter({"pyramid": pyramid}), _targets(), has)
        assert torch.isfinite(loss) and loss > 0
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    with torch.no_grad():
        predictions = adapter.predict(adapter({"pyramid": pyramid}))
    assert len(predictions) == 3
    for p in predictions:
        assert p["boxes"].shape[1] == 4 and p["scores"].shape == p["labels"].shape == (len(p["boxes"]),)


def test_head_config_fills_what_the_model_knows_and_passes_the_rest():
    cfg = head_config({"type": "FCOSHead", "stacked_convs": 2, "center_sample_radius": 2.0}, 10, 64, STRIDES)
    assert cfg["strides"] == STRIDES and cfg["regress_ranges"] == ((-1, 32), (32, 64), (64, 1e8))
    assert cfg["center_sample_radius"] == 2.0 and cfg["feat_channels"] == 64
    cfg = head_config({"type": "RetinaHead", "anchor_generator": {"octave_base_scale": 2}}, 10, 64, STRIDES)
    assert cfg["anchor_generator"]["strides"] == STRIDES and cfg["anchor_generator"]["octave_base_scale"] == 2
    assert cfg["anchor_generator"]["ratios"] == [0.5, 1.0, 2.0]


def test_resnet_from_the_registry_splits_into_stages():
    backbone = mmdet_resnet(depth=18, base_channels=8, num_stages=4)
    outs = backbone(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == backbone.channels == [8, 16, 32, 64]
    assert [64 // o.shape[-1] for o in outs] == backbone.strides == [4, 8, 16, 32]
    assert mmdet_resnet(depth=50, base_channels=8, num_stages=2).channels == [32, 64]


@pytest.mark.parametrize("branch_at", [None, 0, 1, 3])
def test_hard_sharing_branches_where_asked(branch_at):
    neck = type("Neck", (), {"type": "FPN", "out_channels": 8})()
    topology = HardParameterSharing(small_cnn([8, 16, 16]), neck, ["a", "b"], type("S", (), {"branch_at": branch_at})())
    feats = topology(torch.randn(2, 3, 32, 32))
    for task in ("a", "b"):
        assert feats[task]["vector"].shape == (2, 16)
        assert [p.shape[-1] for p in feats[task]["pyramid"]] == [8, 4, 2]
    shared = {id(p) for p in topology.shared_parameters()}
    a, b = ({id(p) for p in topology.task_parameters(t)} for t in ("a", "b"))
    assert not (a & b) and not (a & shared)
    if branch_at is None or branch_at == 3:
        assert not a and feats["a"] is feats["b"]
    else:
        assert a and b
        feats["a"]["vector"].sum().backward()  # task a's loss reaches a's branch and the trunk, never b's branch
        assert all(p.grad is None for p in topology.branches["b"].parameters())
        assert any(p.grad is not None for p in topology.branches["a"].parameters())
        assert any(p.grad is not None for p in topology.shared_parameters())


def test_the_two_stage_head_trains_both_stages_and_predicts():
    """Faster R-CNN through MMDetection's RPN and RoI heads: the loss (both stages, labelled images
    only) falls over a few steps, unlabelled images add nothing, and both stages predict."""
    from mtlspec.language.tasks import TwoStageHead
    from mtlspec.tasks.two_stage_head import TwoStageAdapter

    torch.manual_seed(0)
    adapter = TwoStageAdapter(TwoStageHead(type="FasterRCNN", proposals=100, roi_samples=64, fc_channels=64), num_classes=4,
                              in_channels=32, strides=STRIDES, image_size=64)
    pyramid = [torch.randn(3, 32, 64 // s, 64 // s, requires_grad=True) for s in STRIDES]
    optimizer = torch.optim.SGD(adapter.parameters(), lr=0.01)
    losses = []
    for _ in range(6):
        loss = adapter.loss(adapter({"pyramid": pyramid}), _targets(), torch.tensor([True, True, False]))
        assert torch.isfinite(loss) and loss > 0
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
    assert adapter.rpn.rpn_conv.weight.grad.abs().sum() > 0 and adapter.roi.bbox_head.fc_cls.weight.grad.abs().sum() > 0
    none = adapter.loss(adapter({"pyramid": pyramid}), _targets(), torch.tensor([False, False, False]))
    assert float(none) == 0.0
    adapter.eval()
    with torch.no_grad():
        predictions = adapter.predict(adapter({"pyramid": pyramid}))
    assert len(predictions) == 3
    for p in predictions:
        assert p["boxes"].shape[1] == 4 and p["scores"].shape == p["labels"].shape == (len(p["boxes"]),)
        assert (p["labels"] < 4).all()
