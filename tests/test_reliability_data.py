"""Findings of the reliability probe (issue 13) on data: no sample both trained on and evaluated, no
silent loss, and every bad file named by `run` in one line (exit 3) before a step is trained."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image


pytestmark = pytest.mark.stack

REST = "training: {epochs: 1, device: cpu}\nreport: {formats: [json], plots: false}\n"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))


def _png(path, value=128, size=24):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


def _coco_files(root, n=20, split_files=("train", "val"), mutate=None):
    """n images with one box each, their annotations in instances_<split>.json (the same file
    content for each named split unless it is 'train', which holds every image)."""
    images = [{"id": i + 1, "file_name": f"img/{i}.png", "width": 24, "height": 24, "attributes": {"night": i % 2}} for i in range(n)]
    for image in images:
        _png(root / image["file_name"], value=10 * (image["id"] % 20))
    annotations = [{"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [2, 2, 10, 10], "area": 100, "iscrowd": 0} for i in range(n)]
    data = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}
    if mutate:
        mutate(data)
    for split in split_files:
        (root / f"instances_{split}.json").write_text(json.dumps(data))
    return data


def _coco_spec(root, annotations="{train: instances_train.json, val: instances_val.json}", tasks=None):
    tasks = tasks or "boxes: {type: detection, dataset: street, head: {type: RetinaHead, feat_channels: 8, stacked_convs: 1}}\n  night: {type: classification, dataset: street, label: night}"
    path = root / "coco.yaml"
    path.write_text(f"name: coco\ndata:\n  datasets:\n    street: {{type: coco, root: ., annotations: {annotations}, attributes: {{night: classification}}}}\n"
                    f"  batch_size: 4\n  image_size: 32\ntasks:\n  {tasks}\n"
                    "model: {backbone: {type: SmallCNN, channels: [8, 16]}, neck: {type: FPN, out_channels: 8}}\n" + REST)
    return path


def _splits(spec_path):
    from mtlspec.data.build import build_source
    from mtlspec.language import validate_file

    (result,) = validate_file(spec_path)
    assert result.errors == [], [d.format() for d in result.errors]
    name = next(iter(result.spec.data.datasets))
    return {split: build_source(result.spec, name, split, spec_path.parent) for split in ("train", "val", "test")}


def _files(source) -> set[str]:
    return {source.record(i)["meta"]["file"] for i in range(len(source))}


class TestSplitsAreDisjoint:
    def test_coco_without_a_test_file_carves_test_out_of_training(self, tmp_path):
        _coco_files(tmp_path, n=40)
        splits = _splits(_coco_spec(tmp_path))
        train, val, test = (_files(splits[s]) for s in ("train", "val", "test"))
        assert len(test) == 4 and len(train) == 36 and not train & test  # before: test was 4 of the 40 images trained on
        assert val == train | test  # this val file holds the same images: the user's own choice, kept as written
        assert "carved out" in splits["train"].origin and "carved out" in splits["test"].origin

    def test_every_dataset_type_gives_disjoint_splits(self, tmp_path):
        # coco with one file for everything
        _coco_files(tmp_path / "coco", n=30, split_files=("train",))
        coco = _splits(_coco_spec(tmp_path / "coco", "{train: instances_train.json}"))
        # a table without a split column, and one with
        for i in range(30):
            _png(tmp_path / "table" / "imgs" / f"{i}.png", value=i)
        rows = "".join(f"{i}.png,{i % 2}\n" for i in range(30))
        (tmp_path / "table" / "t.csv").write_text("image,smiling\n" + rows)
        (tmp_path / "table" / "s.csv").write_text("image,smiling,split\n" + "".join(f"{i}.png,{i % 2},{('train', 'val', 'test')[i % 3]}\n" for i in range(30)))
        tables = []
        for table in ("t.csv", "s.csv"):
            spec = tmp_path / "table" / f"{table}.yaml"
            spec.write_text(f"name: t\ndata: {{datasets: {{faces: {{type: attribute_table, table: {table}, images: imgs}}}}, batch_size: 2}}\n"
                            "tasks: {smile: {type: classification, dataset: faces, label: smiling}}\n")
            tables.append(_splits(spec))
        # image folders: flat, and with a train folder only (val and test carved out of it)
        folders = []
        for layout in ("flat", "train_only"):
            for i in range(30):
                _png(tmp_path / layout / ("train" if layout == "train_only" else "") / ("a", "b")[i % 2] / f"{i}.png", value=i)
            spec = tmp_path / layout / "f.yaml"
            spec.write_text("name: f\ndata: {datasets: {pets: {type: image_folder, root: .}}, batch_size: 2}\n"
                            "tasks: {kind: {type: classification, dataset: pets, label: class}}\n")
            folders.append(_splits(spec))
        for splits in [coco, *tables, *folders]:
            files = {s: _files(src) for s, src in splits.items()}
            assert all(files.values()) and not files["train"] & files["val"] and not files["train"] & files["test"] and not files["val"] & files["test"]
            assert sum(map(len, files.values())) == 30

    def test_multidigits_splits_draw_from_disjoint_scans(self, tmp_path):
        from mtlspec.data.multidigits import MultiDigitsParams, load

        scans = {s: set(load(MultiDigitsParams(canvas=32, split=s, size=200, seed=3))["scan_ids"].tolist()) for s in ("train", "val", "test")}
        assert not scans["train"] & scans["val"] and not scans["train"] & scans["test"] and not scans["val"] & scans["test"]


class TestBadFilesAreNamed:
    """`mtlspec run` on broken data: exit 3, one line naming the file and the entry, no step trained."""

    def _run(self, cli, tmp_path, spec):
        result = cli("run", str(spec), "--out", str(tmp_path / "runs"), "--quiet")
        assert result.exit_code == 3, result.output
        assert "Traceback" not in result.output and not list((tmp_path / "runs").rglob("metrics.jsonl"))
        return result.output

    @pytest.mark.parametrize("mutate, expected", [
        (lambda d: d["annotations"][3].pop("bbox"), ["instances_train.json", "img/3.png", "needs a bbox of four numbers"]),
        (lambda d: d["annotations"][3].update(bbox=[1, 2, 3]), ["instances_train.json", "img/3.png", "[1, 2, 3]"]),
        (lambda d: d["annotations"][3].update(bbox=["1", "2", "3", "4"]), ["instances_train.json", "img/3.png", "four numbers"]),
        (lambda d: d.pop("images"), ["instances_train.json", "has no images"]),
        (lambda d: d.update(annotations=[]), ["instances_train.json", "has no annotations"]),
        (lambda d: d["annotations"][3].update(image_id=999), ["instances_train.json", "annotation 4 names image id 999"]),
    ])
    def test_coco(self, cli, tmp_path, mutate, expected):
        _coco_files(tmp_path, split_files=("train",), mutate=mutate)
        output = self._run(cli, tmp_path, _coco_spec(tmp_path, "{train: instances_train.json}"))
        assert all(part in output for part in expected), output

    @pytest.mark.parametrize("table, expected", [
        (b"image,smiling,age\n0.png\n1.png,1,30\n", ["t.csv", "line 2 has 1 values for the 3 columns", "0.png"]),
        (b"image,smiling,age\n0.png,1,30\n1.png,0\n", ["t.csv", "line 3 has 2 values", "1.png"]),
        ("image,smiling,age\n0.png,1,30\n1.png,0,d\u00e9j\u00e0\n".encode("latin-1"), ["t.csv", "line 3 is not UTF-8"]),
        (b"image,smiling,age\n0.png,nan,30\n1.png,0,31\n", ["t.csv", "line 2", "'smiling' = 'nan' is not a finite number", "0.png"]),
        (b"image,smiling,age\n", ["t.csv", "a header and no rows"]),
        (b"image,smiling,age\n" + b"".join(b"%d.png,%s,30\n" % (i, b"1.5" if i == 7 else b"1") for i in range(10)), ["'smiling' = 1.5 is not a class index", "7.png"]),
    ])
    def test_tables(self, cli, tmp_path, table, expected):
        for i in range(10):
            _png(tmp_path / "imgs" / f"{i}.png", value=i)
        (tmp_path / "t.csv").write_bytes(table)
        spec = tmp_path / "t.yaml"
        spec.write_text("name: t\ndata: {datasets: {faces: {type: attribute_table, table: t.csv, images: imgs}}, batch_size: 1, image_size: 16}\n"
                        "tasks: {smile: {type: classification, dataset: faces, label: smiling}, age: {type: regression, dataset: faces, label: age}}\n"
                        "model: {backbone: {type: SmallCNN, channels: [4]}, neck: {type: none}}\n" + REST)
        output = self._run(cli, tmp_path, spec)
        assert all(part in output for part in expected), output


class TestDeepValidate:
    def test_wrong_image_paths_and_a_truncated_image_are_found(self, cli, tmp_path):
        _coco_files(tmp_path, n=20, split_files=("train",))
        spec = _coco_spec(tmp_path, "{train: instances_train.json}")
        assert cli("validate", "--deep", str(spec)).exit_code == 0
        good = (tmp_path / "img" / "0.png").read_bytes()
        (tmp_path / "img" / "0.png").write_bytes(good[: len(good) // 2])  # truncated
        result = cli("validate", "--deep", "--decode", "all", str(spec))
        assert result.exit_code == 1 and "img/0.png" in result.output and "unreadable image" in result.output, result.output
        (tmp_path / "img" / "0.png").write_bytes(good)
        (tmp_path / "img").rename(tmp_path / "elsewhere")  # every path wrong
        result = cli("validate", "--deep", str(spec))
        assert result.exit_code == 1 and result.output.count("image file is missing") >= 20, result.output


def test_trivial_baselines_see_a_task_whose_samples_come_after_the_first_500(tmp_path):
    """A sparse task (its dataset placed after a large one) used to get 'trivial nan'."""
    from mtlspec.data.formats.folders import ImageFolderSource
    from conftest import run_result
    from mtlspec.language import validate_file

    for i in range(20):
        _png(tmp_path / "pets" / ("a", "b", "b")[i % 3] / f"{i}.png", value=i)
    spec = tmp_path / "sparse.yaml"
    spec.write_text("name: sparse\ndata:\n  datasets:\n    digits: {type: multidigits, canvas: 32, splits: {train: 600, val: 8, test: 8}}\n"
                    "    pets: {type: image_folder, root: pets}\n  batch_size: 16\n  image_size: 32\n"
                    "tasks:\n  largest: {type: classification, dataset: digits, label: largest_digit}\n"
                    "  kind: {type: classification, dataset: pets, label: class}\n"
                    "model: {backbone: {type: SmallCNN, channels: [4]}, neck: {type: none}}\n"
                    "training: {epochs: 1, max_steps_per_epoch: 1, device: cpu}\nreport: {formats: [json], plots: false}\n")
    (result,) = validate_file(spec)
    report = run_result(result, tmp_path / "runs", log=lambda m: None).report
    trivial = report["tasks"]["kind"]["baseline"]["accuracy"]
    test_labels = [label for _, label in ImageFolderSource("p", tmp_path / "pets", "test", 0).items]
    assert trivial == pytest.approx(np.mean(np.array(test_labels) == 1))  # 'b', the majority of the training images
