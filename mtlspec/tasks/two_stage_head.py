"""Two-stage heads: MMDetection's RPN head and standard RoI head on the shared pyramid, built
through the registry door (mtlspec/openmmlab.py) with the settings of MMDetection's
faster-rcnn_r50_fpn config (the detection task's FasterRCNN) and, with a mask branch (RoIAlign 14 x
14, four convolutions, a 28 x 28 mask per class: mask-rcnn_r50_fpn), the instance segmentation
task's MaskRCNN; the compiler fills channels, strides and class count.

Its forward passes the pyramid on; the loss runs the RPN (its loss and its proposals, with every
box labelled as one class, as MMDetection's TwoStageDetector does), then the RoI head's loss on
those proposals; prediction runs both stages. So an exported graph of a model with this head
ends at the features, and both stages run in `predict`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mtlspec.openmmlab import build_module


def _configs(spec: Any, num_classes: int, in_channels: int, strides: list[int], masks: bool) -> tuple[dict, dict, Any]:
    from mmengine.config import ConfigDict

    nms = lambda iou: dict(type="nms", iou_threshold=iou)  # noqa: E731
    train = ConfigDict(
        rpn=dict(assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3, match_low_quality=True, ignore_iof_thr=-1),
                 sampler=dict(type="RandomSampler", num=256, pos_fraction=0.5, neg_pos_ub=-1, add_gt_as_proposals=False),
                 allowed_border=-1, pos_weight=-1, debug=False),
        rpn_proposal=dict(nms_pre=2 * spec.proposals, max_per_img=spec.proposals, nms=nms(0.7), min_bbox_size=0),
        rcnn=dict(assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0.5, match_low_quality=False, ignore_iof_thr=-1),
                  sampler=dict(type="RandomSampler", num=spec.roi_samples, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True),
                  pos_weight=-1, debug=False, **(dict(mask_size=28) if masks else {})))
    test = ConfigDict(rpn=dict(nms_pre=spec.proposals, max_per_img=spec.proposals, nms=nms(0.7), min_bbox_size=0),
                      rcnn=dict(score_thr=0.05, nms=nms(0.5), max_per_img=100, **(dict(mask_thr_binary=0.5) if masks else {})))
    rpn = dict(type="RPNHead", in_channels=in_channels, feat_channels=in_channels,
               anchor_generator=dict(type="AnchorGenerator", scales=[8], ratios=[0.5, 1.0, 2.0], strides=list(strides)),
               bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0] * 4),
               loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0), loss_bbox=dict(type="L1Loss", loss_weight=1.0),
               train_cfg=train.rpn, test_cfg=test.rpn)
    roi = dict(type="StandardRoIHead",
               bbox_roi_extractor=dict(type="SingleRoIExtractor", roi_layer=dict(type="RoIAlign", output_size=7, sampling_ratio=0),
                                       out_channels=in_channels, featmap_strides=list(strides)),
               bbox_head=dict(type="Shared2FCBBoxHead", in_channels=in_channels, fc_out_channels=spec.fc_channels, roi_feat_size=7,
                              num_classes=num_classes, reg_class_agnostic=False,
                              bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[0.1, 0.1, 0.2, 0.2]),
                              loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
                              loss_bbox=dict(type="L1Loss", loss_weight=1.0)),
               train_cfg=train.rcnn, test_cfg=test.rcnn)
    if masks:
        roi.update(mask_roi_extractor=dict(type="SingleRoIExtractor", roi_layer=dict(type="RoIAlign", output_size=14, sampling_ratio=0),
                                           out_channels=in_channels, featmap_strides=list(strides)),
                   mask_head=dict(type="FCNMaskHead", num_convs=spec.mask_convs, in_channels=in_channels, conv_out_channels=in_channels,
                                  num_classes=num_classes, loss_mask=dict(type="CrossEntropyLoss", use_mask=True, loss_weight=1.0)))
    return rpn, roi, train


class TwoStageAdapter(nn.Module):
    """Faster R-CNN's RPN and RoI heads (with `masks`, Mask R-CNN's mask branch too) behind
    mtlspec's head interface. Targets are {"boxes", "labels"} per image, and "masks" (N, H, W)
    uint8 at the image size with `masks`."""

    def __init__(self, spec: Any, num_classes: int, in_channels: int, strides: list[int], image_size: int, masks: bool = False):
        super().__init__()
        rpn, roi, self.train_cfg = _configs(spec, num_classes, in_channels, strides, masks)
        self.rpn, self.roi = build_module(rpn), build_module(roi)
        self.image_size, self.masks = image_size, masks

    def forward(self, features: dict[str, Any]) -> Any:
        return (tuple(features["pyramid"]),)  # the levels, as a dense head's first output

    def _samples(self, targets: list[dict[str, torch.Tensor]] | None, count: int, one_class: bool = False) -> list:
        from mmdet.structures import DetDataSample
        from mmengine.structures import InstanceData

        size = (self.image_size, self.image_size)
        out = []
        for i in range(count):
            sample = DetDataSample(metainfo=dict(img_shape=size, ori_shape=size, pad_shape=size, batch_input_shape=size, scale_factor=(1.0, 1.0)))
            if targets is not None:
                labels = targets[i]["labels"].long()
                sample.gt_instances = InstanceData(bboxes=targets[i]["boxes"].float(), labels=torch.zeros_like(labels) if one_class else labels)
                if self.masks and not one_class:
                    from mmdet.structures.mask import BitmapMasks

                    sample.gt_instances.masks = BitmapMasks(targets[i]["masks"].cpu().numpy().astype("uint8"), *size)
            out.append(sample)
        return out

    def loss(self, outputs: Any, targets: list[dict[str, torch.Tensor]], has: torch.Tensor) -> torch.Tensor:
        """Both stages' losses summed, over the labelled images only (others add nothing)."""
        levels = outputs[0]
        index = torch.nonzero(has, as_tuple=False).flatten()
        if len(index) == 0:
            return sum(level.sum() for level in levels) * 0.0
        device = levels[0].device
        x = tuple(level[index.to(device)] for level in levels)
        from mtlspec.tasks.objects import without_crowd

        chosen = [{k: v.to(device) for k, v in without_crowd(targets[i]).items()} for i in index.tolist()]
        rpn_losses, proposals = self.rpn.loss_and_predict(x, self._samples(chosen, len(chosen), one_class=True),
                                                         proposal_cfg=self.train_cfg.rpn_proposal)
        roi_losses = self.roi.loss(x, proposals, self._samples(chosen, len(chosen)))
        total = 0.0
        for name, value in {**{f"rpn_{k}": v for k, v in rpn_losses.items()}, **roi_losses}.items():
            if "loss" in name:
                total = total + (sum(v.sum() for v in value) if isinstance(value, (list, tuple)) else value.sum())
        return total

    def predict(self, outputs: Any) -> list[dict[str, torch.Tensor]]:
        x = outputs[0]
        samples = self._samples(None, len(x[0]))
        proposals = self.rpn.predict(x, samples, rescale=False)
        results = self.roi.predict(x, proposals, samples, rescale=False)
        out = [{"boxes": r.bboxes.detach().float().cpu(), "scores": r.scores.detach().float().cpu(), "labels": r.labels.detach().cpu()} for r in results]
        if self.masks:  # (n, H, W) bool at the image size: MMDetection pastes each 28 x 28 mask into its box
            for o, r in zip(out, results):
                o["masks"] = r.masks.detach().cpu().bool().reshape(-1, self.image_size, self.image_size)
        return out
