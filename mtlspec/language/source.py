"""Safe YAML loading that keeps the line and column of every key and value.

A `Document` is plain data (dicts, lists, scalars) plus a map from each path to where its
key and value are written. Whatever the bytes hold (binary junk, tabs, alias bombs, deep
nesting, duplicate keys), loading returns diagnostics, never raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mtlspec.errors import Diagnostic

MAX_BYTES = 2 * 1024 * 1024
MAX_NODES = 100_000  # after alias expansion: stops "billion laughs" bombs
MAX_DEPTH = 50

PathKey = tuple  # a path into the data: ("tasks", "seg", "type"), list items by index


@dataclass(frozen=True)
class Location:
    file: str
    line: int  # 1-based
    col: int  # 1-based


@dataclass
class Document:
    """Plain data from one spec and where each key (`keys`) and value (`values`) is written."""

    file: str
    data: Any = None
    keys: dict[PathKey, Location] = field(default_factory=dict)
    values: dict[PathKey, Location] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def key_at(self, path: PathKey) -> Location:
        """Where the key of `path` is written, else its value, else the nearest enclosing one."""
        for end in range(len(path), -1, -1):
            sub = tuple(path[:end])
            if sub in self.keys:
                return self.keys[sub]
            if sub in self.values:
                return self.values[sub]
        return Location(self.file, 1, 1)

    def value_at(self, path: PathKey) -> Location:
        """Where the value of `path` is written, else the nearest enclosing key."""
        return self.values.get(tuple(path)) or self.key_at(path)

    def error(self, loc: Location, code: str, path: str, message: str) -> None:
        self.diagnostics.append(Diagnostic(loc.file, loc.line, loc.col, code, path, message))


class _TooComplex(Exception):
    def __init__(self, code: str, message: str, mark: yaml.Mark | None):
        self.code, self.message, self.mark = code, message, mark


_MERGE_TAG = "tag:yaml.org,2002:merge"
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:omap")


class _Builder:
    """Turns a composed YAML node tree into plain data, recording locations as it goes."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.nodes = 0
        self.constructor = yaml.SafeLoader("")

    def loc(self, node: yaml.Node) -> Location:
        return Location(self.doc.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node: yaml.Node, path: PathKey, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooComplex("too-large", f"more than {MAX_NODES} values (after expanding aliases)", node.start_mark)
        if depth > MAX_DEPTH:
            raise _TooComplex("too-deep", f"nested more than {MAX_DEPTH} levels deep", node.start_mark)
        self.doc.values.setdefault(path, self.loc(node))
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:
            raise _TooComplex("yaml-syntax", f"the tag {node.tag} is not allowed: specs are plain YAML", node.start_mark)
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        if node.tag not in self.constructor.yaml_constructors:
            raise _TooComplex("yaml-syntax", f"the tag {node.tag} is not allowed: specs are plain YAML", node.start_mark)
        try:
            return self.constructor.construct_object(node, deep=True)
        except Exception:  # `!!int abc`, `!!bool maybe`, `!!timestamp noon`: a tag the value does not fit
            raise _TooComplex("yaml-syntax", f"{node.value!r} is not a valid {node.tag.rsplit(':', 1)[-1]}", node.start_mark) from None

    def mapping(self, node: yaml.MappingNode, path: PathKey, depth: int) -> dict:
        out: dict[str, Any] = {}
        explicit: dict[str, Location] = {}
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for source in sources:
                    if isinstance(source, yaml.MappingNode):
                        merged.extend(source.value)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise _TooComplex("wrong-type", "a key must be a plain name, not a list or mapping", key_node.start_mark)
            key = str(key_node.value)
            where = self.loc(key_node)
            if key in explicit:
                first = explicit[key]
                dotted = ".".join(str(p) for p in path + (key,))
                self.doc.error(where, "duplicate-key", dotted, f"duplicate key '{key}' (first written at line {first.line})")
                continue
            explicit[key] = where
            self.doc.keys[path + (key,)] = where
            out[key] = self.build(value_node, path + (key,), depth + 1)
        for key_node, value_node in merged:  # `<<: *anchor` fills only keys not written explicitly
            key = str(key_node.value)
            if key not in out:
                self.doc.keys.setdefault(path + (key,), self.loc(key_node))
                out[key] = self.build(value_node, path + (key,), depth + 1)
        return out


def _compose(text: str) -> Any:
    """The YAML node tree: with libyaml's C parser when present (several times faster; the same
    nodes and marks), and again with the pure-Python parser when the text is not valid YAML, so
    error messages and positions are the same whichever parser is installed."""
    if getattr(yaml, "CSafeLoader", None) is not None:
        try:
            return yaml.compose(text, Loader=yaml.CSafeLoader)
        except yaml.YAMLError:
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


def parse_text(text: str, file: str) -> Document:
    """Parse YAML text into a Document; problems become diagnostics on the document."""
    doc = Document(file)
    if "\x00" in text:
        doc.error(Location(file, 1, 1), "not-text", "", "the file holds binary data, not YAML text")
        return doc
    try:
        node = _compose(text)
        doc.data = None if node is None else _Builder(doc).build(node, (), 0)
    except _TooComplex as exc:
        mark = exc.mark
        doc.error(Location(file, mark.line + 1, mark.column + 1) if mark else Location(file, 1, 1), exc.code, "", exc.message)
        doc.data = None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        if "'\\t'" in problem:
            problem = "a tab character here: YAML indents with spaces only"
        doc.error(Location(file, line, col), "yaml-syntax", "", problem or "invalid YAML")
        doc.data = None
    except yaml.YAMLError as exc:
        doc.error(Location(file, 1, 1), "yaml-syntax", "", str(exc).splitlines()[0] if str(exc) else "invalid YAML")
        doc.data = None
    except RecursionError:
        doc.error(Location(file, 1, 1), "too-deep", "", "the YAML is nested too deeply to read")
        doc.data = None
    return doc


def parse_file(path: Path, shown_as: str | None = None) -> Document:
    """Read and parse one spec file, refusing what is too big or not text."""
    file = shown_as or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            doc = Document(file)
            doc.error(Location(file, 1, 1), "too-large", "", f"the file is {size / 1e6:.1f} MB; a spec may be at most {MAX_BYTES // (1024 * 1024)} MB")
            return doc
        raw = path.read_bytes()
    except OSError as exc:
        doc = Document(file)
        doc.error(Location(file, 1, 1), "unreadable", "", f"cannot read the file: {exc.strerror or exc}")
        return doc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        doc = Document(file)
        doc.error(Location(file, 1, 1), "not-text", "", f"the file is not UTF-8 text (byte {exc.start})")
        return doc
    return parse_text(text, file)
