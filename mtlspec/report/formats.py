"""A comparison in each output format `mtlspec compare` offers: plain text within 80 columns,
markdown, JSON, and the self-contained HTML page."""

from __future__ import annotations

import json

from mtlspec.report.compare import Row, to_json, to_markdown, to_text
from mtlspec.report.compare_html import to_html


def render(rows: list[Row], fmt: str, with_delta: bool, pareto: tuple[str, str] | None = None) -> str:
    if fmt == "json":
        return json.dumps(to_json(rows, with_delta), indent=2) + "\n"
    if fmt == "html":
        return to_html(rows, with_delta, pareto)
    if fmt == "text":
        return to_text(rows, with_delta)
    return to_markdown(rows, with_delta)
