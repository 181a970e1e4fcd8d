"""Findings of the reliability probe (issue 13) on `validate`: specs that used to pass and then crash
`run`, inputs that crashed validate itself, output a hostile spec could garble, and paths that
reached outside the project. Each is pinned here by what validate must now say, at which line."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from conftest import REPO
from mtlspec.language import validate_file

QUICKSTART = (REPO / "specs" / "quickstart.yaml").read_text()


def located(results, severity="error"):
    return [(d.code, d.path, d.line) for r in results for d in r.diagnostics if d.severity == severity]


def line_of(text: str, snippet: str) -> int:
    return text[: text.index(snippet)].count("\n") + 1


@pytest.mark.parametrize("replace, code, path, at", [
    # a monitor metric the task does not report: a KeyError after a whole epoch, before
    (("keep: 2}\n", "keep: 2}\n  early_stopping: {monitor: val.seg.accuracy}\n"), "invalid-value", "training.early_stopping.monitor", "monitor:"),
    (("keep: 2}\n", "keep: 2}\n  early_stopping: {monitor: val.largest.miou}\n"), "invalid-value", "training.early_stopping.monitor", "monitor:"),
    # top_k is computed, but not among the metrics the task reports by default
    (("keep: 2}\n", "keep: 2}\n  early_stopping: {monitor: val.largest.top_k}\n"), "invalid-value", "training.early_stopping.monitor", "monitor:"),
    # head fields MMDetection's constructor does not take, or channels its GroupNorm cannot split
    (("feat_channels: 32}", "feat_channels: 32, bogus_arg: 1}"), "unknown-key", "tasks.boxes.head.bogus_arg", "bogus_arg"),
    (("feat_channels: 32}", "feat_channels: 20}"), "incompatible", "tasks.boxes.head.feat_channels", "feat_channels: 20"),
    (("feat_channels: 32}", "feat_channels: 20, norm_cfg: {type: GN, num_groups: 3}}"), "incompatible", "tasks.boxes.head.feat_channels", "feat_channels: 20"),
    ((("{type: FCOSHead, stacked_convs: 1, feat_channels: 32}", "{type: ATSSHead}"), ("FPN, out_channels: 32", "FPN, out_channels: 20")),
     "incompatible", "model.neck.out_channels", "out_channels: 20"),
    (("objects: {min: 1, max: 3}", "objects: {min: 1, max: 3}\n      seed: -1"), "out-of-range", "data.datasets.digits.seed", "seed: -1"),
    (("objects: {min: 1, max: 3}", "objects: {min: 1, max: 9}"), "out-of-range", "data.datasets.digits.objects.max", "max: 9"),
    (("canvas: 64\n      objects: {min: 1, max: 3}", "canvas: 16\n      objects: {min: 1, max: 5}"), "out-of-range", "data.datasets.digits.objects.max", "max: 5"),
    (("sampling: {type: proportional}", "sampling: {type: temperature, t: 1.0e-300}"), "out-of-range", "data.sampling.t", "t: 1.0e-300"),
    (("batch_size: 32", "batch_size: 4096"), "out-of-range", "data.batch_size", "batch_size: 4096"),
    (("splits: {train: 3000", "splits: {train: 1000000000"), "out-of-range", "data.datasets.digits.splits.train", "train: 1000000000"),
])
def test_specs_that_crashed_run_are_caught_by_validate_at_their_line(write, replace, code, path, at):
    text = QUICKSTART
    for old, new in replace if isinstance(replace[0], tuple) else [replace]:
        assert old in text
        text = text.replace(old, new)
    results = validate_file(write("q.yaml", text))
    assert located(results) == [(code, path, line_of(text, at))]


def test_a_spec_near_those_limits_still_validates(write):
    text = QUICKSTART.replace("canvas: 64\n      objects: {min: 1, max: 3}", "canvas: 16\n      objects: {min: 4, max: 4}")
    assert located(validate_file(write("q.yaml", text.replace("batch_size: 32", "batch_size: 3000")))) == []


def test_a_baseline_run_that_is_not_there_is_a_warning_that_run_refuses(write):
    from mtlspec.run import refusals

    text = QUICKSTART.replace("every_epochs: 4\n", "every_epochs: 4\n  baseline: {type: run, path: no/such/run}\n")
    (result,) = validate_file(write("q.yaml", text))
    assert located([result], "warning") == [("missing-file", "evaluation.baseline.path", line_of(text, "baseline:"))]
    assert [d.code for d in refusals(result)] == ["missing-file"]


@pytest.mark.parametrize("value", ["a" * 300 + ".yaml", "sub/" + "b" * 256, "x\x00y.yaml", "\x00"])
def test_unusable_paths_in_extends_and_members_are_diagnostics(write, value):
    escaped = json.dumps(value)  # a YAML double-quoted scalar can carry a NUL as \0
    escaped = escaped.replace("\\u0000", "\\0")
    results = validate_file(write("e.yaml", f"extends: {escaped}\n" + QUICKSTART))
    assert [(d.code, d.path) for r in results for d in r.errors] == [("invalid", "extends")]
    members = f"ensemble:\n  members: {{type: specs, paths: [{escaped}, {escaped}]}}\n  per_task: {{boxes: {{type: box_fusion}}}}\n"
    results = validate_file(write("m.yaml", QUICKSTART + members))
    assert [(d.code, d.path) for r in results for d in r.errors] == [("invalid", "ensemble.members.paths.0"), ("invalid", "ensemble.members.paths.1")]


@pytest.mark.parametrize("tagged", ["!!bool abc", "!!int abc", "!!float abc", "!!timestamp abc", "!!int 0x1G", "!!python/name:os.system x", "!custom x"])
def test_a_yaml_tag_the_value_does_not_fit_is_a_syntax_error_at_the_tag(write, tagged):
    (result,) = validate_file(write("t.yaml", QUICKSTART.replace("seed: 0", f"seed: {tagged}")))
    (error,) = [d for d in result.errors if d.code == "yaml-syntax"]
    assert (error.line, error.col) == (line_of(QUICKSTART, "seed: 0"), 7)


@pytest.mark.parametrize("fmt", ["text", "github"])
def test_control_characters_and_line_separators_from_a_spec_never_reach_the_output_raw(cli, write, fmt):
    hostile = 'name: "x"\ndata: {datasets: {digits: {type: multidigits}}}\ntasks:\n  "a\\nb\\e[31mred\\u2028c": {type: depth, dataset: "d\\e]0;title\\a\\u2029"}\n'
    result = cli("validate", "--format", fmt, str(write("h.yaml", hostile)))
    assert result.exit_code == 1
    assert "\x1b" not in result.output and "\u2028" not in result.output and "\u2029" not in result.output and "\x07" not in result.output
    lines = [line for line in result.output.splitlines() if "error[" in line or line.startswith("::error")]
    assert len(lines) == 3, result.output  # the task's name, the dataset's name, the unknown dataset: one line each
    assert all("\\x1b" in line or "\\u2029" in line for line in lines), lines


def test_a_matrix_value_becomes_a_short_file_name_safe_label(write):
    text = QUICKSTART + 'matrix:\n  name: ["' + "n" * 300 + '", "a/b c\\td"]\n'
    results = validate_file(write("mx.yaml", text))
    labels = [r.name[r.name.index("[") + 1 : -1] for r in results]
    assert all(re.fullmatch(r"[A-Za-z0-9_.+#~=,-]{1,60}", label) for label in labels), labels
    assert labels[1] == "name=a_b_c_d" and len(labels[0]) < 60


def test_an_unknown_type_is_not_called_part_of_the_language(write):
    for replace in (("type: ew", "type: gradnrom"), ("type: hps", "type: hpss"), ("type: FCOSHead", "type: MaskRCNN")):
        results = validate_file(write("u.yaml", QUICKSTART.replace(*replace)))
        assert [d.code for r in results for d in r.diagnostics] == ["unknown-type"], replace


def test_a_learning_rate_far_off_the_usual_range_is_a_warning(write):
    text = QUICKSTART.replace("lr: 3.0e-3", "lr: 1.0e+3")
    (result,) = validate_file(write("lr.yaml", text))
    assert located([result], "warning") == [("unusual-value", "training.optimizer.lr", line_of(text, "lr: 1.0e+3"))]
    assert result.ok() and not result.ok(strict=True)


def test_the_resolved_spec_a_run_writes_validates(write):
    from mtlspec.language.resolved import resolved_yaml

    (result,) = validate_file(REPO / "specs" / "quickstart.yaml")
    text = resolved_yaml(result.spec)
    (again,) = validate_file(write("runs/quickstart/spec.resolved.yaml", text))
    assert again.diagnostics == [] and again.spec == result.spec
    assert "extends" not in yaml.safe_load(text) and "matrix" not in yaml.safe_load(text)


class TestConfinement:
    """A spec names files inside its project root (the nearest folder with .git, else its own),
    or in folders the person running mtlspec allows: it cannot make validate read, or echo,
    a file elsewhere."""

    SECRET = "name: leaked\ntoken: hunter2-secret\n"

    @pytest.fixture
    def project(self, tmp_path):
        (tmp_path / "outside").mkdir()
        (tmp_path / "outside" / "secret.yaml").write_text(self.SECRET)
        (tmp_path / "repo" / ".git").mkdir(parents=True)
        (tmp_path / "repo" / "specs" / "base").mkdir(parents=True)
        (tmp_path / "repo" / "specs" / "base" / "common.yaml").write_text("report: {plots: false}\n")
        return tmp_path

    def _spec(self, project, extends):
        path = project / "repo" / "specs" / "x.yaml"
        path.write_text(f"extends: {extends}\n" + QUICKSTART)
        return path

    @pytest.mark.parametrize("extends", ["../../outside/secret.yaml", "{outside}/secret.yaml", "base/../../../outside/secret.yaml"])
    def test_extends_outside_the_project_is_refused_without_reading_it(self, cli, project, extends):
        path = self._spec(project, extends.format(outside=project / "outside"))
        result = cli("validate", str(path))
        assert result.exit_code == 1
        assert "outside-project" in result.output and "hunter2" not in result.output and "token" not in result.output
        assert cli("validate", "--allow-path", str(project / "outside"), str(path)).exit_code == 1  # now read: its unknown key shows
        assert "token" in cli("validate", "--allow-path", str(project / "outside"), str(path)).output

    def test_a_link_inside_the_project_that_points_outside_is_refused(self, cli, project):
        (project / "repo" / "specs" / "link.yaml").symlink_to(project / "outside" / "secret.yaml")
        result = cli("validate", str(self._spec(project, "link.yaml")))
        assert "outside-project" in result.output and "hunter2" not in result.output

    def test_bases_inside_the_project_are_read_from_any_depth(self, project):
        (result,) = validate_file(self._spec(project, "base/common.yaml"))
        assert result.errors == [] and result.spec.report.plots is False

    def test_data_member_and_baseline_paths_outside_are_refused(self, project):
        path = project / "repo" / "specs" / "d.yaml"
        path.write_text(QUICKSTART.replace("digits:\n      type: multidigits\n      canvas: 64\n      objects: {min: 1, max: 3}\n      splits: {train: 3000, val: 250, test: 250}",
                                           "digits: {type: coco, root: /etc, annotations: {train: passwd}}")
                        .replace("every_epochs: 4\n", "every_epochs: 4\n  baseline: {type: run, path: ../../outside}\n")
                        + "ensemble:\n  members: {type: runs, paths: [../../outside, /tmp]}\n  per_task: {boxes: {type: box_fusion}}\n")
        (result,) = validate_file(path)
        outside = sorted(d.path for d in result.errors if d.code == "outside-project")
        assert outside == ["data.datasets.digits.root", "ensemble.members.paths.0", "ensemble.members.paths.1", "evaluation.baseline.path"]
        (allowed,) = validate_file(path, allow=["/etc", "/tmp", project / "outside"])
        assert [d for d in allowed.errors if d.code == "outside-project"] == []


def test_a_diagnostic_on_line_100_keeps_its_line_number(cli, write):
    """rich turns ":100:" into an emoji unless told not to (found by the property test)."""
    path = write("long.yaml", "name: x\n" + "# a comment\n" * 98 + "seeds: 1\n")
    result = cli("validate", str(path))
    assert f"{path}:100:1: error[unknown-key] seeds:" in result.output
