"""The documentation stays true: every diagnostic code is documented, the field reference is current."""

from __future__ import annotations

import re

from conftest import REPO
from mtlspec.errors import CODES
from mtlspec.spec.reference import END, START, markdown_reference

SPEC_DOC = (REPO / "docs" / "spec.md").read_text()


def test_every_diagnostic_code_is_documented_with_an_example():
    for code in CODES:
        row = re.search(rf"^\| `{re.escape(code)}` \| .+ \| .+ \|$", SPEC_DOC, re.MULTILINE)
        assert row, f"docs/spec.md has no row for the code {code}"


def test_every_code_the_checks_emit_is_in_the_list():
    sources = "".join(p.read_text() for p in (REPO / "mtlspec" / "spec").glob("*.py"))
    hyphenated = set(re.findall(r'"([a-z]+(?:-[a-z]+)+)"', sources)) - {"utf-8-sig"}
    assert {"unknown-key", "incompatible"} - hyphenated == {"incompatible"}  # the regex finds codes
    assert hyphenated <= set(CODES), hyphenated - set(CODES)


def test_field_reference_is_generated_from_the_models():
    start, end = SPEC_DOC.index(START), SPEC_DOC.index(END) + len(END)
    assert SPEC_DOC[start:end] + "\n" == markdown_reference(), "stale: regenerate with `mtlspec schema --format md`"
