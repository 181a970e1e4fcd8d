"""Issue 21: what the reports show beyond the metric table, checked against hand-built cases and
against the libraries that compute the metrics: confusion matrices, per-class AP and the
precision-recall curve (against pycocotools' own summary), the Pareto front, compare's charts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mtlspec.errors import UsageError


def test_confusion_matrix_and_per_class_scores_by_hand():
    from mtlspec.tasks.classification import ClassificationMetric

    metric = ClassificationMetric(3, top_k=1)
    target = torch.tensor([0, 0, 1, 1, 1, 2])
    predicted = torch.tensor([0, 1, 1, 1, 0, 0])
    metric.update(torch.nn.functional.one_hot(predicted, 3).float(), target, torch.ones(6, dtype=torch.bool))
    metric.compute()
    details = metric.details()
    assert details["confusion"] == [[1, 1, 0], [1, 2, 0], [1, 0, 0]]  # rows: true class
    assert details["recall"] == [0.5, pytest.approx(2 / 3), 0.0]
    assert details["precision"] == [pytest.approx(1 / 3), pytest.approx(2 / 3), None]  # class 2 never predicted


def test_segmentation_iou_per_class_by_hand():
    from mtlspec.tasks.segmentation import SegmentationMetric

    metric = SegmentationMetric(2)
    truth = torch.tensor([[[0, 0], [1, 1]]])
    metric.update(torch.tensor([[[0, 1], [1, 1]]]), truth, torch.ones(1, dtype=torch.bool))
    scores, details = metric.compute(), metric.details()
    assert details["confusion"] == [[1, 1], [0, 2]]
    assert details["iou"] == [0.5, pytest.approx(2 / 3)]
    assert scores["miou"] == pytest.approx(sum(details["iou"]) / 2)


def _detections(seed: int, classes: int = 3, images: int = 12):
    """Ground truth boxes and noisy, partly wrong detections of them."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(images):
        n = int(rng.integers(1, 4))
        xy = rng.uniform(0, 40, size=(n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(8, 20, size=(n, 2))], axis=1)
        labels = rng.integers(0, classes, size=n)
        found = boxes + rng.normal(0, 2.0, size=boxes.shape)
        found_labels = np.where(rng.uniform(size=n) < 0.8, labels, (labels + 1) % classes)
        truth = {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels)}
        pred = {"boxes": torch.tensor(found, dtype=torch.float32), "scores": torch.tensor(rng.uniform(0.1, 1.0, size=n), dtype=torch.float32),
                "labels": torch.tensor(found_labels)}
        out.append((pred, truth))
    return out


def test_per_class_ap_and_pr_curve_agree_with_pycocotools_summary():
    """The mean of the per-class APs is COCO's mAP, and the mean of the PR curve at IoU 0.50 over
    its 101 recall points is COCO's mAP50, when every class has ground truth (as pycocotools
    averages them); the curve never rises where precision was interpolated (COCO makes it
    monotone)."""
    from mtlspec.tasks.detection import DetectionMetric

    metric = DetectionMetric(3)
    for pred, truth in _detections(0):
        metric.update([pred], [truth], torch.ones(1, dtype=torch.bool))
    scores = metric.compute()
    details = metric.details()
    assert all(v is not None for v in details["ap"])
    assert np.mean(details["ap"]) == pytest.approx(scores["map"], abs=1e-12)
    assert np.mean(details["ap50"]) == pytest.approx(scores["map50"], abs=1e-12)
    assert np.mean(details["precision50"]) == pytest.approx(scores["map50"], abs=1e-12)
    assert len(details["recall_thresholds"]) == 101 and details["recall_thresholds"][0] == 0.0 and details["recall_thresholds"][-1] == 1.0
    assert all(a >= b - 1e-12 for a, b in zip(details["precision50"], details["precision50"][1:]))


def test_a_class_without_ground_truth_scores_none():
    from mtlspec.tasks.detection import DetectionMetric

    metric = DetectionMetric(4)  # class 3 never occurs
    for pred, truth in _detections(1, classes=3):
        metric.update([pred], [truth], torch.ones(1, dtype=torch.bool))
    metric.compute()
    details = metric.details()
    assert details["ap"][3] is None and details["precision50_per_class"][3] is None and None not in details["ap"][:3]


def test_pareto_front_by_hand():
    from mtlspec.report.compare_figures import pareto_front

    points = [(0.9, 0.1), (0.5, 0.5), (0.4, 0.4), (0.1, 0.9), (0.5, 0.5)]
    assert pareto_front(points, (True, True)) == [0, 1, 3, 4]  # (0.4, 0.4) is beaten by (0.5, 0.5); ties both stay
    assert pareto_front(points, (False, False)) == [0, 2, 3]  # lower is better on both: (0.5, 0.5) is beaten by (0.4, 0.4)
    assert pareto_front([(1.0, 2.0), (2.0, 1.0)], (True, False)) == [1]  # more x and less y


def _run(folder, name, variant, metrics, losses):
    folder.mkdir(parents=True)
    tasks = {t: {"type": "regression", "metrics": m, "higher_is_better": {k: k != "mae" for k in m}, "baseline": {}} for t, m in metrics.items()}
    (folder / "report.json").write_text(json.dumps({"schema_version": 1, "name": name, "variant": variant, "seed": 0, "tasks": tasks}))
    (folder / "manifest.json").write_text(json.dumps({"spec_hash": variant, "status": "finished"}))
    (folder / "spec.resolved.yaml").write_text(f"name: {name}\nweighting: {{type: {variant.split('=')[1]}}}\n")  # runs of different specs
    rows = [{"kind": "step", "epoch": 1, "step": i + 1, "loss": {t: losses * (1 + 1 / (i + 1)) for t in metrics}} for i in range(5)]
    rows.append({"kind": "epoch", "epoch": 1, "step": 5, "val": metrics})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_comparison_charts_pit_two_tasks_and_overlay_every_run(tmp_path):
    from mtlspec.report.compare import load_rows
    from mtlspec.report.compare_figures import comparison_figures
    from mtlspec.report.compare_html import to_html

    runs = [_run(tmp_path / "a", "q", "weighting=ew", {"seg": {"miou": 0.5, "acc": 0.9}, "depth": {"mae": 0.3}}, 1.0),
            _run(tmp_path / "b", "q", "weighting=uw", {"seg": {"miou": 0.6, "acc": 0.8}, "depth": {"mae": 0.4}}, 2.0),
            _run(tmp_path / "c", "q", "weighting=dwa", {"seg": {"miou": 0.4, "acc": 0.7}, "depth": {"mae": 0.5}}, 3.0)]
    rows = load_rows(runs)
    figures = {f.name: f for f in comparison_figures(rows, None)}
    pareto = figures["pareto"].panels[0]
    assert pareto.xlabel.startswith("seg.miou") and pareto.ylabel.startswith("depth.mae")  # each task's primary metric, not one task's two
    front = pareto.series[1]
    assert sorted(zip(front.x, front.y)) == [(0.5, 0.3), (0.6, 0.4)]  # dwa is beaten by ew on both
    curves = figures["training_curves"]
    assert [p.title for p in curves.panels] == ["seg: training loss", "depth: training loss"]
    assert [s.name for s in curves.panels[0].series] == ["q[weighting=ew]", "q[weighting=uw]", "q[weighting=dwa]"]
    assert [s.name for s in figures["validation_curves"].panels[1].series] == ["q[weighting=ew]", "q[weighting=uw]", "q[weighting=dwa]"]
    page = to_html(rows, False, None)
    assert page.count('<div class="chart">') == 3 and "Plotly.newPlot" in page
    with pytest.raises(UsageError, match="no run reports seg.nope; the metrics are: seg.miou, seg.acc, depth.mae"):
        to_html(rows, False, ("seg.nope", "depth.mae"))


def test_detection_per_class_table_has_one_row_per_class_and_only_per_class_columns():
    """The review found COCO's 101 recall thresholds shown as a per-class 'recall' column."""
    from mtlspec.report.run_report import per_class_tables
    from mtlspec.tasks.detection import DetectionMetric

    metric = DetectionMetric(3)
    for pred, truth in _detections(2):
        metric.update([pred], [truth], torch.ones(1, dtype=torch.bool))
    metric.compute()
    details = {**metric.details(), "names": ["cat", "dog", "bird"]}
    ((columns, rows),) = per_class_tables({"tasks": {"boxes": {"details": details}}}).values()
    assert columns == ["ap", "ap50"] and [r[0] for r in rows] == ["cat", "dog", "bird"]
    assert rows[1][1] == f"{details['ap'][1]:.4f}"


def test_no_detection_at_all_scores_zero_for_the_classes_with_ground_truth():
    from mtlspec.tasks.detection import DetectionMetric

    metric = DetectionMetric(4)
    empty = {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)}
    for _, truth in _detections(3, classes=3):
        metric.update([empty], [truth], torch.ones(1, dtype=torch.bool))
    assert metric.compute() == {"map": 0.0, "map50": 0.0, "map75": 0.0}
    details = metric.details()
    assert details["ap"] == [0.0, 0.0, 0.0, None] and details["precision50"] == [0.0] * 101


def test_training_curves_leave_out_the_steps_a_task_was_absent_from():
    """An absent task logs a loss of 0 (no labelled sample): no measurement, so not on the curve."""
    from mtlspec.report.figures import loss_figure

    steps = [{"step": i, "loss": {"a": 1.0, "b": 2.0 if i % 2 else 0.0}, **({} if i % 2 else {"absent": ["b"]})} for i in range(1, 9)]
    train = {s.name: s for s in loss_figure(steps, []).panels[0].series}
    assert train["b (train)"].x == [1, 3, 5, 7] and train["b (train)"].y == [2.0] * 4 and train["a (train)"].x == list(range(1, 9))


def test_large_confusion_matrices_stay_drawable():
    from mtlspec.report.figures import detail_figures

    def confusion(k):
        return {"confusion": [[int(i == j) for j in range(k)] for i in range(k)], "recall": [1.0] * k, "names": [f"c{i}" for i in range(k)]}

    (heat, bars) = detail_figures("t", confusion(100))
    assert heat.panels[0].counts is None and heat.width == heat.height + 1.5  # square, no per-cell text
    assert [f.name for f in detail_figures("t", confusion(400))] == ["t_per_class"]  # too many classes to draw a matrix
