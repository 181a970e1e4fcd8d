"""The HTML comparison in one file: the table, and interactive charts (report/compare_figures.py):
two tasks' primary metrics with the Pareto front, Δm per run, the runs' training curves overlaid."""

from __future__ import annotations

from pathlib import Path

from mtlspec.report.compare import Row, best, cell, columns, delta_columns, differences
from mtlspec.report.delta_m import DEFINITION

TEMPLATES = Path(__file__).resolve().parent / "templates"  # package data: found in a wheel install too


def to_html(rows: list[Row], with_delta: bool, pareto: tuple[str, str] | None) -> str:
    import jinja2

    from mtlspec.report import render_plotly
    from mtlspec.report.compare_figures import comparison_figures

    figures = comparison_figures(rows, pareto)  # first: a bad --pareto is a usage error before anything is drawn
    cols = columns(rows)
    bests = {c: best(rows, c) for c in cols}
    delta_names, delta_cells = delta_columns(rows) if with_delta else ([], [[] for _ in rows])
    table = [[row.label] + [cell(row, c, bests[c]).replace("**", "") for c in cols] + [t for t, _ in d] for row, d in zip(rows, delta_cells)]
    bold = [[False] + [cell(row, c, bests[c]).startswith("**") for c in cols] + [b for _, b in d] for row, d in zip(rows, delta_cells)]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True)
    arrows = [("↑" if next(r.higher[c] for r in rows if c in r.higher) else "↓") for c in cols]
    return env.get_template("compare.html.j2").render(
        columns=cols, arrows=arrows, table=table, bold=bold, rows=rows, with_delta=with_delta, delta_names=delta_names,
        definition=DEFINITION, notes=differences(rows), charts=[render_plotly.chart(f) for f in figures],
        plotly=render_plotly.script() if figures else "")
