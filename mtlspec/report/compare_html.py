"""The HTML comparison: the table, a Pareto plot of two chosen metrics and bars of Δm, in one file."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from mtlspec.report.compare import Row, best, cell, columns, delta_columns, differences
from mtlspec.report.delta_m import DEFINITION

TEMPLATES = Path(__file__).resolve().parent / "templates"  # package data: found in a wheel install too


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def plots(rows: list[Row], pareto: tuple[str, str] | None) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    out = {}
    cols = columns(rows)
    x, y = pareto if pareto else (cols[0], cols[1] if len(cols) > 1 else cols[0])
    fig, ax = plt.subplots(figsize=(5, 4))
    for row in rows:
        tx, mx = x.split(".", 1)
        ty, my = y.split(".", 1)
        if mx in row.metrics.get(tx, {}) and my in row.metrics.get(ty, {}):
            ax.scatter(row.metrics[tx][mx], row.metrics[ty][my])
            ax.annotate(row.label, (row.metrics[tx][mx], row.metrics[ty][my]), fontsize=7)
    ax.set(xlabel=x, ylabel=y, title="Pareto view")
    fig.tight_layout()
    out["pareto"] = _png(fig)
    plt.close(fig)
    deltas = [(r.label, r.delta_m) for r in rows if r.delta_m is not None]
    if deltas:
        fig, ax = plt.subplots(figsize=(5, 0.4 * len(deltas) + 1))
        ax.barh([d[0] for d in deltas], [d[1] for d in deltas], color=["tab:green" if d[1] >= 0 else "tab:red" for d in deltas])
        ax.axvline(0, color="black", lw=0.8)
        ax.set(xlabel="Δm (%)", title="Δm against the baseline")
        fig.tight_layout()
        out["delta_m"] = _png(fig)
        plt.close(fig)
    return out


def to_html(rows: list[Row], with_delta: bool, pareto: tuple[str, str] | None) -> str:
    import jinja2

    cols = columns(rows)
    bests = {c: best(rows, c) for c in cols}
    delta_names, delta_cells = delta_columns(rows) if with_delta else ([], [[] for _ in rows])
    table = [[row.label] + [cell(row, c, bests[c]).replace("**", "") for c in cols] + [t for t, _ in d] for row, d in zip(rows, delta_cells)]
    bold = [[False] + [cell(row, c, bests[c]).startswith("**") for c in cols] + [b for _, b in d] for row, d in zip(rows, delta_cells)]
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True)
    arrows = [("↑" if next(r.higher[c] for r in rows if c in r.higher) else "↓") for c in cols]
    return env.get_template("compare.html.j2").render(
        columns=cols, arrows=arrows, table=table, bold=bold, rows=rows, with_delta=with_delta, delta_names=delta_names,
        definition=DEFINITION, notes=differences(rows), images=plots(rows, pareto))
