"""The detection task's head: the one place that talks to MMDetection's dense heads (built from the
spec through the registry door, mtlspec/openmmlab.py), computes their losses and decodes boxes.

The compiler fills `num_classes`, `in_channels`, `feat_channels` (when absent) and the strides
(FCOS's `strides` and `regress_ranges`, or the anchor generator's `strides`) from the model;
every other field the spec writes passes through to MMDetection as written.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from mtlspec.openmmlab import build_module

INF = 1e8
FOCAL = dict(type="FocalLoss", use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0)
TEST_CFG = dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05, nms=dict(type="nms", iou_threshold=0.5), max_per_img=100)
ATSS_TRAIN = dict(assigner=dict(type="ATSSAssigner", topk=9), allowed_border=-1, pos_weight=-1, debug=False)

# MMDetection's standard configs for each head (configs/<head>/*_r50_fpn_1x_coco.py), minus what the model fills.
HEAD_DEFAULTS: dict[str, dict[str, Any]] = {
    "FCOSHead": dict(norm_on_bbox=True, centerness_on_reg=True, center_sampling=True, conv_bias=True,
                     loss_cls=FOCAL, loss_bbox=dict(type="GIoULoss", loss_weight=1.0)),
    "RetinaHead": dict(
        anchor_generator=dict(type="AnchorGenerator", octave_base_scale=4, scales_per_octave=3, ratios=[0.5, 1.0, 2.0]),
        bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0] * 4),
        loss_cls=FOCAL, loss_bbox=dict(type="L1Loss", loss_weight=1.0),
        train_cfg=dict(assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0, ignore_iof_thr=-1),
                       sampler=dict(type="PseudoSampler"), allowed_border=-1, pos_weight=-1, debug=False),
    ),
    "ATSSHead": dict(
        anchor_generator=dict(type="AnchorGenerator", ratios=[1.0], octave_base_scale=8, scales_per_octave=1),
        bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=FOCAL, loss_bbox=dict(type="GIoULoss", loss_weight=2.0),
        loss_centerness=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0),
        train_cfg=ATSS_TRAIN,
    ),
    "GFLHead": dict(
        anchor_generator=dict(type="AnchorGenerator", ratios=[1.0], octave_base_scale=8, scales_per_octave=1),
        loss_cls=dict(type="QualityFocalLoss", use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_dfl=dict(type="DistributionFocalLoss", loss_weight=0.25), reg_max=16,
        loss_bbox=dict(type="GIoULoss", loss_weight=2.0), train_cfg=ATSS_TRAIN,
    ),
    "FSAFHead": dict(
        reg_decoded_bbox=True,
        anchor_generator=dict(type="AnchorGenerator", octave_base_scale=1, scales_per_octave=1, ratios=[1.0]),
        bbox_coder=dict(type="TBLRBBoxCoder", normalizer=4.0),
        loss_cls=dict(FOCAL, reduction="none"), loss_bbox=dict(type="IoULoss", eps=1e-6, loss_weight=1.0, reduction="none"),
        train_cfg=dict(assigner=dict(type="CenterRegionAssigner", pos_scale=0.2, neg_scale=0.2, min_pos_iof=0.01),
                       sampler=dict(type="PseudoSampler"), allowed_border=-1, pos_weight=-1, debug=False),
    ),
    "FoveaHead": dict(sigma=0.4, with_deform=False, loss_cls=dict(type="FocalLoss", use_sigmoid=True, gamma=1.5, alpha=0.4, loss_weight=1.0),
                      loss_bbox=dict(type="SmoothL1Loss", beta=0.11, loss_weight=1.0), train_cfg=dict()),
    "PAAHead": dict(
        reg_decoded_bbox=True, score_voting=True, topk=9,
        anchor_generator=dict(type="AnchorGenerator", ratios=[1.0], octave_base_scale=8, scales_per_octave=1),
        bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=FOCAL, loss_bbox=dict(type="GIoULoss", loss_weight=1.3),
        loss_centerness=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=0.5),
        train_cfg=dict(assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.1, neg_iou_thr=0.1, min_pos_iou=0, ignore_iof_thr=-1),
                       sampler=dict(type="PseudoSampler"), allowed_border=-1, pos_weight=-1, debug=False),
    ),
    "AutoAssignHead": dict(loss_bbox=dict(type="GIoULoss", loss_weight=5.0)),
    "FreeAnchorRetinaHead": dict(
        anchor_generator=dict(type="AnchorGenerator", octave_base_scale=4, scales_per_octave=3, ratios=[0.5, 1.0, 2.0]),
        bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=FOCAL, loss_bbox=dict(type="SmoothL1Loss", beta=0.11, loss_weight=0.75),
        train_cfg=dict(assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0, ignore_iof_thr=-1),
                       sampler=dict(type="PseudoSampler"), allowed_border=-1, pos_weight=-1, debug=False),
    ),
}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else copy.deepcopy(value)
    return out


def head_config(head_fields: dict[str, Any], num_classes: int, in_channels: int, strides: list[int]) -> dict[str, Any]:
    """The MMDetection config dict for a head: standard defaults, the spec's fields, the model's facts."""
    kind = head_fields["type"]
    cfg = _merge(HEAD_DEFAULTS.get(kind, {}), head_fields)
    cfg.update(num_classes=num_classes, in_channels=in_channels)
    cfg.setdefault("feat_channels", in_channels)
    cfg["test_cfg"] = _merge(TEST_CFG, cfg.get("test_cfg") or {})
    from mtlspec.language.dense_head_args import HEAD_ARGUMENTS

    if "anchor_generator" in cfg:
        cfg["anchor_generator"]["strides"] = list(strides)
    if "strides" in HEAD_ARGUMENTS.get(kind, ()) or "anchor_generator" not in cfg:
        cfg["strides"] = list(strides)
    if kind == "FCOSHead":
        bounds = [-1] + [8 * s for s in strides[:-1]] + [INF]
        cfg["regress_ranges"] = tuple((bounds[i], bounds[i + 1]) for i in range(len(strides)))
    if kind == "FoveaHead":  # MMDetection's values for strides 8..128, in units of each level's stride
        cfg.setdefault("base_edge_list", [2 * s for s in strides])
        cfg.setdefault("scale_ranges", tuple((1 if i == 0 else 2 * s, 8 * s if i < len(strides) - 1 else 16 * s) for i, s in enumerate(strides)))
    from mmengine.config import ConfigDict  # the heads read train_cfg and test_cfg by attribute

    for key in ("train_cfg", "test_cfg"):
        if key in cfg:
            cfg[key] = ConfigDict(cfg[key])
    return cfg


def _select(outputs: Any, index: torch.Tensor) -> Any:
    if torch.is_tensor(outputs):
        return outputs[index]
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(_select(o, index) for o in outputs)
    return outputs


class DenseHeadAdapter(nn.Module):
    """An MMDetection dense head behind mtlspec's head interface."""

    def __init__(self, head_fields: dict[str, Any], num_classes: int, in_channels: int, strides: list[int], image_size: int):
        super().__init__()
        self.config = head_config(head_fields, num_classes, in_channels, strides)
        self.head = build_module(self.config)
        self.image_size = image_size
        # mmcv's deformable convolutions (FCOS's dcn_on_last_conv, FoveaHead's with_deform) have no
        # bfloat16 kernels (CPU or CUDA): such a head runs its forward in float32 under autocast
        self.float32_forward = any("DeformConv" in type(m).__name__ for m in self.head.modules())

    def forward(self, features: dict[str, Any]) -> Any:
        levels = tuple(features["pyramid"])
        if self.float32_forward:
            from mtlspec.tasks.objects import in_float32, without_autocast

            with without_autocast(levels):
                return self.head(in_float32(levels))
        return self.head(levels)

    def _metas(self, count: int) -> list[dict[str, Any]]:
        size = (self.image_size, self.image_size)
        return [dict(img_shape=size, pad_shape=size, scale_factor=(1.0, 1.0)) for _ in range(count)]

    def loss(self, outputs: Any, targets: list[dict[str, torch.Tensor]], has: torch.Tensor) -> torch.Tensor:
        """The head's losses summed, over the labelled images only (others add nothing)."""
        from mmengine.structures import InstanceData

        from mtlspec import distributed

        index = torch.nonzero(has, as_tuple=False).flatten()
        unlabelled = len(index) == 0
        if unlabelled and not distributed.current().active:
            return sum(o.sum() for o in _flatten(outputs)) * 0.0
        from mtlspec.tasks.objects import without_crowd

        if unlabelled:
            # Other ranks may hold labelled images, and MMDetection's losses average their positive
            # counts over the ranks (reduce_mean, a collective): this rank takes part with one image
            # and no objects, and adds nothing.
            index = torch.zeros(1, dtype=torch.long)
            chosen = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
        else:
            chosen = [without_crowd(targets[i]) for i in index.tolist()]
        gts = [InstanceData(bboxes=t["boxes"].float().to(has.device), labels=t["labels"].long().to(has.device)) for t in chosen]
        losses = self.head.loss_by_feat(*_select(outputs, index.to(_device(outputs))), batch_gt_instances=gts, batch_img_metas=self._metas(len(index)))
        total = 0.0
        for name, value in losses.items():
            if "loss" in name:
                total = total + (sum(v.sum() for v in value) if isinstance(value, (list, tuple)) else value.sum())
        return total * 0.0 if unlabelled else total

    def predict(self, outputs: Any) -> list[dict[str, torch.Tensor]]:
        results = self.head.predict_by_feat(*outputs, batch_img_metas=self._metas(len(_flatten(outputs)[0])), rescale=False)
        return [{"boxes": r.bboxes.detach().float().cpu(), "scores": r.scores.detach().float().cpu(), "labels": r.labels.detach().cpu()} for r in results]


def _flatten(outputs: Any) -> list[torch.Tensor]:
    if torch.is_tensor(outputs):
        return [outputs]
    return [t for o in outputs for t in _flatten(o)]


def _device(outputs: Any) -> torch.device:
    return _flatten(outputs)[0].device
