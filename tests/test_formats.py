"""Each reader on small files written in its exact format, and bad data named by file and sample."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mtlspec.data.formats.coco import CocoSource
from mtlspec.data.formats.folders import DenseFolderSource, ImageFolderSource
from mtlspec.data.formats.tables import AttributeTableSource
from mtlspec.data.records import DataError

pytestmark = pytest.mark.stack


def _png(path, size=(40, 30), value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)


def _coco(tmp_path, annotations=None, categories=None, images=None):
    _png(tmp_path / "img" / "a.png")
    _png(tmp_path / "img" / "b.png")
    data = {
        "images": images or [
            {"id": 1, "file_name": "img/a.png", "width": 40, "height": 30, "attributes": {"night": 1}},
            {"id": 2, "file_name": "img/b.png", "width": 40, "height": 30, "attributes": {"night": 0}},
        ],
        "categories": categories or [{"id": 7, "name": "car"}, {"id": 9, "name": "person"}],
        "annotations": annotations or [
            {"id": 1, "image_id": 1, "category_id": 9, "bbox": [2, 3, 10, 8], "area": 80, "iscrowd": 0,
             "segmentation": [[2, 3, 12, 3, 12, 11, 2, 11]]},
            {"id": 2, "image_id": 1, "category_id": 7, "bbox": [20, 5, 6, 6], "area": 36, "iscrowd": 0,
             "segmentation": {"size": [30, 40], "counts": _rle()}},
        ],
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    return CocoSource("c", tmp_path, {"train": "ann.json", "val": "ann.json", "test": None}, "val", 0, {"night": "classification"})


def _rle():
    from pycocotools import mask as mask_utils

    m = np.zeros((30, 40), np.uint8, order="F")
    m[5:11, 20:26] = 1
    rle = mask_utils.encode(m)
    return rle["counts"].decode()


def test_coco_boxes_polygons_rle_and_attributes(tmp_path):
    source = _coco(tmp_path)
    assert len(source) == 2 and source.box_classes() == 2 and source.mask_classes() == 3
    r = source.record(0)
    assert r["image"].shape == (30, 40, 3)
    assert np.allclose(r["boxes"], [[2, 3, 12, 11], [20, 5, 26, 11]]) and r["box_labels"].tolist() == [1, 0]
    assert (r["mask"][5:11, 20:26] == 1).all()  # the RLE car, category 7 -> class 0 -> mask value 1
    assert (r["mask"][4:10, 3:11] == 2).all()  # the polygon person
    assert r["labels"]["night"] == 1 and r["labels"]["categories"].tolist() == [1.0, 1.0]
    assert source.label_classes("night") == 2
    assert source.record(1)["boxes"].shape == (0, 4)


@pytest.mark.parametrize(
    "annotation,message",
    [
        ({"id": 5, "image_id": 1, "category_id": 3, "bbox": [1, 1, 4, 4], "area": 16, "iscrowd": 0}, "unknown category id 3"),
        ({"id": 5, "image_id": 1, "category_id": 7, "bbox": [1, 1, 0, 4], "area": 0, "iscrowd": 0}, "zero area"),
        ({"id": 5, "image_id": 1, "category_id": 7, "bbox": [35, 1, 20, 4], "area": 80, "iscrowd": 0}, "outside the 40x30 image"),
    ],
)
def test_coco_bad_annotations_name_file_and_sample(tmp_path, annotation, message):
    source = _coco(tmp_path, annotations=[annotation])
    with pytest.raises(DataError, match=message) as info:
        source.record(0)
    assert "ann.json" in str(info.value) and "img/a.png" in str(info.value)


def test_coco_missing_image_is_named(tmp_path):
    source = _coco(tmp_path)
    (tmp_path / "img" / "b.png").unlink()
    with pytest.raises(DataError, match="image file is missing") as info:
        source.record(1)
    assert "b.png" in str(info.value)


def test_unreadable_image_is_named(tmp_path):
    source = _coco(tmp_path)
    (tmp_path / "img" / "a.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="unreadable image"):
        source.record(0)


def test_csv_table_with_split_column(tmp_path):
    for name in ("x.png", "y.png", "z.png"):
        _png(tmp_path / "imgs" / name)
    (tmp_path / "attrs.csv").write_text("image,smiling,age,split\nx.png,1,31.5,train\ny.png,0,40,train\nz.png,1,22,val\n")
    train = AttributeTableSource("t", tmp_path / "attrs.csv", tmp_path / "imgs", "csv", "train", 0, ["smiling"])
    assert len(train) == 2 and train.columns == ["smiling", "age"]
    r = train.record(0)
    assert r["labels"]["smiling"] == 1 and r["labels"]["age"] == 31.5 and r["labels"]["attributes"].tolist() == [1.0, 1.0]
    assert train.label_classes("smiling") == 2 and train.label_classes("attributes") == 2
    assert np.allclose(train.column("age"), [31.5, 40])
    assert len(AttributeTableSource("t", tmp_path / "attrs.csv", tmp_path / "imgs", "csv", "val", 0)) == 1
    with pytest.raises(DataError, match="no column 'smile'"):
        AttributeTableSource("t", tmp_path / "attrs.csv", tmp_path / "imgs", "csv", "train", 0, ["smile"])


def test_celeba_attribute_list(tmp_path):
    names = [f"{i:06d}.jpg" for i in range(1, 11)]
    for name in names:
        _png(tmp_path / "img_align_celeba" / name)
    lines = ["10", "5_o_Clock_Shadow Arched_Eyebrows Smiling"] + [f"{n} {'1' if i % 2 else '-1'} -1  1" for i, n in enumerate(names)]
    (tmp_path / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    train = AttributeTableSource("c", tmp_path / "list_attr_celeba.txt", tmp_path / "img_align_celeba", "celeba", "train", 0)
    assert len(train) == 8 and train.columns == ["5_o_Clock_Shadow", "Arched_Eyebrows", "Smiling"]
    for i in range(len(train)):
        labels = train.labels(i)
        assert labels["Arched_Eyebrows"] == 0 and labels["Smiling"] == 1
        assert labels["attributes"][1:].tolist() == [0.0, 1.0]
    (tmp_path / "bad.txt").write_text("1\nA B\n000001.jpg 1\n")
    with pytest.raises(DataError, match="line 3 has 1 values for 2 attributes"):
        AttributeTableSource("c", tmp_path / "bad.txt", tmp_path, "celeba", "train", 0)


def test_image_folder_with_and_without_split_folders(tmp_path):
    for cls in ("cat", "dog"):
        for i in range(5):
            _png(tmp_path / "flat" / cls / f"{i}.png")
            _png(tmp_path / "split" / "train" / cls / f"{i}.png")
        _png(tmp_path / "split" / "val" / cls / "v.png")
    flat = {s: ImageFolderSource("f", tmp_path / "flat", s, 0) for s in ("train", "val", "test")}
    assert [len(flat[s]) for s in ("train", "val", "test")] == [8, 1, 1]
    files = [p for s in flat.values() for p, _ in s.items]
    assert len(set(files)) == 10
    split = ImageFolderSource("s", tmp_path / "split", "val", 0)
    assert split.classes == ["cat", "dog"] and len(split) == 2
    assert [split.record(i)["labels"]["class"] for i in range(2)] == [0, 1]


def test_dense_folder_reads_masks_and_depth_and_rejects_wrong_sizes(tmp_path):
    root = tmp_path / "nyu" / "train"
    _png(root / "image" / "0001.png")
    (root / "mask").mkdir(parents=True)
    Image.fromarray(np.full((30, 40), 4, np.uint8)).save(root / "mask" / "0001.png")
    (root / "depth").mkdir()
    np.save(root / "depth" / "0001.npy", np.full((30, 40), 2.5, np.float32))
    source = DenseFolderSource("n", tmp_path / "nyu", "train")
    r = source.record(0)
    assert (r["mask"] == 4).all() and (r["depth"] == 2.5).all() and source.mask_classes() == 5
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(root / "mask" / "0001.png")
    with pytest.raises(DataError, match="mask is 10x10, the image is 40x30") as info:
        source.record(0)
    assert "0001" in str(info.value)


def test_validate_deep_names_bad_data_and_unbuildable_heads(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    _coco(tmp_path, annotations=[{"id": 5, "image_id": 2, "category_id": 7, "bbox": [1, 1, 0, 4], "area": 0, "iscrowd": 0}])
    spec = tmp_path / "deep.yaml"
    spec.write_text("""\
name: deep
data:
  datasets:
    street: {type: coco, root: ., annotations: {train: ann.json}}
    digits: {type: multidigits, canvas: 32, objects: {max: 2}, splits: {train: 8, val: 4, test: 4}}
  image_size: 32
tasks:
  cars: {type: detection, dataset: street, head: {type: FCOSHead}}
  boxes:
    type: detection
    dataset: digits
    head: {type: ATSSHead, loss_cls: {type: NoSuchLoss}}
model: {backbone: {type: SmallCNN, channels: [8, 16]}, neck: {type: FPN, out_channels: 32}}
""")
    assert cli("validate", str(spec)).exit_code == 0  # the shallow check sees neither the data nor inside a head's sub-configs
    result = cli("validate", "--deep", str(spec))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if "error[" in line]
    assert any(f"{spec}:4:5: error[bad-data] data.datasets.street:" in line and "zero area" in line and "img/b.png" in line for line in lines), lines
    assert any(f"{spec}:12:5: error[build-error] tasks.boxes.head:" in line and "NoSuchLoss" in line for line in lines), lines


def test_coco_attributes_from_a_side_table(tmp_path):
    _coco(tmp_path)
    (tmp_path / "attrs.csv").write_text("file_name,rainy,speed\nimg/a.png,1,12.5\nimg/b.png,0,3\n")
    source = CocoSource("c", tmp_path, {"train": "ann.json", "val": "ann.json", "test": None}, "val", 0,
                        {"rainy": "classification", "speed": "regression"}, "attrs.csv")
    assert source.record(0)["labels"]["rainy"] == 1 and source.record(0)["labels"]["speed"] == 12.5
    assert source.record(1)["labels"]["rainy"] == 0 and source.label_classes("rainy") == 2
    (tmp_path / "attrs.csv").write_text("file_name,rainy\nimg/a.png,1\n")
    partial = CocoSource("c", tmp_path, {"train": "ann.json"}, "train", 0, {"rainy": "classification"}, "attrs.csv")
    with pytest.raises(DataError, match="image has no attribute 'rainy'") as info:
        [partial.record(i) for i in range(len(partial))]
    assert "img/b.png" in str(info.value)
