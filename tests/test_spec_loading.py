"""Loading: extends, --set, matrix expansion, and hostile files that must never raise."""

from __future__ import annotations

import json

import pytest

from mtlspec.errors import UsageError
from mtlspec.language import validate_file
from mtlspec.language.source import MAX_BYTES

BASE = """\
name: base
data:
  datasets:
    digits: {type: multidigits, canvas: 32}
tasks:
  cls: {type: classification, dataset: digits, label: largest_digit}
  seg: {type: segmentation, dataset: digits}
training: {epochs: 2}
"""


def errors(results):
    return [(d.code, d.path, d.file.rsplit("/", 1)[-1], d.line, d.col) for r in results for d in r.errors]


def test_extends_merges_deeply_and_locates_each_value_in_its_file(write):
    write("specs/_base.yaml", BASE)
    child = write("specs/child.yaml", "extends: _base.yaml\nname: child\ntraining: {epochs: 0}\ndata: {datasets: {digits: {canvas: 48}}}\n")
    (result,) = validate_file(child)
    assert errors([result]) == [("out-of-range", "training.epochs", "child.yaml", 3, 20)]
    fixed = write("specs/child2.yaml", "extends: _base.yaml\nname: child\ndata: {datasets: {digits: {canvas: 48}}}\n")
    (result,) = validate_file(fixed)
    assert result.errors == []
    assert result.spec.name == "child"
    assert result.spec.data.datasets["digits"].canvas == 48  # merged: the child's value
    assert result.spec.training.epochs == 2  # kept: the base's value
    assert set(result.spec.tasks) == {"cls", "seg"}


def test_error_in_base_points_into_the_base_file(write):
    write("_base.yaml", BASE.replace("epochs: 2", "epochs: many"))
    (result,) = validate_file(write("child.yaml", "extends: _base.yaml\nname: c\n"))
    assert errors([result]) == [("wrong-type", "training.epochs", "_base.yaml", 8, 20)]


def test_extends_cycle_and_missing_base_are_reported(write):
    write("a.yaml", "extends: b.yaml\nname: a\n")
    write("b.yaml", "extends: a.yaml\nname: b\n")
    results = validate_file(write("c.yaml", "extends: a.yaml\n" + BASE.replace("name: base\n", "name: c\n")))
    assert ("extends-cycle", "extends") in {(d.code, d.path) for r in results for d in r.errors}
    (result,) = validate_file(write("d.yaml", "extends: nowhere.yaml\n" + BASE))
    assert errors([result]) == [("missing-file", "extends", "d.yaml", 1, 10)]


def test_set_overrides_values_as_yaml_scalars(write):
    path = write("s.yaml", BASE)
    (result,) = validate_file(path, ["training.epochs=7", "weighting.type=uw", "data.datasets.digits.canvas=40"])
    assert result.errors == []
    assert result.spec.training.epochs == 7 and result.spec.weighting.type == "uw"
    assert result.spec.data.datasets["digits"].canvas == 40
    (result,) = validate_file(path, ["training.epochs=zero"])
    (d,) = result.errors
    assert (d.code, d.path, d.file) == ("wrong-type", "training.epochs", "<--set training.epochs=zero>")


@pytest.mark.parametrize("bad", ["no_equals_sign", "=3", "a..b=1", "x=[unclosed"])
def test_malformed_set_is_a_usage_error(write, bad):
    with pytest.raises(UsageError):
        validate_file(write("s.yaml", BASE), [bad])


def test_set_through_a_scalar_is_reported(write):
    (result,) = validate_file(write("s.yaml", BASE), ["training.epochs.x=1"])
    assert [(d.code, d.path) for d in result.errors] == [("bad-override", "training.epochs.x")]


def test_matrix_expands_to_every_combination_with_stable_names(write):
    path = write("m.yaml", BASE + "matrix:\n  weighting.type: [ew, uw, dwa]\n  training.epochs: [1, 2]\n")
    results = validate_file(path)
    assert [r.name for r in results] == [
        f"base[weighting={w},epochs={e}]" for w in ("ew", "uw", "dwa") for e in (1, 2)
    ]
    assert all(r.errors == [] for r in results)
    assert [r.spec.weighting.type for r in results] == ["ew", "ew", "uw", "uw", "dwa", "dwa"]
    assert [r.spec.training.epochs for r in results] == [1, 2, 1, 2, 1, 2]


def test_matrix_names_disambiguate_paths_with_the_same_last_key(write):
    path = write("m.yaml", BASE + "matrix:\n  weighting.type: [ew]\n  model.sharing.type: [hps, mtan]\n")
    assert [r.name for r in validate_file(path)] == [  # a `type` is named by the section it chooses
        "base[weighting=ew,sharing=hps]",
        "base[weighting=ew,sharing=mtan]",
    ]
    path = write("n.yaml", BASE + "matrix:\n  seed: [1]\n  data.seed: [2, 3]\n")
    assert [r.name for r in validate_file(path)] == ["base[seed=1,data.seed=2]", "base[seed=1,data.seed=3]"]


def test_matrix_of_mappings_locates_errors_inside_the_matrix(write):
    text = BASE + "matrix:\n  weighting:\n    - {type: cagrad, c: 0.5}\n    - {type: cagrad, c: 3}\n"
    results = validate_file(write("m.yaml", text))
    assert [r.name for r in results] == ["base[weighting=cagrad]", "base[weighting=cagrad]"]
    assert errors(results) == [("out-of-range", "weighting.c", "m.yaml", 12, 25)]


@pytest.mark.parametrize(
    "text,code",
    [
        (b"\x00\x01\x02binary\xff\xfe", "not-text"),
        (b"\xff\xfe\xfa not utf-8", "not-text"),
        (b"a: &a [x, x, x, x, x, x, x, x, x]\n" + b"".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n".encode() for i in range(8)), "too-large"),
        (b"[" * 5000 + b"]" * 5000, "too-deep"),
        (b"a:\n" + b"".join(b"  " * i + b"b:\n" for i in range(1, 80)), "too-deep"),
        (b"a: &a [*a]\n", "too-deep"),
        (b"name: x\nname: y\n", "duplicate-key"),
        (b"a:\n\tb: 1\n", "yaml-syntax"),
        (b"--- {a: 1}\n--- {b: 2}\n", "yaml-syntax"),
        (b"!!python/object:os.system ['echo hi']\n", "yaml-syntax"),
        (b"{[1, 2]: x}\n", "wrong-type"),
    ],
    ids=["binary", "latin1", "alias-bomb", "deep-flow", "deep-block", "recursive-alias", "duplicate", "tab", "two-documents", "python-tag", "complex-key"],
)
def test_hostile_files_give_a_diagnostic_not_a_traceback(tmp_path, text, code):
    path = tmp_path / "x.yaml"
    path.write_bytes(text)
    results = validate_file(path)
    assert code in {d.code for r in results for d in r.errors}


def test_huge_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "big.yaml"
    with open(path, "wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    (result,) = validate_file(path)
    assert [d.code for d in result.errors] == ["too-large"]
    assert MAX_BYTES < 50 * 1024 * 1024


def test_anchors_and_merge_keys_work(write):
    text = BASE + "x-defaults: &opt {type: adamw, lr: 0.01}\n"
    (result,) = validate_file(write("a.yaml", text))
    assert [d.code for d in result.errors] == ["unknown-key"]
    text = BASE.replace("training: {epochs: 2}", "training:\n  epochs: 2\n  optimizer: &opt {type: sgd, lr: 0.05}\n")
    text += "evaluation: {split: val}\n"
    (result,) = validate_file(write("b.yaml", text.replace("optimizer: &opt {type: sgd, lr: 0.05}", "optimizer:\n    <<: {type: sgd, lr: 0.05}\n    momentum: 0.5")))
    assert result.errors == []
    assert (result.spec.training.optimizer.lr, result.spec.training.optimizer.momentum) == (0.05, 0.5)


def test_cli_exit_codes_and_formats(cli, write):
    good = write("good.yaml", BASE)
    bad = write("bad.yaml", BASE.replace("epochs: 2", "epochs: -3"))
    assert cli("validate", str(good)).exit_code == 0
    result = cli("validate", str(good), str(bad))
    assert result.exit_code == 1
    assert f"{bad}:8:20: error[out-of-range] training.epochs: must be at least 1, got -3" in result.output
    assert "Traceback" not in result.output
    result = cli("validate", "--format", "json", str(bad))
    payload = json.loads(result.output)
    assert payload["valid"] is False
    assert [d["code"] for d in payload["results"][0]["diagnostics"] if d["severity"] == "error"] == ["out-of-range"]
    result = cli("validate", "--format", "github", str(bad))
    assert f"::error file={bad},line=8,col=20,title=mtlspec out-of-range::" in result.output
    assert cli("validate", str(good.parent / "missing.yaml")).exit_code == 2
    assert cli("validate", "--set", "nonsense", str(good)).exit_code == 2
    assert cli("validate", "--format", "xml", str(good)).exit_code == 2


def test_strict_turns_not_implemented_warnings_into_failures(cli, write, monkeypatch):
    from mtlspec import capabilities

    monkeypatch.setitem(capabilities.IMPLEMENTED, "ensemble", capabilities.IMPLEMENTED["ensemble"] - {"stacking"})
    assert "warning[" not in cli("validate", str(write("plain.yaml", BASE))).output
    good = write("good.yaml", BASE + "ensemble: {members: {type: seeds, seeds: [0, 1]}, per_task: {cls: {type: stacking}}}\n")
    result = cli("validate", str(good))
    assert result.exit_code == 0 and "warning[not-implemented]" in result.output
    assert cli("validate", "--strict", str(good)).exit_code == 1


def test_folder_scan_skips_partials(cli, write):
    write("specs/_base.yaml", "name: [broken\n")
    write("specs/ok.yaml", BASE)
    result = cli("validate", "--format", "json", str(write("specs/other.yaml", BASE).parent))
    assert [r["file"].rsplit("/", 1)[-1] for r in json.loads(result.output)["results"]] == ["ok.yaml", "other.yaml"]


def test_set_labels_tell_values_apart_and_a_set_the_matrix_overwrites_is_refused(write):
    """Lists and mappings are labelled by what they hold (not '#0'), nested keys named like
    top-level ones are qualified, colliding names keep two keys, and a --set on a path the matrix
    sets is an error (the matrix would silently win)."""
    base = write("s.yaml", BASE)
    name = lambda *sets: validate_file(base, list(sets))[0].name  # noqa: E731
    assert name("model.backbone.channels=[8, 16]") != name("model.backbone.channels=[16, 32]")
    assert name("weighting={type: cagrad, c: 0.2}") != name("weighting={type: cagrad, c: 0.5}")
    assert name("data.seed=5") == "base[data.seed=5]"
    assert name("training.checkpoint.every_epochs=2", "evaluation.every_epochs=3") == "base[checkpoint.every_epochs=2,evaluation.every_epochs=3]"
    swept = write("m.yaml", BASE + "matrix:\n  weighting.type: [ew, uw]\n")
    results = validate_file(swept, ["weighting.type=dwa"])
    assert all(any(d.code == "bad-override" and "matrix sets weighting.type" in d.message for d in r.errors) for r in results)
