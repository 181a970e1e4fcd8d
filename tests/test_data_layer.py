"""Transforms keep labels consistent; sampling follows its policy; unlabelled samples add nothing to a loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import dataset_of
from mtlspec.data.dataset import MultiTaskDataset, collate
from mtlspec.data.multidigits import MultiDigitsParams, MultiDigitsSource
from mtlspec.data.records import IGNORE_INDEX, DataError
from mtlspec.data.sampling import dataset_probabilities, epoch_order
from mtlspec.data.transforms import hflip, resize_pad
from mtlspec.tasks.base import masked_mean

pytestmark = pytest.mark.stack


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))


def _record():
    image = np.zeros((40, 60, 3), np.uint8)
    mask = np.zeros((40, 60), np.int64)
    mask[10:20, 5:15] = 3
    image[10:20, 5:15] = 200
    depth = np.ones((40, 60), np.float32)
    depth[10:20, 5:15] = 0.5
    return {"image": image, "mask": mask, "depth": depth, "boxes": np.array([[5, 10, 15, 20]], np.float32),
            "box_labels": np.array([2]), "meta": {"dataset": "x", "index": 0, "file": "x"}}


def _box_holds_its_mask(record):
    x1, y1, x2, y2 = np.round(record["boxes"][0]).astype(int)
    inside = record["mask"][y1:y2, x1:x2]
    total = (record["mask"] == 3).sum()
    return total > 0 and (inside == 3).sum() == total


def test_resize_pad_moves_boxes_masks_and_depth_together():
    out = resize_pad(_record(), 30)
    assert out["image"].shape == (30, 30, 3) and out["mask"].shape == (30, 30) and out["depth"].shape == (30, 30)
    assert np.allclose(out["boxes"], [[2.5, 5.0, 7.5, 10.0]])
    assert _box_holds_its_mask(out)
    assert (out["mask"][20:] == IGNORE_INDEX).all() and (out["depth"][20:] == 0).all()  # padding: ignored, unknown
    assert (out["depth"][out["mask"] == 3] == 0.5).all()


def test_hflip_moves_boxes_masks_and_depth_together():
    record = _record()
    flipped = hflip(record)
    assert np.allclose(flipped["boxes"], [[45, 10, 55, 20]])
    assert _box_holds_its_mask(flipped)
    assert (flipped["image"][15, 50] == 200).all() and (flipped["depth"][15, 50] == 0.5)
    twice = hflip(flipped)
    for key in ("image", "mask", "depth", "boxes"):
        assert np.array_equal(twice[key], record[key])


def test_sampling_policies():
    sizes = [900, 100]
    assert np.allclose(dataset_probabilities(sizes, "temperature", 2.0), np.sqrt(sizes) / np.sqrt(sizes).sum())
    for policy, expected in (("proportional", 0.1), ("round_robin", 0.5), ("temperature", 0.25)):
        order = epoch_order(sizes, policy, seed=0, epoch=0)
        assert len(order) == 1000
        share = (order >= 900).mean()
        assert abs(share - expected) < 0.05, (policy, share)
    assert np.array_equal(epoch_order(sizes, "temperature", 1, 2), epoch_order(sizes, "temperature", 1, 2))
    assert not np.array_equal(epoch_order(sizes, "temperature", 1, 2), epoch_order(sizes, "temperature", 1, 3))
    assert sorted(epoch_order(sizes, "proportional", 0, 0)) == list(range(1000))


def test_masked_mean_ignores_unlabelled_samples():
    per_sample = torch.tensor([1.0, 100.0, 3.0])
    assert masked_mean(per_sample, torch.tensor([True, False, True]), torch.ones(3)) == 2.0
    # weight x loss averaged over the labelled count: (3*1 + 1*3) / 2
    assert masked_mean(per_sample, torch.tensor([True, False, True]), torch.tensor([3.0, 1.0, 1.0])) == 3.0
    none = masked_mean(per_sample.requires_grad_(), torch.tensor([False, False, False]), torch.ones(3))
    assert none == 0.0 and none.requires_grad


def test_weighted_losses_of_batches_add_up_to_the_weighted_risk():
    """Weights keep their meaning across batches: equal-size batches average to sum(w l) / N."""
    g = torch.Generator().manual_seed(0)
    losses, weights = torch.rand(12, generator=g), torch.rand(12, generator=g) * 3
    has = torch.ones(12, dtype=torch.bool)
    per_batch = [masked_mean(losses[i:i + 4], has[i:i + 4], weights[i:i + 4]) for i in (0, 4, 8)]
    assert torch.allclose(sum(per_batch) / 3, (losses * weights).mean())


def test_mixed_batch_losses_equal_each_datasets_own():
    """Two datasets with disjoint tasks: the masked loss of a mixed batch equals the loss on each dataset alone."""
    from mtlspec.language.tasks import Classification as ClassificationSection, Segmentation as SegmentationSection
    from mtlspec.tasks.classification import Classification
    from mtlspec.tasks.segmentation import Segmentation

    a = MultiDigitsSource("a", MultiDigitsParams(canvas=32, size=6, max_objects=2, seed=1))
    b = MultiDigitsSource("b", MultiDigitsParams(canvas=32, size=6, max_objects=2, seed=2))
    cls = Classification("cls", 10, ClassificationSection(type="classification", dataset="a", label="largest_digit"))
    seg = Segmentation("seg", 11, SegmentationSection(type="segmentation", dataset="b"))
    both = {"cls": cls, "seg": seg}
    mixed = MultiTaskDataset({"a": a, "b": b}, both, 32)
    batch = collate([mixed[i] for i in (0, 6, 1, 7, 2, 8)], both)
    assert batch["has"]["cls"].tolist() == [True, False] * 3 and batch["has"]["seg"].tolist() == [False, True] * 3
    torch.manual_seed(0)
    cls_logits, seg_logits = torch.randn(6, 10), torch.randn(6, 11, 32, 32)
    mixed_cls = cls.loss(cls_logits, batch["targets"]["cls"], batch["has"]["cls"], batch["weight"]["cls"])
    mixed_seg = seg.loss(seg_logits, batch["targets"]["seg"], batch["has"]["seg"], batch["weight"]["seg"])
    only_a = collate([MultiTaskDataset({"a": a}, {"cls": cls}, 32)[i] for i in (0, 1, 2)], {"cls": cls})
    only_b = collate([MultiTaskDataset({"b": b}, {"seg": seg}, 32)[i] for i in (0, 1, 2)], {"seg": seg})
    alone_cls = cls.loss(cls_logits[0::2], only_a["targets"]["cls"], only_a["has"]["cls"], only_a["weight"]["cls"])
    alone_seg = seg.loss(seg_logits[1::2], only_b["targets"]["seg"], only_b["has"]["seg"], only_b["weight"]["seg"])
    assert torch.allclose(mixed_cls, alone_cls) and torch.allclose(mixed_seg, alone_seg)
    plain = torch.nn.functional.cross_entropy(cls_logits[0::2], only_a["targets"]["cls"])
    assert torch.allclose(alone_cls, plain)


@pytest.mark.parametrize("arrays,message", [
    ({"weight/cls/nowhere": np.ones(16)}, "names no task and dataset"),
    ({"weight/cls/digits": np.ones(5)}, r"has shape \(5,\)"),
    ({"weight/cls/digits": -np.ones(16)}, "negative or non-finite"),
    ({"target/cls/digits": np.ones(16)}, r"one number \(regression\) only"),
])
def test_bad_sample_overrides_name_the_file(arrays, message, tmp_path, monkeypatch):
    from mtlspec.language.root import Spec

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "over.npz"
    np.savez(path, **arrays)
    spec = Spec.model_validate({"name": "o", "data": {"datasets": {"digits": {"type": "multidigits", "canvas": 32, "splits": {"train": 16, "val": 4, "test": 4}}},
                                                     "image_size": 32, "sample_overrides": str(path)},
                                "tasks": {"cls": {"type": "classification", "dataset": "digits", "label": "largest_digit"}}})
    with pytest.raises(DataError, match=message) as caught:
        dataset_of(spec, "train", train=True)
    assert str(path) in str(caught.value)


def test_holdout_then_bootstrap_draw_from_the_kept_folds(tmp_path, monkeypatch):
    from mtlspec.data.build import bootstrap_indices, fold_ids
    from mtlspec.language.root import Spec

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    spec = Spec.model_validate({"name": "h", "data": {"datasets": {"digits": {"type": "multidigits", "canvas": 32, "splits": {"train": 20, "val": 4, "test": 4}}},
                                                     "image_size": 32, "holdout": {"folds": 4, "fold": 1}, "bootstrap": 3},
                                "tasks": {"cls": {"type": "classification", "dataset": "digits", "label": "largest_digit"}}})
    train = dataset_of(spec, "train", train=True)
    kept = np.flatnonzero(fold_ids(20, 4) != 1)
    assert len(train) == 15
    assert [train[i]["meta"]["index"] for i in range(15)] == kept[bootstrap_indices(15, 3)].tolist()
