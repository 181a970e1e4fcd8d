"""A table of broken specs: each must report exactly the expected code, dotted path and line:col."""

from __future__ import annotations

import pytest

from mtlspec.language import validate_file

BASE = """\
name: t
data:
  datasets:
    digits: {type: multidigits}
  batch_size: 8
tasks:
  cls: {type: classification, dataset: digits, label: largest_digit}
  seg: {type: segmentation, dataset: digits}
"""


def spec(*extra: str, replace: tuple[str, str] | None = None, drop: str | None = None) -> str:
    text = BASE
    if replace:
        assert replace[0] in text
        text = text.replace(replace[0], replace[1])
    if drop:
        text = "".join(line for line in text.splitlines(keepends=True) if not line.startswith(drop))
    return text + "".join(line + "\n" for line in extra)


# (id, spec text, [(code, path, line, where), ...]): the exact errors, nothing more, nothing less.
# `where` is the column, or a snippet of that line with '^' before the character meant: the
# column is then found by searching the text, independently of the YAML parser.
CASES = [
    ("zero-shot-table-missing", spec(replace=("  seg: {type: segmentation, dataset: digits}\n",
                                              "  zs: {type: zero_shot, dataset: digits, label: largest_digit, attributes: nowhere.csv, unseen: [3]}\n")),
     [("bad-table", "tasks.zs.attributes", 8, "^nowhere")]),
    ("zero-shot-unseen-undescribed", spec(replace=("  seg: {type: segmentation, dataset: digits}\n",
                                                   "  zs: {type: zero_shot, dataset: digits, label: largest_digit, attributes: multidigits, unseen: [3, 12]}\n")),
     [("undescribed-class", "tasks.zs.unseen.1", 8, "^12"), ("invalid", "tasks.zs.unseen.1", 8, "^12")]),
    ("zero-shot-label-without-classes", spec(replace=("  seg: {type: segmentation, dataset: digits}\n",
                                                      "  zs: {type: zero_shot, dataset: digits, label: num_digits, attributes: multidigits, unseen: [1]}\n")),
     [("label-not-provided", "tasks.zs.label", 8, "^num_digits")]),
    ("unknown-top-level-key", spec("seeds: 1"), [("unknown-key", "seeds", 9, 1)]),
    ("unknown-task-key", spec(replace=("dataset: digits}", "dataset: digits, lossweight: 2}")), [("unknown-key", "tasks.seg.lossweight", 8, "^lossweight")]),
    ("missing-name", spec(drop="name:"), [("missing-key", "name", 1, 1)]),
    ("missing-data", spec(replace=("data:\n  datasets:\n    digits: {type: multidigits}\n  batch_size: 8\n", "")), [("missing-key", "data", 1, 1)]),
    ("missing-task-dataset", spec(replace=("segmentation, dataset: digits}", "segmentation}")), [("missing-key", "tasks.seg.dataset", 8, 3)]),
    ("unknown-task-type", spec(replace=("type: segmentation", "type: segmentaton")), [("unknown-type", "tasks.seg.type", 8, 15)]),
    ("missing-task-type", spec(replace=("{type: segmentation, ", "{")), [("missing-key", "tasks.seg.type", 8, 3)]),
    ("seed-not-an-int", spec("seed: abc"), [("wrong-type", "seed", 9, 7)]),
    ("seed-negative", spec("seed: -1"), [("out-of-range", "seed", 9, 7)]),
    ("batch-size-zero", spec(replace=("batch_size: 8", "batch_size: 0")), [("out-of-range", "data.batch_size", 5, 15)]),
    ("version-2", spec("version: 2"), [("invalid-value", "version", 9, 10)]),
    ("bad-spec-name", spec(replace=("name: t", "name: 'bad name!'")), [("invalid-name", "name", 1, 7)]),
    ("bad-task-name", spec(replace=("  seg:", "  Seg:")), [("invalid-name", "tasks.Seg", 8, 3)]),
    ("duplicate-task", spec(replace=("  seg:", "  cls: {type: depth, dataset: digits}\n  seg:")), [("duplicate-key", "tasks.cls", 8, 3)]),
    ("tab-indent", spec(replace=("  batch_size", "\tbatch_size")), [("yaml-syntax", "", 5, 1)]),
    ("unknown-dataset", spec(replace=("segmentation, dataset: digits", "segmentation, dataset: digit")), [("unknown-dataset", "tasks.seg.dataset", 8, "dataset: ^digit")]),
    ("label-not-provided", spec(replace=("label: largest_digit", "label: largest")), [("label-not-provided", "tasks.cls.label", 7, 55)]),
    ("task-type-not-provided", spec("  d: {type: depth, dataset: imgs}", replace=("    digits: {type: multidigits}", "    digits: {type: multidigits}\n    imgs: {type: image_folder, root: x}")), [("label-not-provided", "tasks.d.type", 10, 13)]),
    ("metric-not-for-task", spec(replace=("dataset: digits}", "dataset: digits, metrics: [miou, accuracy]}")), [("invalid-value", "tasks.seg.metrics.1", 8, "^accuracy")]),
    ("unknown-weighting", spec("weighting: {type: pcgard}"), [("unknown-type", "weighting.type", 9, 19)]),
    ("cagrad-c-out-of-range", spec("weighting: {type: cagrad, c: 1.5}"), [("out-of-range", "weighting.c", 9, 30)]),
    ("gradient-method-without-shared-params", spec("weighting: {type: pcgrad}", "model: {sharing: {type: separate}}"), [("incompatible", "weighting.type", 9, 19)]),
    ("rep-space-without-single-rep", spec("weighting: {type: mgda, space: representation}", "model: {sharing: {type: mtan}}"), [("incompatible", "weighting.space", 9, 32)]),
    ("space-on-loss-method", spec("weighting: {type: uw, space: params}"), [("unknown-key", "weighting.space", 9, 23)]),
    ("static-weights-unknown-task", spec("weighting: {type: static, weights: {sgm: 2}}"), [("unknown-task", "weighting.weights.sgm", 9, 37)]),
    ("unknown-sharing", spec("model: {sharing: {type: hardshare}}"), [("unknown-type", "model.sharing.type", 9, 25)]),
    ("branch-at-too-deep", spec("model: {backbone: {type: SmallCNN, channels: [8, 16]}, sharing: {type: hps, branch_at: 3}}"), [("out-of-range", "model.sharing.branch_at", 9, 88)]),
    ("resnet-depth", spec("model: {backbone: {type: ResNet, depth: 20}}"), [("invalid-value", "model.backbone.depth", 9, 41)]),
    ("head-computed-field", spec("  boxes: {type: detection, dataset: digits, head: {type: FCOSHead, num_classes: 10}}"), [("computed-field", "tasks.boxes.head.num_classes", 9, 68)]),
    ("unknown-head", spec("  boxes: {type: detection, dataset: digits, head: {type: FCOS}}"), [("unknown-type", "tasks.boxes.head.type", 9, "^FCOS")]),
    ("lr-zero", spec("training: {optimizer: {type: sgd, lr: 0}}"), [("out-of-range", "training.optimizer.lr", 9, 39)]),
    ("fp16-on-cpu", spec("training: {device: cpu, precision: fp16}"), [("incompatible", "training.precision", 9, 36)]),
    ("monitor-unknown-task", spec("training: {early_stopping: {monitor: val.sge.miou}}"), [("unknown-task", "training.early_stopping.monitor", 9, 38)]),
    ("monitor-delta-m-without-baseline", spec("training: {early_stopping: {monitor: val.delta_m}}"), [("incompatible", "training.early_stopping.monitor", 9, 38)]),
    ("box-fusion-on-classification", spec("ensemble: {members: {type: seeds, seeds: [0, 1]}, per_task: {cls: {type: box_fusion}}}"), [("incompatible", "ensemble.per_task.cls.type", 9, "^box_fusion")]),
    ("mean-over-detection", spec("  boxes: {type: detection, dataset: digits, head: {type: FCOSHead}}", "ensemble: {members: {type: seeds, seeds: [0, 1]}}"), [("incompatible", "ensemble.strategy.type", 10, 1)]),
    ("vote-without-members", spec("ensemble: {strategy: {type: mean}}"), [("missing-key", "ensemble.members", 9, 1)]),
    ("bagging-with-members", spec("ensemble: {members: {type: seeds, seeds: [0, 1]}, strategy: {type: bagging}}"), [("incompatible", "ensemble.members", 9, 12)]),
    ("snapshot-without-cyclic-lr", spec("ensemble: {strategy: {type: snapshot}}"), [("incompatible", "ensemble.strategy.type", 9, 29)]),
    ("per-task-unknown-task", spec("ensemble: {members: {type: seeds, seeds: [0, 1]}, per_task: {clss: {type: vote}}}"), [("unknown-task", "ensemble.per_task.clss", 9, "^clss")]),
    ("boosting-with-nothing-to-boost", spec("ensemble: {strategy: {type: boosting}, per_task: {cls: {type: vote}}}"), [("incompatible", "ensemble.strategy.type", 9, "^boosting")]),
    ("stacking-bagging-members", spec("ensemble: {strategy: {type: bagging}, per_task: {cls: {type: stacking}}}"), [("incompatible", "ensemble.per_task.cls.type", 9, "^stacking}")]),
    ("stacking-on-segmentation", spec("ensemble: {members: {type: seeds, seeds: [0, 1]}, strategy: {type: stacking}}"), [("incompatible", "ensemble.strategy.type", 9, "^stacking")]),
    ("holdout-fold-out-of-range", spec(replace=("  batch_size: 8\n", "  batch_size: 8\n  holdout: {folds: 3, fold: 3}\n")), [("out-of-range", "data.holdout.fold", 6, "^3}")]),
    ("spec-member-missing", spec("ensemble: {members: {type: specs, paths: [nowhere.yaml, spec.yaml]}}"), [("missing-file", "ensemble.members.paths.0", 9, "^nowhere"), ("extends-cycle", "ensemble.members.paths.1", 9, "^spec.yaml")]),
    ("weights-per-member", spec("ensemble: {members: {type: seeds, seeds: [0, 1]}, strategy: {type: weighted_mean, weights: [1, 2, 3]}}"), [("incompatible", "ensemble.strategy.weights", 9, "^[1, 2, 3]")]),
    ("matrix-unknown-path", spec("matrix: {weighting.tpye: [ew, uw]}"), [("unknown-path", "matrix.weighting.tpye", 9, 10)]),
    ("matrix-bad-value", spec("matrix: {weighting.type: [ew, nope]}"), [("unknown-type", "weighting.type", 9, 31)]),
    ("class-weights-on-segmentation", spec(replace=("  batch_size: 8", "  batch_size: 8\n  sample_weights: {type: inverse_frequency, task: seg}")), [("incompatible", "data.sample_weights.task", 6, 51)]),
    ("objects-min-over-max", spec(replace=("{type: multidigits}", "{type: multidigits, objects: {min: 4, max: 2}}")), [("out-of-range", "data.datasets.digits.objects.min", 4, "min: ^4")]),
    ("tasks-not-a-mapping", spec(replace=("tasks:\n  cls: {type: classification, dataset: digits, label: largest_digit}\n  seg: {type: segmentation, dataset: digits}\n", "tasks: [cls, seg]\n")), [("wrong-type", "tasks", 6, 8)]),
    ("num-classes-mismatch", spec(replace=("label: largest_digit}", "label: largest_digit, num_classes: 5}")), [("incompatible", "tasks.cls.num_classes", 7, 83)]),
    ("several-at-once", spec("seed: x", "weighting: {type: nope}", replace=("dataset: digits}", "dataset: digits, lossweight: 2}")),
     [("unknown-key", "tasks.seg.lossweight", 8, "^lossweight"), ("wrong-type", "seed", 9, "^x"), ("unknown-type", "weighting.type", 10, "^nope")]),
    ("empty-file", "", [("wrong-type", "", 1, 1)]),
    ("top-level-list", "- a\n- b\n", [("wrong-type", "", 1, 1)]),
    ("yaml-syntax", "name: [t\n", [("yaml-syntax", "", 2, 1)]),
    ("extends-outside-the-project", spec("extends: /etc/hostname"), [("outside-project", "extends", 9, "^/etc")]),
    ("extends-nul", spec('extends: "a\\0b.yaml"'), [("invalid", "extends", 9, 10)]),
]


def column(text: str, line: int, where: int | str) -> int:
    if isinstance(where, int):
        return where
    snippet = where.replace("^", "")
    index = text.splitlines()[line - 1].index(snippet)
    return index + where.index("^") + 1


@pytest.mark.parametrize("text,expected", [pytest.param(t, e, id=i) for i, t, e in CASES])
def test_broken_spec_reports_exactly(text, expected, write):
    expected = [(code, path, line, column(text, line, where)) for code, path, line, where in expected]
    path = write("spec.yaml", text)
    results = validate_file(path)
    errors = sorted({(d.code, d.path, d.line, d.col) for r in results for d in r.errors}, key=lambda e: (e[2], e[3], e[0]))
    assert errors == sorted(expected, key=lambda e: (e[2], e[3], e[0]))
    for result in results:
        assert all(d.code == "not-implemented" for d in result.warnings)
        assert all(d.file == str(path) for d in result.errors)


# Codes the table cannot show, and where each is pinned instead.
ELSEWHERE = {
    "bad-data": "validate --deep: test_formats, test_reliability_data",
    "build-error": "validate --deep and run's preflight: test_formats, test_reliability_run",
    "bad-override": "a --set argument, not a spec's text: test_spec_loading",
    "not-text": "the file's bytes: test_spec_loading's hostile files",
    "too-deep": "the file's bytes: test_spec_loading's hostile files",
    "too-large": "the file's bytes: test_spec_loading's hostile files",
    "unreadable": "the file's permissions: test_spec_loading's hostile files",
    "not-implemented": "a warning, and every type the language has runs: test_run's refusal test",
    "unusual-value": "a warning: test_reliability_validate",
    "internal-error": "a bug: the property tests assert it never occurs",
    "unseen-leak": "a warning: test_zero_shot",
}


def test_every_code_a_spec_text_can_produce_has_a_case():
    from mtlspec.errors import CODES

    covered = {code for _, _, expected in CASES for code, *_ in expected}
    assert set(CODES) - covered == set(ELSEWHERE), "add a case for the new code, or say in ELSEWHERE where it is tested"


def test_base_is_valid(write):
    (result,) = validate_file(write("spec.yaml", BASE))
    assert result.errors == [] and result.spec is not None


def test_a_missing_type_lists_the_types_that_section_takes(write):
    """`training: {optimizer: {lr: 0.01}}` said "(one of: )": pydantic names the tags for some
    unions only; the language names them for every one."""
    (result,) = validate_file(write("spec.yaml", spec("training: {optimizer: {lr: 0.01}}")))
    (error,) = [d for d in result.errors if d.code == "missing-key"]
    assert error.path == "training.optimizer.type" and error.message.endswith("(one of: adam, adamw, sgd)"), error.message
