"""Prints validation results as text (diagnostics and a summary table), JSON, or GitHub annotations."""

from __future__ import annotations

import json
import sys

from mtlspec.errors import Diagnostic, printable
from mtlspec.language.validate import Result


def _unique(results: list[Result]) -> list[Diagnostic]:
    """Diagnostics in order, each once: a matrix repeats the same problem in every combination."""
    seen: dict[Diagnostic, None] = {}
    for result in results:
        for d in result.diagnostics:
            seen.setdefault(d)
    return list(seen)


def to_json(results: list[Result], strict: bool) -> dict:
    return {
        "valid": all(r.ok(strict) for r in results),
        "results": [
            {"file": r.file, "spec": r.name, "valid": r.ok(strict), "diagnostics": [d.to_dict() for d in r.diagnostics]}
            for r in results
        ],
    }


def render_validation(results: list[Result], fmt: str, strict: bool) -> None:
    if fmt == "json":
        sys.stdout.write(json.dumps(to_json(results, strict), indent=2) + "\n")
        return
    if fmt == "github":
        for d in _unique(results):
            print(d.github())
        bad = sum(not r.ok(strict) for r in results)
        print(f"mtlspec validate: {len(results) - bad} valid, {bad} invalid")
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True, emoji=False)  # "x.yaml:100:3" must not become "x.yaml💯3"
    for d in _unique(results):
        style = "red" if d.severity == "error" else "yellow"
        console.print(d.format(), style=style, markup=False)
    table = Table(title="mtlspec validate")
    for column in ("file", "spec", "status", "errors", "warnings"):
        table.add_column(column)
    for r in results:
        status = "[green]valid[/]" if r.ok(strict) else "[red]invalid[/]"
        table.add_row(escape(printable(r.file)), escape(printable(r.name)), status, str(len(r.errors)), str(len(r.warnings)))
    console.print(table)
    bad = sum(not r.ok(strict) for r in results)
    console.print(f"{len(results)} spec(s): {len(results) - bad} valid, {bad} invalid", markup=False)
