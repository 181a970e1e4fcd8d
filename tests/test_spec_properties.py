"""Property tests: mutated valid specs and arbitrary text never give a traceback, only exit 0 or 1."""

from __future__ import annotations

import copy
import re

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import REPO

SEEDS = [yaml.safe_load((REPO / "specs" / "quickstart.yaml").read_text())]
SEEDS.append(
    {
        **copy.deepcopy(SEEDS[0]),
        "weighting": {"type": "cagrad", "c": 0.4},
        "ensemble": {"members": {"type": "seeds", "seeds": [0, 1]}, "per_task": {"boxes": {"type": "box_fusion"}}},
        "matrix": {"model.sharing.type": ["hps", "mtan"]},
    }
)

HOSTILE = ["a" * 300, "x\x00y.yaml", "../../../../etc/passwd", "/etc/passwd", "line\u2028break", "\x1b[2J\x1b[31mred",
           "new\nline", "specs/quickstart.yaml", "runs", ".", "", "~"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True), st.text(max_size=12),
    st.sampled_from(["ew", "hps", "FCOSHead", "digits", "classification", "val.loss", "seeds", "type"]),
    st.sampled_from(HOSTILE),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=6)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


def _parent(data, path):
    for seg in path[:-1]:
        data = data[seg]
    return data


@st.composite
def mutated_specs(draw):
    data = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    if draw(st.booleans()):  # the paths a spec names: bases, member specs and runs, a baseline run
        where = draw(st.sampled_from(["extends", "members", "baseline"]))
        value = draw(st.sampled_from(HOSTILE))
        if where == "extends":
            data["extends"] = value
        elif where == "members":
            data["ensemble"] = {"members": {"type": draw(st.sampled_from(["specs", "runs"])), "paths": [value, value]},
                                "per_task": {"boxes": {"type": "box_fusion"}}}
        else:
            data.setdefault("evaluation", {})["baseline"] = {"type": "run", "path": value}
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, last = _parent(data, path), path[-1]
        action = draw(st.sampled_from(["delete", "rename", "retype", "swap"]))
        if action == "delete":
            del parent[last]
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10)) if draw(st.booleans()) else last + "x"] = parent.pop(last)
        elif action == "retype":
            parent[last] = draw(VALUES)
        else:
            other = draw(st.sampled_from(paths))
            try:
                other_parent = _parent(data, other)
                parent[last], other_parent[other[-1]] = other_parent[other[-1]], parent[last]
            except (KeyError, IndexError, TypeError):
                pass
    return data


@settings(max_examples=int(__import__("os").environ.get("MTLSPEC_FUZZ_EXAMPLES", 150)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=mutated_specs(), fmt=st.sampled_from(["text", "json", "github"]))
def test_mutated_specs_never_crash(spec, fmt, cli, tmp_path):
    path = tmp_path / "mutant.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    result = cli("validate", "--format", fmt, str(path))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 1), result.output
    assert "internal-error" not in result.output
    _one_printable_line_each(result.output, fmt)


def _one_printable_line_each(output: str, fmt: str) -> None:
    """No control character or line separator from a spec reaches the terminal; each
    diagnostic is one line."""
    assert not any(c in output for c in "\x1b\x00\x07\u2028\u2029\r"), repr(output)
    if fmt == "text":
        for line in output.splitlines():
            if "error[" in line or "warning[" in line:
                assert re.match(r"^.+:\d+:\d+: (error|warning)\[[a-z-]+\]", line), line


TAGS = ["!!int ", "!!bool ", "!!float ", "!!timestamp ", "!!binary ", "!!str ", "!!null ", "!!python/object:os.system ", "!local "]


@settings(max_examples=int(__import__("os").environ.get("MTLSPEC_FUZZ_EXAMPLES", 150)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_tags_and_control_characters_inserted_in_a_spec_never_crash(data, cli, tmp_path):
    text = (REPO / "specs" / "quickstart.yaml").read_text()
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(text)))
        text = text[:at] + data.draw(st.sampled_from(TAGS + ["\u2028", "\x1b[31m", "\t", "\x85", "'", '"', "&a ", "*a ", "<<: "])) + text[at:]
    path = tmp_path / "tagged.yaml"
    path.write_text(text, encoding="utf-8")
    result = cli("validate", str(path))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 1) and "internal-error" not in result.output, result.output
    _one_printable_line_each(result.output, "text")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))))
def test_arbitrary_text_never_crashes(text, cli, tmp_path):
    path = tmp_path / "junk.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    result = cli("validate", str(path))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 1)
