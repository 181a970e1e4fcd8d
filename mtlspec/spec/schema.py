"""The spec language as a Draft-07 JSON Schema, for editors (yaml-language-server) and tools."""

from __future__ import annotations

import json
from typing import Any

from mtlspec.spec.root import Spec

SCHEMA_ID = "https://mtlspec.dev/schemas/mtlspec.schema.json"


def _draft07(node: Any) -> Any:
    """Rewrite pydantic's 2020-12 output into Draft-07 terms ($defs -> definitions)."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out[key] = value.replace("#/$defs/", "#/definitions/")
            elif key == "$defs":
                out["definitions"] = _draft07(value)
            elif key == "discriminator":  # an OpenAPI keyword, unknown to Draft-07 validators
                continue
            else:
                out[key] = _draft07(value)
        return out
    if isinstance(node, list):
        return [_draft07(v) for v in node]
    return node


def json_schema() -> dict:
    schema = _draft07(Spec.model_json_schema(mode="validation"))
    return {"$schema": "http://json-schema.org/draft-07/schema#", "$id": SCHEMA_ID, **schema}


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
