"""The JSON Schema in the repo is current, is Draft-07, and agrees with `validate` on the specs."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from conftest import REPO
from mtlspec.language import validate_file
from mtlspec.language.schema import json_schema_text
from test_spec_diagnostics import CASES

SCHEMA_FILE = REPO / "schemas" / "mtlspec.schema.json"
SPECS = sorted((REPO / "specs").glob("*.yaml"))
# Rules across fields that JSON Schema cannot state; `validate` alone reports them.
CROSS_FIELD = {"branch-at-too-deep", "vote-without-members", "matrix-bad-value", "objects-min-over-max", "holdout-fold-out-of-range"}
STRUCTURAL = {"unknown-key", "missing-key", "wrong-type", "out-of-range", "unknown-type", "invalid-value", "invalid-name"}


def test_schema_file_is_current():
    assert SCHEMA_FILE.read_text() == json_schema_text(), "stale: run `mtlspec schema -o schemas/mtlspec.schema.json`"


def test_schema_is_draft07():
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    assert "$defs" not in SCHEMA_FILE.read_text()


def test_cli_prints_the_schema(cli):
    result = cli("schema")
    assert result.exit_code == 0 and result.output == json_schema_text()


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_shipped_spec_is_valid_and_points_editors_at_the_schema(path):
    first = path.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../schemas/mtlspec.schema.json"
    results = validate_file(path)
    assert results and all(r.errors == [] for r in results), [d.format() for r in results for d in r.errors]
    raw = yaml.safe_load(path.read_text())
    if "extends" not in raw:  # a partial spec is only complete after merging
        jsonschema.Draft7Validator(json.loads(SCHEMA_FILE.read_text())).validate(raw)


@pytest.mark.parametrize("case_id,text", [(i, t) for i, t, e in CASES if {c[0] for c in e} <= STRUCTURAL and t.strip() and i not in CROSS_FIELD])
def test_editors_reject_what_validate_rejects_structurally(case_id, text):
    data = yaml.safe_load(text)
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA_FILE.read_text()))
    assert list(validator.iter_errors(data)), f"{case_id}: the JSON Schema accepts a spec that validate rejects"
