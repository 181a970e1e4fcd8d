"""Fuzzing `run`: specs that validate, drawn from every part of the language and from the edges of
its ranges, each trained for two steps on a tiny split. None may end in a traceback or an
internal error: a spec that validates runs, or `run` names the spec line (exit 1) or the run's
failure (exit 3) in one line.

MTLSPEC_FUZZ_RUNS sets the number of specs tried (default 40, about half a second each); the
reliability probe of issue 13 ran it with 400.
"""

from __future__ import annotations

import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.stack

BASE = {
    "name": "fuzz",
    "seed": 0,
    "data": {
        "datasets": {"digits": {"type": "multidigits", "canvas": 32, "objects": {"min": 1, "max": 2}, "splits": {"train": 16, "val": 8, "test": 8}}},
        "batch_size": 8,
        "image_size": 32,
    },
    "tasks": {
        "largest": {"type": "classification", "dataset": "digits", "label": "largest_digit"},
        "present": {"type": "multilabel", "dataset": "digits", "label": "present"},
        "count": {"type": "regression", "dataset": "digits", "label": "count"},
        "boxes": {"type": "detection", "dataset": "digits", "head": {"type": "FCOSHead", "stacked_convs": 1, "feat_channels": 8,
                                                                      "norm_cfg": {"type": "GN", "num_groups": 4, "requires_grad": True}}},
        "seg": {"type": "segmentation", "dataset": "digits"},
        "depth": {"type": "depth", "dataset": "digits"},
    },
    "model": {"backbone": {"type": "SmallCNN", "channels": [8, 16]}, "neck": {"type": "FPN", "out_channels": 8}},
    "training": {"epochs": 1, "max_steps_per_epoch": 2, "device": "cpu"},
    "report": {"formats": ["json"], "plots": False},
}

WEIGHTING = ["static", "ew", "uw", "gradnorm", "dwa", "rlw", "gls", "mgda", "pcgrad", "graddrop", "gradvac", "imtl", "cagrad",
             "nash_mtl", "aligned_mtl", "db_mtl", "famo", "fairgrad", "upgrad"]
SHARING = ["separate", "hps", "cross_stitch", "mtan", "mmoe", "cgc", "ple", "soft"]
MONITORS = ["val.loss", "val.largest.accuracy", "val.count.mae", "val.boxes.map", "val.seg.miou", "val.depth.delta1", "val.present.f1"]

# (dotted path, values): every part of the language the tiny spec can take, and values at the edges of each range
MUTATIONS = [
    ("weighting", st.sampled_from(WEIGHTING).map(lambda t: {"type": t})),
    ("weighting", st.sampled_from(["mgda", "pcgrad", "cagrad", "upgrad", "imtl", "nash_mtl"]).map(lambda t: {"type": t, "space": "representation"})),
    ("model.sharing", st.sampled_from(SHARING).map(lambda t: {"type": t})),
    ("model.sharing", st.integers(0, 2).map(lambda b: {"type": "hps", "branch_at": b})),
    ("model.backbone", st.lists(st.integers(1, 12), min_size=1, max_size=3).map(lambda c: {"type": "SmallCNN", "channels": c})),
    ("model.neck", st.one_of(st.just({"type": "none"}), st.sampled_from([4, 8, 16]).map(lambda c: {"type": "FPN", "out_channels": c}))),
    ("tasks.boxes.head", st.sampled_from(["FCOSHead", "RetinaHead", "ATSSHead", "GFLHead"]).map(
        lambda h: {"type": h, "stacked_convs": 1, "feat_channels": 8, "norm_cfg": {"type": "GN", "num_groups": 4, "requires_grad": True}})),
    ("tasks.boxes.head.stacked_convs", st.integers(0, 2)),
    ("training.optimizer", st.sampled_from(["sgd", "adam", "adamw"]).flatmap(
        lambda t: st.sampled_from([1e-6, 1e-3, 0.1, 1.0]).map(lambda lr: {"type": t, "lr": lr}))),
    ("training.scheduler", st.sampled_from([{"type": "constant", "warmup_steps": 5}, {"type": "cosine", "min_lr_ratio": 0.5},
                                            {"type": "step", "step_epochs": 1}, {"type": "cyclic", "cycles": 2}])),
    ("training.grad_clip", st.sampled_from([None, 1e-6, 1.0])),
    ("training.precision", st.sampled_from(["fp32", "bf16", "auto"])),
    ("training.epochs", st.integers(1, 2)),
    ("training.max_steps_per_epoch", st.sampled_from([None, 1, 5])),
    ("training.early_stopping", st.sampled_from(MONITORS).map(lambda m: {"monitor": m, "patience": 1})),
    ("training.checkpoint", st.sampled_from([{"every_epochs": 2, "keep": 1}, {"every_epochs": 1, "keep": 5}])),
    ("data.batch_size", st.sampled_from([1, 2, 3, 7, 16])),
    ("data.image_size", st.sampled_from([16, 24, 40])),
    ("data.datasets.digits.canvas", st.sampled_from([16, 24, 48])),
    ("data.datasets.digits.objects", st.sampled_from([{"min": 1, "max": 1}, {"min": 4, "max": 4}, {"min": 1, "max": 4}])),
    ("data.datasets.digits.splits", st.sampled_from([{"train": 8, "val": 1, "test": 1}, {"train": 24, "val": 3, "test": 5}])),
    ("data.sampling", st.sampled_from([{"type": "round_robin"}, {"type": "temperature", "t": 0.01}, {"type": "temperature", "t": 1000}])),
    ("data.sample_weights", st.sampled_from([{"type": "inverse_dataset_size"}, {"type": "inverse_frequency", "task": "largest"},
                                             {"type": "effective_number", "task": "present", "beta": 0.0}])),
    ("data.hflip", st.sampled_from([0.0, 0.5, 1.0])),
    ("data.holdout", st.sampled_from([{"folds": 2, "fold": 1}, {"folds": 5, "fold": 0}])),
    ("data.bootstrap", st.integers(0, 3)),
    ("data.seed", st.sampled_from([0, 2**32 - 1])),
    ("seed", st.sampled_from([1, 2**32 - 1])),
    ("evaluation", st.sampled_from([{"split": "val"}, {"split": "test", "every_epochs": 2}])),
    ("tasks.largest", st.sampled_from([{"type": "classification", "dataset": "digits", "label": "num_digits", "metrics": ["accuracy", "top_k"], "top_k": 1},
                                       {"type": "classification", "dataset": "digits", "label": "smallest_digit", "num_classes": 10}])),
    ("tasks.count", st.sampled_from(["l1", "l2", "smooth_l1"]).map(lambda loss: {"type": "regression", "dataset": "digits", "label": "digit_sum", "loss": loss})),
    ("tasks.depth.loss", st.sampled_from(["l1", "l2", "scale_invariant"])),
    ("tasks.present.threshold", st.sampled_from([0.01, 0.99])),
    # what the reliability probe found validating and then crashing run
    ("training.early_stopping", st.sampled_from(["val.seg.accuracy", "val.largest.miou", "val.largest.top_k"]).map(lambda m: {"monitor": m})),
    ("tasks.boxes.head", st.sampled_from([{"type": "FCOSHead", "bogus_arg": 1}, {"type": "FCOSHead", "feat_channels": 20},
                                          {"type": "ATSSHead", "loss_cls": {"type": "NoSuchLoss"}}])),
    ("data.datasets.digits.seed", st.sampled_from([-1, 0])),
    ("data.datasets.digits.objects", st.just({"min": 9, "max": 9})),
    ("data.sampling", st.just({"type": "temperature", "t": 1e-300})),
    ("data.batch_size", st.just(4096)),
    ("evaluation", st.just({"baseline": {"type": "run", "path": "no/such/run"}})),
]


def _put(data: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        data = data.setdefault(key, {})
    data[last] = value


@st.composite
def runnable_specs(draw):
    import copy

    data = copy.deepcopy(BASE)
    for path, values in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=4, unique_by=lambda m: m[0])):
        _put(data, path, draw(values))
    return data


@settings(max_examples=int(os.environ.get("MTLSPEC_FUZZ_RUNS", 40)), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(spec=runnable_specs())
def test_a_spec_that_validates_never_crashes_run(spec, cli, tmp_path_factory, monkeypatch):
    from hypothesis import assume

    from mtlspec.language import validate_file

    folder = tmp_path_factory.mktemp("fuzz")
    monkeypatch.setenv("MTLSPEC_CACHE", str(folder / "cache"))
    path = folder / "fuzz.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assume(all(r.ok() for r in validate_file(path)))
    result = cli("run", str(path), "--out", str(folder / "runs"), "--quiet")
    output = result.output
    assert "Traceback" not in output and "internal error" not in output, output
    assert result.exit_code in (0, 1, 3), (result.exit_code, output, result.exception)
    if result.exit_code == 1:  # refused before training: what MMDetection cannot build, a file a run needs, at the spec's line
        assert any(code in output for code in ("error[build-error]", "error[missing-file]")), output
    if result.exit_code == 3:
        assert "diverged" in output or "is nan" in output or "is inf" in output, output
