"""Turns pydantic validation errors into diagnostics people can act on.

Union-tag segments are stripped from paths, each error is located at the key or value it is
about, and messages name what was expected (with a guess when a name is misspelt).
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from mtlspec.errors import Diagnostic
from mtlspec.language.schema_walk import keys_after_tags, tags_at
from mtlspec.language.source import Document

_KINDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "dict": "a mapping",
    "list": "a list",
    "NoneType": "nothing (null)",
}
_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
}
_NAME_RULES = {
    r"^[a-z][a-z0-9_]{0,39}$": "use lowercase letters, digits and '_', starting with a letter (at most 40)",
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$": "use letters, digits, '_', '.' and '-', starting with a letter or digit (at most 80)",
}
_RANGE = {
    "greater_than": "greater than {gt}",
    "greater_than_equal": "at least {ge}",
    "less_than": "less than {lt}",
    "less_than_equal": "at most {le}",
}


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _kind(value: Any) -> str:
    return _KINDS.get(type(value).__name__, type(value).__name__)


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def data_path(loc: tuple, data: Any, keep_last_missing: bool) -> tuple:
    """The path into the data that a pydantic location means, union-tag segments removed."""
    out: list = []
    node = data
    for i, seg in enumerate(loc):
        if isinstance(node, dict) and seg in node:
            out.append(seg)
            node = node[seg]
        elif isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node):
            out.append(seg)
            node = node[seg]
        elif keep_last_missing and i == len(loc) - 1 and isinstance(seg, str):
            out.append(seg)
    return tuple(out)


def _dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def _from_error(err: dict, root: type[BaseModel], doc: Document) -> Diagnostic:
    kind, loc, ctx = err["type"], tuple(err["loc"]), err.get("ctx") or {}
    value = err.get("input")
    if kind == "extra_forbidden":
        path = data_path(loc, doc.data, False)
        allowed = [k for k in keys_after_tags(root, loc[:-1]) if k != "type"]
        where, code = doc.key_at(path), "unknown-key"
        message = f"unknown key{did_you_mean(loc[-1], allowed)}" + ("" if did_you_mean(loc[-1], allowed) else f"; allowed here: {', '.join(allowed)}")
    elif kind == "missing":
        path = data_path(loc, doc.data, True)
        where, code, message = doc.key_at(path[:-1]), "missing-key", f"missing required key '{path[-1]}'"
    elif kind == "union_tag_not_found":
        path = data_path(loc, doc.data, False) + ("type",)
        where, code = doc.key_at(path[:-1]), "missing-key"
        expected = ctx.get("expected_tags", "").replace(chr(39), "") or ", ".join(tags_at(root, loc))  # pydantic names them for some unions only
        message = f"missing required key 'type' (one of: {expected})"
    elif kind == "union_tag_invalid":
        path = data_path(loc, doc.data, False) + ("type",)
        tags = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",")]
        where, code = doc.value_at(path), "unknown-type"
        message = f"unknown type '{ctx.get('tag')}'{did_you_mean(ctx.get('tag'), tags)}; valid types: {', '.join(tags)}"
    elif kind == "literal_error":
        path = data_path(loc, doc.data, False)
        expected = [e.strip().strip("'") for e in str(ctx.get("expected", "")).replace(" or ", ", ").split(",")]
        where = doc.value_at(path)
        code = "unknown-type" if path and path[-1] == "type" else "invalid-value"
        message = f"{_shown(value)} is not allowed{did_you_mean(value, expected)}; expected one of: {', '.join(expected)}"
    elif kind in _EXPECTED:
        path = data_path(loc, doc.data, False)
        where, code = doc.value_at(path), "wrong-type"
        message = f"expected {_EXPECTED[kind]}, got {_kind(value)} {_shown(value)}".rstrip()
        if isinstance(value, (dict, list)):
            message = f"expected {_EXPECTED[kind]}, got {_kind(value)}"
    elif kind in _RANGE:
        path = data_path(loc, doc.data, False)
        where, code = doc.value_at(path), "out-of-range"
        message = f"must be {_RANGE[kind].format(**ctx)}, got {_shown(value)}"
    elif kind in ("too_short", "too_long"):
        path = data_path(loc, doc.data, False)
        where, code = doc.value_at(path), "out-of-range"
        bound = f"at least {ctx.get('min_length')}" if kind == "too_short" else f"at most {ctx.get('max_length')}"
        message = f"needs {bound} entries, got {ctx.get('actual_length')}"
    elif kind == "string_pattern_mismatch":
        path = data_path(loc, doc.data, False)
        where = doc.key_at(path) if loc[-1] == "[key]" else doc.value_at(path)
        code = "invalid-name"
        rule = _NAME_RULES.get(str(ctx.get("pattern")), f"must match {ctx.get('pattern')}")
        message = f"{_shown(value)} is not a valid name: {rule}"
    else:
        path = data_path(loc, doc.data, False)
        where, code, message = doc.value_at(path), "invalid", err.get("msg", "invalid value")
    return Diagnostic(where.file, where.line, where.col, code, _dotted(path), message)


def _merge_union_alternatives(diags: list[Diagnostic]) -> list[Diagnostic]:
    """A value that fits no member of `str | list[str]` gives one error per member: make it one."""
    out: dict[tuple, Diagnostic] = {}
    for d in diags:
        key = (d.file, d.line, d.col, d.code, d.path)
        if key in out and d.code == "wrong-type" and d.message != out[key].message:
            first = out[key].message.split(", got ")[0]
            extra = d.message.split(", got ")[0].removeprefix("expected ")
            got = d.message.split(", got ", 1)[1] if ", got " in d.message else ""
            out[key] = Diagnostic(d.file, d.line, d.col, d.code, d.path, f"{first} or {extra}, got {got}".rstrip(", got "))
        else:
            out.setdefault(key, d)
    return list(out.values())


def structural(root: type[BaseModel], doc: Document) -> tuple[BaseModel | None, list[Diagnostic]]:
    """Validate the document against the models; returns the model (if valid) and diagnostics."""
    try:
        return root.model_validate(doc.data), []
    except ValidationError as exc:
        diags = [_from_error(err, root, doc) for err in exc.errors(include_url=False)]
        return None, _merge_union_alternatives(diags)
