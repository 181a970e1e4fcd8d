"""After training (issue 19): model.pt, `mtlspec predict` and `mtlspec export`.

Predictions are checked against what the run itself reported on the same split (the classifier's
accuracy exactly, box mAP from the COCO results file scored by pycocotools against the dataset's
own boxes in original coordinates), the geometry of bringing predictions back to the original
image against hand-computed cases, and exports against eager on a batch size they were not
traced with."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_result
from mtlspec.language import validate_file

pytestmark = pytest.mark.stack

SPEC = """\
name: after
seed: 3
data:
  datasets:
    digits: {{type: multidigits, canvas: 40, objects: {{min: 1, max: 2}}, splits: {{train: 96, val: 16, test: 24}}}}
  batch_size: 16
  image_size: 32
tasks:
  largest: {{type: classification, dataset: digits, label: largest_digit}}
  present: {{type: multilabel, dataset: digits, label: present}}
  count: {{type: regression, dataset: digits, label: count}}
  boxes: {{type: detection, dataset: digits, head: {{type: FCOSHead, stacked_convs: 1, feat_channels: 32}}}}
  seg: {{type: segmentation, dataset: digits}}
  depth: {{type: depth, dataset: digits}}
model: {{backbone: {{type: SmallCNN, channels: [8, 16]}}, neck: {{type: FPN, out_channels: 32}}, sharing: {{type: {sharing}}}}}
training: {{epochs: {epochs}, device: cpu, optimizer: {{type: adamw, lr: 5.0e-3}}, checkpoint: {{every_epochs: 1, keep: 5}}{stopping}}}
evaluation: {{split: test, every_epochs: 1}}
report: {{formats: [json], plots: false}}
"""


def train(root: Path, sharing: str = "hps", epochs: int = 2, stopping: str = "") -> Path:
    path = root / f"{sharing}-{epochs}.yaml"
    path.write_text(SPEC.format(sharing=sharing, epochs=epochs, stopping=stopping))
    (result,) = validate_file(path, [])
    assert result.errors == [], result.errors
    return run_result(result, root / "runs").run_dir


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("after")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MTLSPEC_CACHE", str(root / "cache"))
        patch.chdir(root)
        yield root, train(root)


def predicted(cli, run_dir: Path, out: Path, *inputs: str) -> dict:
    result = cli("predict", str(run_dir), *inputs, "--out", str(out))
    assert result.exit_code == 0, result.output
    return json.loads((out / "_predictions.json").read_text())


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_predictions_on_the_test_split_score_what_the_run_reported(trained, cli):
    root, run_dir = trained
    before = digest(run_dir)
    out = root / "pred-test"
    summary = predicted(cli, run_dir, out, "test")
    assert digest(run_dir) == before  # predicting never changes the run
    report = json.loads((run_dir / "report.json").read_text())["tasks"]
    assert summary["images"] == 24 and summary["model"]["selected"].startswith("the last epoch")

    from mtlspec.data.build import build_sources
    from mtlspec.language.root import Spec
    import yaml

    spec = Spec.model_validate(yaml.safe_load((run_dir / "spec.resolved.yaml").read_text()))
    source = build_sources(spec, "test", root)["digits"]
    records = [source.record(i) for i in range(len(source))]

    rows = list(csv.DictReader((out / "largest.csv").open()))
    truth = [int(r["labels"]["largest_digit"]) for r in records]
    accuracy = np.mean([int(row["class"]) == t for row, t in zip(rows, truth)])
    assert accuracy == pytest.approx(report["largest"]["metrics"]["accuracy"], abs=1e-6)  # the report counts in float32
    assert [row["image"] for row in rows] == [f"digits/{i:06d}" for i in range(24)]

    # box mAP of the results file, in the original 40 px frame, against the dataset's own boxes
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    import contextlib
    import io

    images = json.loads((out / "_images.json").read_text())["images"]
    assert [(im["width"], im["height"]) for im in images] == [(40, 40)] * 24
    annotations = []
    for im, record in zip(images, records):
        for (x1, y1, x2, y2), label in zip(record["boxes"].tolist(), record["box_labels"].tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": im["id"], "category_id": int(label) + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    gt = {"images": [{"id": im["id"], "width": 40, "height": 40} for im in images], "annotations": annotations,
          "categories": [{"id": c + 1} for c in range(10)]}
    detections = json.loads((out / "boxes.json").read_text())
    assert detections and all(0 <= d["bbox"][0] and d["bbox"][0] + d["bbox"][2] <= 40.001 for d in detections)
    with contextlib.redirect_stdout(io.StringIO()):
        truth_api = COCO()
        truth_api.dataset = gt
        truth_api.createIndex()
        evaluation = COCOeval(truth_api, truth_api.loadRes(detections), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    # the same boxes scaled by 40/32 (IoU is scale-free); boxes rounded to 0.01 px in the file
    assert evaluation.stats[0] == pytest.approx(report["boxes"]["metrics"]["map"], abs=2e-3)

    seg = np.asarray(Image.open(out / "seg" / "digits" / "000000.png"))
    depth = np.asarray(Image.open(out / "depth" / "digits" / "000000.png"))
    assert seg.shape == depth.shape == (40, 40) and seg.max() < 11 and depth.dtype == np.uint16
    counts = [float(row["value"]) for row in csv.DictReader((out / "count.csv").open())]
    assert len(counts) == 24 and all(np.isfinite(counts))
    present = list(csv.DictReader((out / "present.csv").open()))
    assert all(0.0 <= float(row["p_3"]) <= 1.0 for row in present)
    assert all(set(row["labels"].split(";")) <= {str(d) for d in range(10)} | {""} for row in present)
    assert (out / "_overlays" / "digits" / "000000.png").is_file()


def test_images_of_any_size_and_mode_come_back_in_their_own_coordinates(trained, cli, tmp_path):
    root, run_dir = trained
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (30, 70, 3), dtype=np.uint8)).save(folder / "wide.png")
    Image.fromarray(rng.integers(0, 255, (90, 20), dtype=np.uint8), "L").save(folder / "sub" / "tall.jpg")
    Image.fromarray(rng.integers(0, 255, (32, 32, 4), dtype=np.uint8), "RGBA").save(folder / "square.png")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "pred"
    summary = predicted(cli, run_dir, out, str(folder))
    sizes = {"wide": (30, 70), "sub/tall": (90, 20), "square": (32, 32)}
    assert summary["images"] == 3
    for key, shape in sizes.items():
        assert np.asarray(Image.open(out / "seg" / f"{key}.png")).shape == shape
        assert np.asarray(Image.open(out / "depth" / f"{key}.png")).shape == shape
        zoom = -(-256 // min(shape))  # small images are drawn enlarged by a whole factor, so their labels stay readable
        assert Image.open(out / "_overlays" / f"{key}.png").size == (2 * shape[1] * zoom, shape[0] * zoom)  # the depth panel beside
    images = {im["key"]: im for im in json.loads((out / "_images.json").read_text())["images"]}
    for det in json.loads((out / "boxes.json").read_text()):
        key = next(k for k, im in images.items() if im["id"] == det["image_id"])
        h, w = sizes[key]
        x, y, bw, bh = det["bbox"]
        assert 0 <= x and 0 <= y and x + bw <= w + 0.01 and y + bh <= h + 0.01
    assert [row["image"] for row in csv.DictReader((out / "largest.csv").open())] == ["square", "sub/tall", "wide"]


def test_restoring_to_the_original_image_undoes_the_letterbox():
    """A 50 x 100 image letterboxed into 32 px sits in the top 16 rows: a box over that region is
    the whole image again, a map's halves stay halves, padding is cropped away."""
    from mtlspec.inference.predict import letterbox, restore
    from mtlspec.tasks.base import Form

    tensor, box = letterbox(np.zeros((50, 100, 3), np.uint8), 32)
    assert tensor.shape == (3, 32, 32) and (box.width, box.height, box.scaled_width, box.scaled_height) == (100, 50, 32, 16)
    boxes = restore(Form.BOXES, {"boxes": torch.tensor([[0.0, 0.0, 32.0, 16.0], [8.0, 4.0, 16.0, 40.0]]),
                                 "scores": torch.tensor([0.9, 0.5]), "labels": torch.tensor([1, 2])}, box)
    np.testing.assert_allclose(boxes["boxes"], [[0, 0, 100, 50], [25, 12.5, 50, 50]], rtol=1e-6)  # the second clipped to the image
    labels = torch.full((32, 32), 7)
    labels[:16, :16], labels[:16, 16:] = 1, 2
    restored = restore(Form.CLASS_MAPS, labels, box)
    assert restored.shape == (50, 100) and (restored[:, :50] == 1).all() and (restored[:, 50:] == 2).all()
    values = torch.zeros(32, 32)
    values[:16] = 3.5
    assert np.allclose(restore(Form.VALUE_MAPS, values, box), 3.5)


def test_model_pt_holds_the_best_epoch_by_the_monitor_weights_only(tmp_path, monkeypatch):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    run_dir = train(tmp_path, epochs=4, stopping=", early_stopping: {monitor: val.largest.accuracy, patience: 10}")
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"kind": "epoch"' in line]
    values = [e["val"]["largest"]["accuracy"] for e in epochs]
    best = int(np.argmax(values)) + 1  # the first of equal values: an epoch must improve to replace it
    state = torch.load(run_dir / "model.pt", weights_only=True)
    assert state["epoch"] == best and "best by val.largest.accuracy" in state["selected"], (values, state["selected"])
    saved = torch.load(run_dir / "checkpoints" / f"epoch-{best:04d}.pt", weights_only=True)["model"]
    assert all(torch.equal(state["model"][k], saved[k]) for k in saved)
    assert state["tasks"]["boxes"]["names"] == [str(d) for d in range(10)]
    assert state["tasks"]["seg"]["names"][0] == "background" and state["tasks"]["seg"]["num_classes"] == 11
    assert "optimizer" not in state and (run_dir / "model.pt").stat().st_size < 0.6 * (run_dir / "checkpoints" / f"epoch-{best:04d}.pt").stat().st_size


def test_a_run_without_model_pt_predicts_from_its_latest_checkpoint(trained, cli, tmp_path):
    import shutil

    root, run_dir = trained
    old = tmp_path / "old-run"
    shutil.copytree(run_dir, old)
    (old / "model.pt").unlink()
    summary = predicted(cli, old, tmp_path / "pred", "val")
    assert "predates model.pt" in summary["model"]["selected"] and summary["images"] == 16
    fresh = predicted(cli, run_dir, tmp_path / "pred-new", "val")
    assert (tmp_path / "pred" / "largest.csv").read_text() == (tmp_path / "pred-new" / "largest.csv").read_text()  # the last epoch both ways
    assert fresh["images"] == 16


def test_predict_refuses_what_it_cannot_use(trained, cli, tmp_path):
    root, run_dir = trained
    result = cli("predict", str(tmp_path), "val")
    assert result.exit_code == 2 and "not a run directory" in result.output
    result = cli("predict", str(run_dir), str(tmp_path / "nowhere"))
    assert result.exit_code == 2 and "no such file or folder" in result.output
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.png").write_bytes(b"\x89PNG not really")
    result = cli("predict", str(run_dir), str(tmp_path / "bad"), "--out", str(tmp_path / "p"))
    assert result.exit_code == 3 and "broken.png" in result.output and "Traceback" not in result.output


def flat_outputs(model, image, tasks):
    from mtlspec.inference.export import flatten

    with torch.no_grad():
        outputs = model(image)
    return [t for task in tasks for _, t in flatten(outputs[task], task)]


@pytest.mark.parametrize("sharing", ["hps", "mtan"])
def test_exports_give_eager_outputs_on_a_batch_size_they_were_not_traced_with(sharing, trained, cli, tmp_path):
    import onnxruntime

    from mtlspec.inference.model_file import load_run

    root, run_dir = trained
    if sharing != "hps":
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(root)
            run_dir = train(root, sharing=sharing, epochs=1)
    loaded = load_run(run_dir)
    image = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    expected = flat_outputs(loaded.model, image, list(loaded.task_types))
    for fmt in ("torchscript", "onnx"):
        target = tmp_path / f"m.{fmt}"
        result = cli("export", str(run_dir), "--format", fmt, "--out", str(target))
        assert result.exit_code == 0, result.output
        info = json.loads(target.with_suffix(target.suffix + ".json").read_text())
        assert info["outputs"][0] == "largest" and len(info["outputs"]) == len(expected)
        if fmt == "torchscript":
            got = torch.jit.load(str(target))(image)
        else:
            session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
            got = [torch.from_numpy(v) for v in session.run(info["outputs"], {"image": image.numpy()})]
        for name, g, e in zip(info["outputs"], got, expected):
            # ONNX Runtime's kernels sum in another order than torch's: float32 rounding, relative to the output's scale
            torch.testing.assert_close(g, e, rtol=0, atol=1e-5 * max(float(e.abs().max()), 1.0), msg=name)


def test_task_names_never_collide_with_predicts_own_files(tmp_path, cli, monkeypatch):
    """Task names are [a-z][a-z0-9_]*: a detection task called `images` and a segmentation task
    called `overlays` keep their files; predict's own start with an underscore."""
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    spec = SPEC.format(sharing="hps", epochs=1, stopping="").replace("  boxes: {", "  images: {").replace("  seg: {", "  overlays: {")
    (tmp_path / "names.yaml").write_text(spec)
    (result,) = validate_file(tmp_path / "names.yaml", [])
    assert result.errors == [], result.errors
    run_dir = run_result(result, tmp_path / "runs").run_dir
    out = tmp_path / "pred"
    predicted(cli, run_dir, out, "val")
    assert isinstance(json.loads((out / "images.json").read_text()), list)  # the detection task's COCO results
    assert np.asarray(Image.open(out / "overlays" / "digits" / "000000.png")).shape == (40, 40)  # the segmentation maps
    assert len(json.loads((out / "_images.json").read_text())["images"]) == 16
    assert Image.open(out / "_overlays" / "digits" / "000000.png").mode == "RGB"


def test_data_paths_are_found_from_any_working_directory(trained, tmp_path, monkeypatch):
    from mtlspec.inference.predict import _data_root

    root, run_dir = trained
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert Path(manifest["spec_file"]).is_absolute()
    monkeypatch.chdir(tmp_path)
    assert _data_root(run_dir) == root.resolve()


def test_resuming_a_run_stopped_after_its_last_epoch_keeps_model_pt_and_the_epoch_count(tmp_path, monkeypatch):
    from conftest import StopAfter
    from mtlspec.train.loop import TrainingError

    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    for stopping, stop_at in (("", 2), (", early_stopping: {monitor: val.largest.accuracy, patience: 1, min_delta: 2.0}", 2)):
        path = tmp_path / f"r{len(stopping)}.yaml"
        path.write_text(SPEC.format(sharing="hps", epochs=2 if not stopping else 6, stopping=stopping))
        (result,) = validate_file(path, [])
        runs = tmp_path / f"runs-{path.stem}"
        with pytest.raises(TrainingError):  # killed after the checkpoint of its final epoch (early stopping: after stopping)
            run_result(result, runs, callbacks=[StopAfter(stop_at)])
        (run_dir,) = (runs / "after").iterdir()
        outcome = run_result(result, runs, resume_dir=run_dir)
        epochs = [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"kind": "epoch"' in line]
        assert epochs == [1, 2], epochs  # nothing trained again
        assert json.loads((outcome.run_dir / "manifest.json").read_text())["epochs_run"] == 2
        state = torch.load(run_dir / "model.pt", weights_only=True)
        assert state["epoch"] == (2 if not stopping else 1), state["selected"]


def test_a_faster_rcnn_run_trains_evaluates_and_predicts(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("MTLSPEC_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    spec = SPEC.format(sharing="hps", epochs=1, stopping="").replace(
        "head: {type: FCOSHead, stacked_convs: 1, feat_channels: 32}", "head: {type: FasterRCNN, proposals: 100, roi_samples: 64, fc_channels: 64}")
    assert "FasterRCNN" in spec
    (tmp_path / "frcnn.yaml").write_text(spec)
    (result,) = validate_file(tmp_path / "frcnn.yaml", [])
    assert result.errors == [], result.errors
    run_dir = run_result(result, tmp_path / "runs").run_dir
    report = json.loads((run_dir / "report.json").read_text())["tasks"]["boxes"]["metrics"]
    assert set(report) == {"map", "map50", "map75"} and all(0 <= v <= 1 for v in report.values())
    out = tmp_path / "pred"
    predicted(cli, run_dir, out, "val")
    detections = json.loads((out / "boxes.json").read_text())
    assert all(d["category_id"] in range(1, 11) and len(d["bbox"]) == 4 for d in detections)


def test_depth_panel_runs_from_the_smallest_to_the_largest_value():
    from matplotlib import colormaps

    from mtlspec.inference.overlay import value_panel

    values = np.tile(np.linspace(2.0, 5.0, 40, dtype=np.float32), (20, 1))
    pixels = np.asarray(value_panel("depth", values, zoom=2))
    assert pixels.shape == (40, 80, 3)
    ends = (np.array(colormaps["viridis"](0.0)[:3]) * 255).astype(np.uint8), (np.array(colormaps["viridis"](1.0)[:3]) * 255).astype(np.uint8)
    assert (pixels[-1, 0] == ends[0]).all() and (pixels[-1, -1] == ends[1]).all()  # bottom row: below the range text
