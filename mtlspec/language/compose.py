"""Builds the documents a spec file stands for: `extends` merged beneath, `--set` on top, `matrix` expanded.

Every value keeps the location it was written at, whichever file (or --set) it came from.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mtlspec.errors import UsageError
from mtlspec.language.paths import Roots, is_file
from mtlspec.language.source import Document, Location, PathKey, parse_file


def _dotted(path: PathKey) -> str:
    return ".".join(str(p) for p in path)


def _exists(data: Any, path: PathKey) -> bool:
    for seg in path:
        if isinstance(data, dict) and seg in data:
            data = data[seg]
        elif isinstance(data, list) and isinstance(seg, int) and 0 <= seg < len(data):
            data = data[seg]
        else:
            return False
    return True


def _merge(base: Any, over: Any) -> Any:
    """Deep merge for `extends`: mappings merge key by key; anything else is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    return over


def _merge_docs(base: Document, over: Document) -> Document:
    data = _merge(base.data, over.data)
    merged = Document(over.file, data, diagnostics=base.diagnostics + over.diagnostics)
    for table in ("keys", "values"):
        out = {p: loc for p, loc in getattr(base, table).items() if _exists(data, p)}
        out.update(getattr(over, table))
        setattr(merged, table, out)
    return merged


def load_with_extends(path: Path, shown_as: str | None = None, roots: Roots | None = None, _stack: tuple[Path, ...] = ()) -> Document:
    """Parse a spec file and merge the file(s) named by its `extends` beneath it; every base must
    lie inside `roots` (the spec's project root when not given)."""
    roots = roots or Roots.for_spec(path)
    doc = parse_file(path, shown_as)
    if not isinstance(doc.data, dict) or "extends" not in doc.data:
        return doc
    names = doc.data.pop("extends")
    where = doc.value_at(("extends",))
    doc.keys = {p: v for p, v in doc.keys.items() if p[:1] != ("extends",)}
    doc.values = {p: v for p, v in doc.values.items() if p[:1] != ("extends",)}
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        doc.error(where, "wrong-type", "extends", "expected a path or a list of paths to base specs")
        return doc
    merged: Document | None = None
    for name in names:
        target, problem = roots.check(name, path.parent)
        if target is None:
            doc.error(where, "outside-project" if "outside" in problem else "invalid", "extends", f"base spec {name!r}: {problem}")
            continue
        shown = str(Path(doc.file).parent / name)
        if target in _stack or target == path.resolve():
            chain = " -> ".join(p.name for p in (*_stack, path.resolve(), target))
            doc.error(where, "extends-cycle", "extends", f"'{name}' extends itself in a cycle: {chain}")
            continue
        if not is_file(target):
            doc.error(where, "missing-file", "extends", f"base spec '{name}' not found (looked for {shown})")
            continue
        base = load_with_extends(target, shown, roots, (*_stack, path.resolve()))
        if base.data is not None and not isinstance(base.data, dict):
            doc.error(where, "wrong-type", "extends", f"base spec '{name}' is not a mapping")
            continue
        merged = base if merged is None else _merge_docs(merged, base)
    return _merge_docs(merged, doc) if merged is not None else doc


def parse_override(text: str) -> tuple[list[Any], Any]:
    """`path.to.key=value` -> (["path", "to", "key"], value parsed as YAML)."""
    if "=" not in text:
        raise UsageError(f"--set '{text}': expected path.to.key=value")
    key, _, raw = text.partition("=")
    if not key or any(not seg for seg in key.split(".")):
        raise UsageError(f"--set '{text}': the path before '=' is empty or has an empty segment")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise UsageError(f"--set '{text}': the value is not valid YAML") from None
    path = [int(seg) if seg.isdigit() else seg for seg in key.split(".")]
    return path, value


def _set(doc: Document, path: list[Any], value: Any, where: Location, sub_locations: dict[PathKey, Location] | None = None) -> str | None:
    """Put `value` at `path`, creating mappings on the way; returns a problem, or None."""
    if not isinstance(doc.data, dict):
        return "the spec is not a mapping"
    node = doc.data
    for i, seg in enumerate(path[:-1]):
        if isinstance(node, dict):
            if seg not in node or node[seg] is None:
                node[seg] = {}
            elif not isinstance(node[seg], (dict, list)):
                return f"'{_dotted(tuple(path[: i + 1]))}' holds a value, not a mapping"
            node = node[seg]
        elif isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node):
            node = node[seg]
        else:
            return f"'{_dotted(tuple(path[: i + 1]))}' is not a mapping or a list index that exists"
    last = path[-1]
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list) and isinstance(last, int) and 0 <= last < len(node):
        node[last] = value
    else:
        return f"'{_dotted(tuple(path))}' cannot be set: its parent is not a mapping"
    prefix = tuple(path)
    for table in (doc.keys, doc.values):
        for p in [p for p in table if p[: len(prefix)] == prefix]:
            del table[p]
    for i in range(1, len(prefix) + 1):
        doc.keys.setdefault(prefix[:i], where)
    doc.values[prefix] = where
    for sub, loc in (sub_locations or {}).items():
        doc.values[prefix + sub] = loc
    return None


def apply_overrides(doc: Document, overrides: list[str]) -> None:
    """Apply `--set path=value` overrides; each is located as `<--set N>:1:col`."""
    for n, text in enumerate(overrides, 1):
        path, value = parse_override(text)
        where = Location(f"<--set {text}>", 1, 1)
        problem = _set(doc, path, value, where)
        if problem:
            doc.error(where, "bad-override", _dotted(tuple(path)), problem)


@dataclass
class Variant:
    """One concrete spec: the document and a stable, readable name for it."""

    name: str
    label: str  # "" for a spec without a matrix
    doc: Document


def _value_label(value: Any, index: int) -> str:
    """A short, file-name-safe label for a matrix value: its type, its text, or its position."""
    if isinstance(value, dict):
        text = str(value.get("type", f"#{index}"))
    elif isinstance(value, list):
        text = f"#{index}"
    else:
        text = str(value)
    text = re.sub(r"[^A-Za-z0-9_.+#-]", "_", text)
    if len(text) > 40:  # names a run directory: keep it readable, and distinct by a hash of the value
        text = text[:31] + "~" + hashlib.sha256(repr(value).encode()).hexdigest()[:8]
    return text


def _short(path: str) -> str:
    """A path's last key, or for a `type` the section it chooses (`weighting.type` -> `weighting`)."""
    keys = path.split(".")
    return keys[-2] if keys[-1] == "type" and len(keys) > 1 else keys[-1]


TOP_LEVEL = ("seed", "name", "version")  # a nested key of one of these names is qualified (`digits.seed`)


def _override_value(value: Any) -> str:
    """A label for an override's value that tells different values apart: scalars as written, a
    list of scalars joined with '+', a mapping by its type (and a hash of the rest), anything longer
    than 40 characters shortened with a hash of the whole value."""
    digest = hashlib.sha256(repr(value).encode()).hexdigest()[:8]
    if isinstance(value, dict):
        rest = {k: v for k, v in value.items() if k != "type"}
        text = str(value.get("type", "+".join(str(k) for k in value))) + (f"~{digest}" if rest and "type" in value else "")
    elif isinstance(value, list):
        text = "+".join(str(v) for v in value) if all(not isinstance(v, (dict, list)) for v in value) else f"list~{digest}"
    else:
        text = str(value)
    text = re.sub(r"[^A-Za-z0-9_.+#~-]", "_", text)
    return text if len(text) <= 40 else text[:31] + "~" + digest


def override_label(overrides: list[str], matrix_paths: list[str] | tuple = ()) -> str:
    """What `--set` changed, as a short label for run directories and comparisons:
    `weighting.type=uw` -> `weighting=uw` (a `type` is named by its section), `training.optimizer.lr=0.01`
    -> `lr=0.01`; names that collide (with each other or the matrix's) keep their last two keys.
    Overrides of a path the matrix sets are left out (validate refuses them)."""
    chosen = []
    for text in overrides:
        path, value = parse_override(text)
        dotted = ".".join(str(p) for p in path)
        if not under_matrix(dotted, matrix_paths):
            chosen.append((dotted, value))
    names = [_short(d) for d, _ in chosen]
    taken = names + [_short(m) for m in matrix_paths]
    parts = []
    for (dotted, value), name in zip(chosen, names):
        keys = dotted.split(".")
        if (taken.count(name) > 1 or name in TOP_LEVEL) and len(keys) > 1:
            name = ".".join(keys[-3:-1] if keys[-1] == "type" else keys[-2:])
        parts.append(f"{name}={_override_value(value)}")
    return ",".join(parts)


def under_matrix(dotted: str, matrix_paths: list[str] | tuple) -> str | None:
    """The matrix path that sets `dotted` (or a part of it, or a section it is in), if any."""
    return next((m for m in matrix_paths if dotted == m or dotted.startswith(m + ".") or m.startswith(dotted + ".")), None)


def expand_matrix(doc: Document) -> tuple[list[Variant], dict[str, list[Any]]]:
    """One Variant per combination of the matrix (or the document itself when there is none).

    Returns the variants and the matrix as written (paths -> values), for the checks.
    """
    data = doc.data
    base_name = str(data.get("name", "spec")) if isinstance(data, dict) else "spec"
    if not isinstance(data, dict) or "matrix" not in data:
        return [Variant(base_name, "", doc)], {}
    matrix = data.pop("matrix")
    if not isinstance(matrix, dict) or not matrix or not all(isinstance(v, list) and v for v in matrix.values()):
        data["matrix"] = matrix  # leave it for the schema to report precisely
        return [Variant(base_name, "", doc)], {}
    paths = list(matrix)
    short = {p: _short(p) for p in paths}
    if len(set(short.values())) < len(paths):  # `weighting.type` and `model.sharing.type` both end in `type`
        short = {p: ".".join(p.split(".")[-2:]) for p in paths}
    variants = []
    for combo in itertools.product(*(list(enumerate(matrix[p])) for p in paths)):
        variant = Document(doc.file, copy.deepcopy(data), dict(doc.keys), dict(doc.values), list(doc.diagnostics))
        labels = []
        for p, (i, value) in zip(paths, combo):
            where = doc.value_at(("matrix", p, i))
            subs = {q[3:]: loc for q, loc in doc.values.items() if q[:3] == ("matrix", p, i) and len(q) > 3}
            problem = _set(variant, [int(s) if s.isdigit() else s for s in p.split(".")], copy.deepcopy(value), where, subs)
            if problem:
                variant.error(doc.key_at(("matrix", p)), "unknown-path", f"matrix.{p}", problem)
            labels.append(f"{short[p]}={_value_label(value, i)}")
        label = ",".join(labels)
        variants.append(Variant(f"{base_name}[{label}]", label, variant))
    for table in (doc.keys, doc.values):
        for p in [p for p in table if p[:1] == ("matrix",)]:
            for v in variants:
                getattr(v.doc, "keys" if table is doc.keys else "values").setdefault(p, table[p])
    return variants, matrix
