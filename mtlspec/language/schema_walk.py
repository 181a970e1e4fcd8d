"""Walks the spec's pydantic types along a path: which keys are allowed where, which paths exist."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union

from pydantic import BaseModel


def _strip(t: Any) -> Any:
    """Drop Annotated wrappers and a None alternative: `Annotated[X | None, ...]` -> X."""
    while True:
        origin = typing.get_origin(t)
        if origin is typing.Annotated:
            t = typing.get_args(t)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in typing.get_args(t) if a is not type(None)]
            if len(members) == 1:
                t = members[0]
            else:
                return t
        else:
            return t


def _union_members(t: Any) -> list[Any]:
    t = _strip(t)
    if typing.get_origin(t) in (Union, types.UnionType):
        return [_strip(a) for a in typing.get_args(t) if a is not type(None)]
    return [t]


def _tag_of(model: Any) -> str | None:
    if isinstance(model, type) and issubclass(model, BaseModel) and "type" in model.model_fields:
        ann = model.model_fields["type"].annotation
        if typing.get_origin(ann) is Literal and len(typing.get_args(ann)) == 1:
            return typing.get_args(ann)[0]
    return None


def _step(t: Any, seg: Any) -> list[Any]:
    """The types reached from `t` by one path segment (several where a union is open)."""
    out = []
    for member in _union_members(t):
        if isinstance(member, type) and issubclass(member, BaseModel):
            if isinstance(seg, str) and seg in member.model_fields:
                out.append(member.model_fields[seg].annotation)
        elif typing.get_origin(member) is dict and isinstance(seg, str):
            out.append(typing.get_args(member)[1])
        elif typing.get_origin(member) is list and (isinstance(seg, int) or str(seg).isdigit()):
            out.append(typing.get_args(member)[0])
    return out


def _reached(root: type[BaseModel], loc: tuple) -> list[Any]:
    """The types at a pydantic error location (whose segments include union tags)."""
    current: list[Any] = [root]
    for seg in loc:
        chosen = [m for t in current for m in _union_members(t) if _tag_of(m) == seg]
        current = chosen if chosen else [n for t in current for n in _step(t, seg)]
    return current


def keys_after_tags(root: type[BaseModel], loc: tuple) -> list[str]:
    """Allowed keys at a pydantic error location (whose segments include union tags)."""
    keys: list[str] = []
    for t in _reached(root, loc):
        for member in _union_members(t):
            if isinstance(member, type) and issubclass(member, BaseModel):
                keys.extend(k for k in member.model_fields if k not in keys)
    return keys


def tags_at(root: type[BaseModel], loc: tuple) -> list[str]:
    """The `type` tags a tagged union accepts at a pydantic error location."""
    found: list[str] = []
    for t in _reached(root, loc):
        found.extend(tag for tag in sorted(tags(t)) if tag not in found)
    return found


def resolve(root: type[BaseModel], path: list[str]) -> tuple[bool, int, list[str]]:
    """Whether a dotted path names a field of the language, under any union member.

    Returns (exists, index of the first segment that does not, keys allowed there).
    """
    current: list[Any] = [root]
    for i, seg in enumerate(path):
        nxt = [n for t in current for n in _step(t, seg)]
        if not nxt:
            allowed: list[str] = []
            for t in current:
                for m in _union_members(t):
                    if isinstance(m, type) and issubclass(m, BaseModel):
                        allowed.extend(k for k in m.model_fields if k not in allowed)
            return False, i, allowed
        current = nxt
    return True, len(path), []


def tags(union: Any) -> frozenset[str]:
    """The `type` tags of a tagged union of sections (or the values of a Literal)."""
    stripped = _strip(union)
    if typing.get_origin(stripped) is Literal:
        return frozenset(typing.get_args(stripped))
    return frozenset(t for m in _union_members(union) if (t := _tag_of(m)) is not None)
