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


def test_every_code_the_checks_emit_is_in_the_list():
    sources = "".join(p.read_text() for p in (REPO / "mtlspec" / "language").glob("*.py"))
    hyphenated = set(re.findall(r'"([a-z]+(?:-[a-z]+)+)"', sources)) - {"utf-8-sig"}
    assert {"unknown-key", "incompatible"} - hyphenated == {"incompatible"}  # the regex finds codes
    assert hyphenated <= set(CODES), hyphenated - set(CODES)


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
