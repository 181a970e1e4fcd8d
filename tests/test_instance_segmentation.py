"""Instance segmentation (issue 19, part 3): the labels agree with the image through every transform,
the metric agrees with closed forms of COCO's definition, Mask R-CNN's heads learn through the
adapter, and a run trains, evaluates, predicts and exports."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import run_result
from mtlspec.data.augment import resized_crop
from mtlspec.data.multidigits import MultiDigitsParams, MultiDigitsSource
from mtlspec.data.records import DataError
from mtlspec.data.transforms import hflip, resize_pad
from mtlspec.language import validate_file

pytestmark = pytest.mark.stack


def consistent(record: dict) -> None:
    """Each object's mask lies inside its box, shows its own class in the semantic mask, and no two
    objects claim a pixel; together they are the foreground."""
    masks, boxes, labels, semantic = record["instance_masks"], record["boxes"], record["box_labels"], record["mask"]
    assert masks.shape == (len(boxes), *semantic.shape) and masks.dtype == np.uint8
    for m, box, label in zip(masks, boxes, labels):
        ys, xs = np.nonzero(m)
        if len(ys):
            assert xs.min() >= np.floor(box[0]) - 1e-6 and xs.max() + 1 <= np.ceil(box[2]) + 1e-6
            assert ys.min() >= np.floor(box[1]) - 1e-6 and ys.max() + 1 <= np.ceil(box[3]) + 1e-6
            assert (semantic[m > 0] == label + 1).all()
    assert masks.sum(0).max(initial=0) <= 1
    assert ((masks.sum(0) > 0) == ((semantic > 0) & (semantic != 255))).all()


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MTLSPEC_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield MultiDigitsSource("digits", MultiDigitsParams(canvas=48, min_objects=2, max_objects=3, split="val", size=40, seed=5))


def test_multidigits_instance_masks_are_each_digits_visible_pixels(digits):
    for i in range(len(digits)):
        record = digits.record(i)
        consistent(record)
        assert all(m.sum() > 0 for m in record["instance_masks"])  # every digit keeps half its ink visible


def test_instance_masks_follow_resize_flip_and_crop(digits):
    crop = SimpleNamespace(scale=[0.3, 1.0], ratio=[0.5, 2.0], min_visible=0.2)
    for i in range(len(digits)):
        record = digits.record(i)
        consistent(resize_pad(record, 32))
        consistent(resize_pad(record, 80))
        consistent(hflip(record))
        flipped = hflip(record)
        assert (flipped["instance_masks"][..., ::-1] == record["instance_masks"]).all()
        for seed in range(5):
            cropped = resized_crop(record, crop, np.random.default_rng([i, seed]))
            assert len(cropped["instance_masks"]) == len(cropped["boxes"]) == len(cropped["box_labels"])
            masks, boxes = cropped["instance_masks"], cropped["boxes"]
            for m, box in zip(masks, boxes):  # clipped boxes still hold their object's remaining pixels
                ys, xs = np.nonzero(m)
                if len(ys):
                    assert box[0] <= xs.min() and xs.max() + 1 <= box[2] and box[1] <= ys.min() and ys.max() + 1 <= box[3]
            assert cropped["instance_masks"].shape[1:] == cropped["image"].shape[:2]


def test_coco_instance_masks_and_an_unsegmented_object_named(tmp_path):
    from mtlspec.data.formats.coco import CocoSource
    from mtlspec.language.tasks import InstanceSegmentation as Section
    from mtlspec.tasks.instance_segmentation import InstanceSegmentation
    from PIL import Image

    (tmp_path / "img").mkdir()
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "img" / "a.png")
    annotations = [{"id": 1, "image_id": 1, "category_id": 9, "bbox": [2, 3, 10, 8], "area": 80, "iscrowd": 0,
                    "segmentation": [[2, 3, 12, 3, 12, 11, 2, 11]]},
                   {"id": 2, "image_id": 1, "category_id": 7, "bbox": [20, 5, 6, 6], "area": 36, "iscrowd": 0,
                    "segmentation": [[20, 5, 26, 5, 26, 11, 20, 11]]}]
    data = {"images": [{"id": 1, "file_name": "img/a.png", "width": 40, "height": 30}],
            "categories": [{"id": 7, "name": "car"}, {"id": 9, "name": "person"}], "annotations": annotations}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    source = CocoSource("c", tmp_path, {"train": "ann.json", "val": "ann.json", "test": "ann.json"}, "val", 0, needs_instances=True, needs_masks=True)
    task = InstanceSegmentation("inst", 2, Section(type="instance_segmentation", dataset="c"))
    target, present = task.target(source.record(0))
    assert present and target["masks"].shape == (2, 30, 40) and target["labels"].tolist() == [1, 0]
    assert target["masks"][0, 4:10, 3:11].all() and target["masks"][1, 6:10, 21:25].all() and target["masks"].sum(0).max() == 1
    assert "instance_masks" not in CocoSource("c", tmp_path, {"train": "ann.json", "val": "ann.json", "test": "ann.json"}, "val", 0,
                                              needs_instances=True).record(0)  # only built when an instance task reads them
    del annotations[1]["segmentation"]
    (tmp_path / "ann.json").write_text(json.dumps(data))
    source = CocoSource("c", tmp_path, {"train": "ann.json", "val": "ann.json", "test": "ann.json"}, "val", 0, needs_instances=True, needs_masks=True)
    with pytest.raises(DataError, match=r"ann.json, sample img/a.png: annotation 2 has no segmentation"):
        source.check(0)  # found by the scan before training, not mid-run


def _square(x0: int, y0: int, x1: int, y1: int, size: int = 32) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def _score(predictions, truths, classes: int = 2) -> dict:
    from mtlspec.tasks.instance_segmentation import InstanceMetric

    metric = InstanceMetric(classes)
    metric.update(predictions, truths, torch.ones(len(truths), dtype=torch.bool))
    return metric.compute()


def _instances(masks, labels, scores=None, boxes=None):
    masks = np.stack(masks)
    if boxes is None:
        boxes = [[np.nonzero(m)[1].min(), np.nonzero(m)[0].min(), np.nonzero(m)[1].max() + 1, np.nonzero(m)[0].max() + 1] for m in masks]
    out = {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels), "masks": torch.from_numpy(masks)}
    if scores is not None:
        out["scores"] = torch.tensor(scores, dtype=torch.float32)
    return out


def test_the_metric_follows_cocos_definition_on_closed_forms():
    """A perfect prediction scores 1. A mask of IoU exactly 0.6 with its object (box exact) is a
    true positive at the thresholds 0.50, 0.55 and 0.60 of the ten COCO averages over (iou >=
    threshold counts), so mask mAP = 3/10, mAP50 = 1, mAP75 = 0, while box mAP stays 1."""
    truth = [_instances([_square(2, 2, 12, 12), _square(16, 16, 26, 30)], [0, 1])]
    perfect = [_instances([_square(2, 2, 12, 12), _square(16, 16, 26, 30)], [0, 1], scores=[0.9, 0.8])]
    assert _score(perfect, truth) == pytest.approx({"mask_map": 1.0, "mask_map50": 1.0, "mask_map75": 1.0, "box_map": 1.0})
    partial = _square(2, 2, 12, 8)  # 60 of the object's 100 pixels, none outside: IoU 0.6
    inexact = [_instances([partial, _square(16, 16, 26, 30)], [0, 1], scores=[0.9, 0.8], boxes=[[2, 2, 12, 12], [16, 16, 26, 30]])]
    scored = _score(inexact, truth)
    assert scored["box_map"] == pytest.approx(1.0)
    # class 0 scores 0.3 (3 of 10 thresholds), class 1 scores 1: the mean over the two classes
    assert scored["mask_map"] == pytest.approx((0.3 + 1.0) / 2) and scored["mask_map50"] == pytest.approx(1.0)
    assert scored["mask_map75"] == pytest.approx((0.0 + 1.0) / 2)
    wrong_class = [_instances([_square(2, 2, 12, 12), _square(16, 16, 26, 30)], [1, 0], scores=[0.9, 0.8])]
    assert _score(wrong_class, truth)["mask_map"] == 0.0


def test_crowd_regions_are_ignored_in_matching_and_left_out_of_training():
    """COCO scores a detection on a crowd region as neither right nor wrong: with the crowd object
    marked, a prediction over it costs nothing; unmarked, it would count as an object."""
    from mtlspec.tasks.objects import without_crowd

    truth = _instances([_square(2, 2, 12, 12), _square(16, 16, 30, 30)], [0, 1])
    truth["crowd"] = torch.tensor([False, True])
    hit = [_instances([_square(2, 2, 12, 12), _square(16, 16, 30, 30)], [0, 1], scores=[0.9, 0.95])]
    assert _score(hit, [truth])["mask_map"] == pytest.approx(1.0)  # class 1 has only a crowd object: nothing to score there
    missed = [_instances([_square(2, 2, 12, 12)], [0], scores=[0.9])]
    assert _score(missed, [truth])["mask_map"] == pytest.approx(1.0)  # missing a crowd region is no miss
    kept = without_crowd(truth)
    assert kept["labels"].tolist() == [0] and kept["masks"].shape[0] == 1 and "crowd" not in kept


def test_mask_rcnn_heads_learn_and_predict_masks_at_the_image_size():
    from mtlspec.language.tasks import MaskRCNNHead
    from mtlspec.tasks.two_stage_head import TwoStageAdapter

    torch.manual_seed(0)
    strides = [8, 16]
    adapter = TwoStageAdapter(MaskRCNNHead(type="MaskRCNN", proposals=100, roi_samples=64, fc_channels=64, mask_convs=2),
                              num_classes=2, in_channels=16, strides=strides, image_size=32, masks=True)
    pyramid = [torch.randn(3, 16, 32 // s, 32 // s, requires_grad=True) for s in strides]
    targets = [{k: (torch.as_tensor(v)) for k, v in _instances([_square(2, 2, 14, 14), _square(16, 10, 30, 28)], [0, 1]).items()} for _ in range(3)]
    optimizer = torch.optim.SGD(adapter.parameters(), lr=0.02)
    losses = []
    for _ in range(8):
        loss = adapter.loss(adapter({"pyramid": pyramid}), targets, torch.tensor([True, True, False]))
        assert torch.isfinite(loss) and loss > 0
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
    assert adapter.roi.mask_head.conv_logits.weight.grad.abs().sum() > 0
    assert float(adapter.loss(adapter({"pyramid": pyramid}), targets, torch.tensor([False, False, False])).detach()) == 0.0
    adapter.eval()
    with torch.no_grad():
        predictions = adapter.predict(adapter({"pyramid": pyramid}))
    for p in predictions:
        assert p["masks"].dtype == torch.bool and p["masks"].shape == (len(p["boxes"]), 32, 32) and len(p["scores"]) == len(p["boxes"])


SPEC = """\
name: instances
seed: 2
data:
  datasets:
    digits: {type: multidigits, canvas: 40, objects: {min: 1, max: 2}, splits: {train: 64, val: 16, test: 16}}
  batch_size: 16
  image_size: 32
tasks:
  inst: {type: instance_segmentation, dataset: digits, head: {type: MaskRCNN, proposals: 50, roi_samples: 32, fc_channels: 32, mask_convs: 1}}
  largest: {type: classification, dataset: digits, label: largest_digit}
model: {backbone: {type: SmallCNN, channels: [8, 16]}, neck: {type: FPN, out_channels: 16}, sharing: {type: hps}}
weighting: {type: mgda}
training: {epochs: 1, device: cpu, optimizer: {type: adamw, lr: 5.0e-3}}
evaluation: {split: test, every_epochs: 1}
report: {formats: [json], plots: false}
"""


def test_an_instance_segmentation_run_trains_evaluates_predicts_and_exports(tmp_path, cli, monkeypatch):
    from pycocotools import mask as mask_utils

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "inst.yaml").write_text(SPEC)
    (result,) = validate_file(tmp_path / "inst.yaml", [])
    assert result.errors == [], result.errors
    run_dir = run_result(result, tmp_path / "runs").run_dir
    report = json.loads((run_dir / "report.json").read_text())["tasks"]["inst"]
    assert set(report["metrics"]) == {"mask_map", "mask_map50", "mask_map75", "box_map"}
    assert all(0 <= v <= 1 for v in report["metrics"].values())
    out = tmp_path / "pred"
    done = cli("predict", str(run_dir), "test", "--out", str(out))
    assert done.exit_code == 0, done.output
    results = json.loads((out / "inst.json").read_text())
    assert results, "no instances predicted"
    for entry in results:  # masks at the original 40 px canvas, inside (or on) their boxes
        mask = mask_utils.decode(entry["segmentation"])
        assert mask.shape == (40, 40) and entry["category_id"] in range(1, 11)
        x, y, w, h = entry["bbox"]
        ys, xs = np.nonzero(mask)
        if len(ys):
            assert xs.min() >= np.floor(x) - 1 and xs.max() <= np.ceil(x + w) + 1 and ys.min() >= np.floor(y) - 1 and ys.max() <= np.ceil(y + h) + 1
    assert any((out / "_overlays").rglob("*.png"))
    exported = cli("export", str(run_dir), "--format", "torchscript")
    assert exported.exit_code == 0, exported.output


def test_validate_names_what_instance_segmentation_cannot_use(tmp_path):
    text = SPEC.replace("weighting: {type: mgda}", "weighting: {type: ew}\nensemble: {strategy: {type: mean}, members: {type: seeds, seeds: [1, 2]}}")
    (tmp_path / "e.yaml").write_text(text)
    (result,) = validate_file(tmp_path / "e.yaml", [])
    assert any(f.code == "incompatible" and "'inst'" in f.message for f in result.errors), result.errors
    text = SPEC.replace("type: multidigits, canvas: 40, objects: {min: 1, max: 2}, splits: {train: 64, val: 16, test: 16}",
                        "type: image_folder, root: imgs").replace("largest: {type: classification, dataset: digits, label: largest_digit}", "")
    (tmp_path / "f.yaml").write_text(text)
    (result,) = validate_file(tmp_path / "f.yaml", [])
    assert any(f.code == "label-not-provided" and "instance_segmentation" in f.message for f in result.errors), result.errors
