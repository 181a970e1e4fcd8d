"""What every rule shares: a Finding (a problem at a path), and safe reads of raw spec data.

Each rule reads the raw data defensively, so it runs even when other parts of the spec are
malformed: a person sees every problem at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Finding:
    path: tuple
    code: str
    message: str
    at: str = "value"  # "key" or "value": which to point at
    severity: str = "error"


def get_in(data: Any, *path: Any) -> Any:
    """The value at a path through nested mappings, or None where the path breaks off."""
    for seg in path:
        if not isinstance(data, dict):
            return None
        data = data.get(seg)
    return data


def tag(node: Any) -> str | None:
    """The `type` tag of a mapping, when it is a string."""
    value = node.get("type") if isinstance(node, dict) else None
    return value if isinstance(value, str) else None


def tag_or_default(node: Any, default: str) -> str | None:
    """The `type` of a section that may be absent (then the language's default)."""
    return tag(node) if isinstance(node, dict) else default


def entries(value: Any) -> dict:
    """The entries of a mapping whose values are mappings (datasets, tasks ...); {} for anything else."""
    return {k: v for k, v in value.items() if isinstance(v, dict)} if isinstance(value, dict) else {}
