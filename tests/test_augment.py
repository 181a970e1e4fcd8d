"""Training-time augmentation (issue 19): every label follows the image, draws are a function of
(seed, epoch, sample), and evaluation never sees them."""

from __future__ import annotations

import numpy as np
import pytest

from mtlspec.data.augment import augment, photometric, randaugment, resized_crop
from mtlspec.language.data import Augment, Photometric, RandAugment, ResizedCrop

pytestmark = pytest.mark.stack


def coordinate_record(height: int = 60, width: int = 90) -> dict:
    """An image whose pixels say where they are (red = x, green = y), a mask of object ids, a depth
    map that encodes the position too, and one box per object."""
    ys, xs = np.mgrid[0:height, 0:width]
    image = np.stack([xs, ys, np.zeros_like(xs)], axis=-1).astype(np.uint8)
    boxes = np.array([[5, 5, 25, 20], [40, 10, 88, 58], [0, 40, 12, 60], [60, 0, 70, 6]], np.float32)
    mask = np.zeros((height, width), np.int64)
    for k, (x1, y1, x2, y2) in enumerate(boxes.astype(int), start=1):
        mask[y1:y2, x1:x2] = k
    depth = (xs + 1000 * ys).astype(np.float32)
    return {"image": image, "mask": mask, "depth": depth, "boxes": boxes, "box_labels": np.arange(4, dtype=np.int64),
            "labels": {"count": 4}, "meta": {"dataset": "d", "index": 0, "file": "x"}}


@pytest.mark.parametrize("seed", range(40))
def test_a_crop_moves_every_label_with_the_image(seed):
    record = coordinate_record()
    spec = ResizedCrop(p=1.0, scale=[0.2, 0.9], ratio=[0.5, 2.0], min_visible=0.3)
    out = resized_crop(record, spec, np.random.default_rng(seed))
    x0, y0 = int(out["image"][0, 0, 0]), int(out["image"][0, 0, 1])  # where the crop starts, read from its pixels
    ch, cw = out["image"].shape[:2]
    np.testing.assert_array_equal(out["image"], record["image"][y0 : y0 + ch, x0 : x0 + cw])
    np.testing.assert_array_equal(out["mask"], record["mask"][y0 : y0 + ch, x0 : x0 + cw])
    np.testing.assert_array_equal(out["depth"], record["depth"][y0 : y0 + ch, x0 : x0 + cw])
    assert out["labels"] == record["labels"] and out["meta"] == record["meta"]
    for box, label in zip(record["boxes"], record["box_labels"]):
        x1, y1, x2, y2 = box
        visible = max(0.0, min(x2, x0 + cw) - max(x1, x0)) * max(0.0, min(y2, y0 + ch) - max(y1, y0))
        kept = np.flatnonzero(out["box_labels"] == label)
        if visible >= 0.3 * (x2 - x1) * (y2 - y1) and visible > 0:
            (k,) = kept
            np.testing.assert_allclose(out["boxes"][k], [max(x1, x0) - x0, max(y1, y0) - y0, min(x2, x0 + cw) - x0, min(y2, y0 + ch) - y0])
            bx1, by1, bx2, by2 = out["boxes"][k].astype(int)
            assert (out["mask"][by1:by2, bx1:bx2] == label + 1).all()  # the box still holds its object, and only it
        else:
            assert len(kept) == 0


def test_on_real_samples_every_kept_box_holds_its_digit():
    from mtlspec.language.root import Spec
    from mtlspec.data.build import build_sources

    spec = Spec.model_validate({"name": "a", "data": {"datasets": {"d": {"type": "multidigits", "canvas": 64, "splits": {"train": 40, "val": 1, "test": 1}}}},
                                "tasks": {"t": {"type": "segmentation", "dataset": "d"}}})
    source = build_sources(spec, "train")["d"]
    crop = ResizedCrop(p=1.0, scale=[0.3, 0.8], min_visible=0.5)
    for index in range(len(source)):
        out = resized_crop(source.record(index), crop, np.random.default_rng(index))
        for (x1, y1, x2, y2), label in zip(out["boxes"].astype(int), out["box_labels"]):
            assert (out["mask"][y1:y2, x1:x2] == label + 1).any()


def test_photometric_operations_touch_the_image_only():
    record = coordinate_record()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    record["image"] = image
    out = augment(record, Augment(photometric=Photometric(p=1.0, brightness=0.5, contrast=0.5, saturation=0.5, hue=0.1),
                                  randaugment=RandAugment(n=3, magnitude=9)), np.random.default_rng(1))
    assert out["image"].dtype == np.uint8 and out["image"].shape == image.shape and not np.array_equal(out["image"], image)
    for key in ("mask", "depth", "boxes", "box_labels"):
        np.testing.assert_array_equal(out[key], record[key])
    np.testing.assert_array_equal(record["image"], image)  # the source's record is not changed in place
    from PIL import Image as PILImage

    from mtlspec.data.augment import RANDAUGMENT

    narrow = rng.integers(60, 140, (30, 40, 3), dtype=np.uint8)  # a range auto-contrast and equalize stretch
    picture = PILImage.fromarray(narrow)
    for name, operation in RANDAUGMENT.items():  # magnitude 0 leaves the image as it is, but for the two without a magnitude
        unchanged = np.array_equal(np.asarray(operation(picture, 0.0, 1.0)), narrow)
        assert unchanged == (name not in ("autocontrast", "equalize")), name
    assert np.array_equal(photometric(image, Photometric(brightness=0, contrast=0, saturation=0, hue=0), np.random.default_rng(0)), image)


def test_training_samples_are_augmented_by_seed_epoch_and_index_and_evaluation_never(tmp_path, monkeypatch):
    from mtlspec.build import build
    from mtlspec.language.root import Spec

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    dataset = {"type": "multidigits", "canvas": 48, "splits": {"train": 8, "val": 4, "test": 4},
               "augment": {"crop": {"p": 1.0}, "photometric": {"p": 1.0}, "randaugment": {"n": 2}}}
    spec = Spec.model_validate({"name": "a", "data": {"datasets": {"d": dataset}, "image_size": 32},
                                "tasks": {"s": {"type": "segmentation", "dataset": "d"}, "n": {"type": "regression", "dataset": "d", "label": "count"}}})
    plain = Spec.model_validate({**spec.model_dump(), "data": {**spec.model_dump()["data"], "datasets": {"d": {**dataset, "augment": None}}}})
    first, second = build(spec).dataset("train", train=True), build(spec).dataset("train", train=True)
    first.set_epoch(3), second.set_epoch(3)
    assert all(np.array_equal(first[i]["image"], second[i]["image"]) for i in range(8))
    second.set_epoch(4)
    assert not all(np.array_equal(first[i]["image"], second[i]["image"]) for i in range(8))
    untouched = build(plain).dataset("train", train=True)
    assert not all(np.array_equal(first[i]["image"], untouched[i]["image"]) for i in range(8))
    val, val_plain = build(spec).dataset("val"), build(plain).dataset("val")
    assert all(np.array_equal(val[i]["image"], val_plain[i]["image"]) and np.array_equal(val[i]["targets"]["s"], val_plain[i]["targets"]["s"])
               for i in range(4))


def test_a_run_with_every_transform_trains_and_reproduces(tmp_path, monkeypatch):
    import json

    from conftest import run_result
    from mtlspec.language import validate_file

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "a.yaml"
    path.write_text("""\
name: aug
data:
  datasets:
    digits: {type: multidigits, canvas: 40, splits: {train: 32, val: 8, test: 8},
             augment: {crop: {p: 0.8, scale: [0.5, 1.0]}, photometric: {p: 0.8}, randaugment: {n: 2, magnitude: 5}}}
  batch_size: 8
  image_size: 32
  hflip: 0.5
tasks:
  boxes: {type: detection, dataset: digits, head: {type: FCOSHead, stacked_convs: 1, feat_channels: 32}}
  seg: {type: segmentation, dataset: digits}
model: {backbone: {type: SmallCNN, channels: [8, 16]}, neck: {type: FPN, out_channels: 32}}
training: {epochs: 2, device: cpu}
report: {formats: [json], plots: false}
""")
    (result,) = validate_file(path, [])
    assert result.errors == [], result.errors
    runs = [run_result(result, tmp_path / f"runs{i}").run_dir for i in range(2)]
    metrics = [json.loads((r / "report.json").read_text())["tasks"] for r in runs]
    assert metrics[0] == metrics[1]  # the same draws on a second run: the same bits
