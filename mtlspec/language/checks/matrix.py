"""Rules on `matrix`: every path names a field of the language that may vary."""

from __future__ import annotations

from typing import Any

from mtlspec.language.checks.common import Finding
from mtlspec.language.diagnose import did_you_mean
from mtlspec.language.root import Spec
from mtlspec.language.schema_walk import resolve

FIXED = ("matrix", "extends", "version")  # what the loader itself reads cannot vary


def check_matrix(matrix: Any) -> list[Finding]:
    out: list[Finding] = []
    if not isinstance(matrix, dict):
        return out
    for dotted in matrix:
        segments = str(dotted).split(".")
        if segments[0] in FIXED:
            out.append(Finding(("matrix", dotted), "unknown-path", f"'{segments[0]}' cannot vary in a matrix", "key"))
            continue
        exists, index, allowed = resolve(Spec, segments)
        if not exists:
            bad = segments[index]
            out.append(Finding(("matrix", dotted), "unknown-path",
                               f"'{dotted}' names no field: '{bad}' is not a key there{did_you_mean(bad, allowed)}", "key"))
    return out
