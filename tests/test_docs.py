"""The documentation stays true: every diagnostic code is documented, the field reference is current."""

from __future__ import annotations

import re

from conftest import REPO
from mtlspec.errors import CODES
from mtlspec.language.reference import END, START, markdown_reference

SPEC_DOC = (REPO / "docs" / "spec.md").read_text()


def test_every_diagnostic_code_is_documented_with_an_example():
    for code in CODES:
        row = re.search(rf"^\| `{re.escape(code)}` \| .+ \| .+ \|$", SPEC_DOC, re.MULTILINE)
        assert row, f"docs/spec.md has no row for the code {code}"


def _codes_emitted() -> dict[str, str]:
    """Every code a diagnostic is made with anywhere in mtlspec/, found in the code (not by a pattern
    on names): the `code` argument of Finding, Diagnostic, Document.error and deep's _at, and
    every value assigned to a variable named `code`; each with where it is written."""
    import ast

    positions = {"Finding": 1, "Diagnostic": 3, "error": 1, "_at": 2}
    found: dict[str, str] = {}

    def strings(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.IfExp):
            return strings(node.body) + strings(node.orelse)
        return []

    for path in (REPO / "mtlspec").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            values: list[ast.AST] = []
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name in positions and len(node.args) > positions[name]:
                    values.append(node.args[positions[name]])
                values += [k.value for k in node.keywords if k.arg == "code"]
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id == "code":
                        values.append(node.value)
                    elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                        values += [v for t, v in zip(target.elts, node.value.elts) if isinstance(t, ast.Name) and t.id == "code"]
            for value in values:
                for code in strings(value):
                    found.setdefault(code, f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_every_code_the_code_emits_is_in_the_list_and_every_listed_code_is_emitted():
    emitted = _codes_emitted()
    assert {"incompatible", "invalid", "unknown-key", "bad-data"} <= set(emitted)  # the search sees one-word codes too
    assert set(emitted) <= set(CODES), {c: emitted[c] for c in set(emitted) - set(CODES)}
    assert set(CODES) <= set(emitted), set(CODES) - set(emitted)


def test_field_reference_is_generated_from_the_models():
    start, end = SPEC_DOC.index(START), SPEC_DOC.index(END) + len(END)
    assert SPEC_DOC[start:end] + "\n" == markdown_reference(), "stale: regenerate with `mtlspec schema --format md`"


def test_report_templates_ship_inside_the_package():
    """Reports render from package data, so a wheel install has its templates (a wheel built from
    this tree was checked to hold them: `pip wheel --no-deps --no-build-isolation .`)."""
    import fnmatch
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = REPO / "mtlspec" / "report"
    shipped = [p.relative_to(package).as_posix() for p in package.rglob("*.j2")]
    assert {"templates/report.md.j2", "templates/report.html.j2", "templates/compare.html.j2", "templates/ensemble.html.j2"} <= set(shipped)
    assert all(any(fnmatch.fnmatch(p, g) for g in config["mtlspec.report"]) for p in shipped)
    from mtlspec.report import compare_html, run_report

    assert run_report.TEMPLATES == compare_html.TEMPLATES == package / "templates"
