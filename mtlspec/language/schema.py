"""The spec language as a Draft-07 JSON Schema, for editors (yaml-language-server) and tools."""

from __future__ import annotations

import ast
import inspect
import json
import sys
from typing import Any

from pydantic import BaseModel

from mtlspec.language.root import Spec

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
        if "patternProperties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False  # a task or dataset name that breaks the pattern is an error
        return out
    if isinstance(node, list):
        return [_draft07(v) for v in node]
    return node


def _field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of a class (read from its source, only when exporting).

    Pydantic can do this at class creation (use_attribute_docstrings), but that parses every
    module's source on each start and `validate` must start fast. A field a class inherits keeps
    the docstring its base wrote.
    """
    docs: dict[str, str] = {}
    for base in reversed([c for c in cls.__mro__ if issubclass(c, BaseModel) and c.__module__.startswith("mtlspec.")]):
        tree = ast.parse(inspect.getsource(sys.modules[base.__module__]))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == base.__name__:
                for stmt, nxt in zip(node.body, node.body[1:]):
                    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and isinstance(nxt, ast.Expr):
                        if isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                            docs[stmt.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


def _models(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every model class reachable from the root, by class name."""
    import typing

    found: dict[str, type[BaseModel]] = {}
    stack: list[Any] = [root]
    while stack:
        t = stack.pop()
        if isinstance(t, type) and issubclass(t, BaseModel):
            if t.__name__ in found:
                continue
            found[t.__name__] = t
            stack.extend(f.annotation for f in t.model_fields.values())
        else:
            stack.extend(typing.get_args(t))
    return found


def _describe(schema: dict) -> None:
    """Add field docstrings as `description` to the schema's definitions (and the root)."""
    models = _models(Spec)
    targets = [(schema, Spec)] + [(schema["definitions"][n], m) for n, m in models.items() if n in schema.get("definitions", {})]
    for node, model in targets:
        for field, text in _field_docs(model).items():
            prop = node.get("properties", {}).get(field)
            if prop is not None and "description" not in prop:
                prop["description"] = text


def json_schema() -> dict:
    schema = _draft07(Spec.model_json_schema(mode="validation"))
    _describe(schema)
    return {"$schema": "http://json-schema.org/draft-07/schema#", "$id": SCHEMA_ID, **schema}


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
