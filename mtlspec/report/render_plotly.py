"""Figures (report/figures.py) as interactive Plotly charts: hover for values, drag to zoom,
click a legend entry to hide or show its series. The HTML pages embed plotly.js once, inline
(`script()`), so a report opens without a network (about 4.8 MB a page, the price of that).

Plotly is used rather than hand-written JavaScript: it is maintained, renders every chart kind
here (lines, stacked bars, heatmaps) and writes self-contained HTML.
"""

from __future__ import annotations

from typing import Any

from mtlspec.report.figures import Figure, Panel, rows_of

PIXELS_PER_INCH = 90
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def script() -> str:
    """plotly.js itself, for one inline <script> per page."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def chart(figure: Figure) -> str:
    """The figure as one <div> with its drawing script (plotly.js must be on the page)."""
    return build(figure).to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{figure.name}",
                                 config={"displaylogo": False, "responsive": True})


def build(figure: Figure) -> Any:
    from plotly.subplots import make_subplots

    rows, columns = rows_of(figure), figure.columns
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=[p.title for p in figure.panels] if len(figure.panels) > 1 else None,
                        horizontal_spacing=0.08 if columns > 1 else 0.02, vertical_spacing=min(0.25, 0.6 / rows) if rows > 1 else 0.1)
    named: set[str] = set()
    for n, panel in enumerate(figure.panels):
        row, col = n // columns + 1, n % columns + 1
        for trace in _traces(panel, legend=len(figure.panels) == 1):
            if figure.shared_legend:  # one entry per series name; clicking it hides that series in every panel
                trace.update(legendgroup=trace.name, showlegend=trace.name not in named)
                named.add(trace.name)
            fig.add_trace(trace, row=row, col=col)
        _axes(fig, panel, row, col)
    if figure.width:  # a square heatmap stays square
        fig.update_layout(width=int(figure.width * PIXELS_PER_INCH) + 80)
    stacked = any(p.kind == "stacked" for p in figure.panels)
    fig.update_layout(title={"text": figure.title, "font": {"size": 14}}, height=int(figure.height * rows * PIXELS_PER_INCH) + 60,
                      margin={"l": 60, "r": 20, "t": 60, "b": 50}, barmode="stack" if stacked else None,
                      hovermode="closest", template="plotly_white", showlegend=len(figure.panels) == 1 or figure.shared_legend)
    return fig


def _traces(panel: Panel, legend: bool) -> list[Any]:
    import plotly.graph_objects as go

    colour = lambda n: PALETTE[n % len(PALETTE)]  # noqa: E731
    if panel.kind == "heatmap":
        if panel.counts is None:  # many classes: the classes and the share only
            return [go.Heatmap(z=panel.matrix, x=panel.categories, y=panel.categories, colorscale="Blues", zmin=0, zmax=1,
                               hovertemplate="true %{y}, predicted %{x}<br>share of the row: %{z:.3f}<extra></extra>")]
        text = [[f"true {t}, predicted {p}: {c}" for p, c in zip(panel.categories, row)] for t, row in zip(panel.categories, panel.counts)]
        return [go.Heatmap(z=panel.matrix, x=panel.categories, y=panel.categories, colorscale="Blues", zmin=0, zmax=1,
                           text=text, hovertemplate="%{text}<br>share of the row: %{z:.3f}<extra></extra>")]
    if panel.kind == "hbars":
        return [go.Bar(x=s.x, y=s.y, orientation="h", name=s.name, marker_color=colour(s.colour),
                       hovertemplate="%{y}: %{x:.4f}<extra></extra>") for s in panel.series]
    if panel.kind == "stacked":
        return [go.Bar(x=s.x, y=s.y, name=s.name, marker_color=colour(s.colour), hovertemplate="epoch %{x}: %{y:.2f} s<extra>%{fullData.name}</extra>")
                for s in panel.series]
    traces = []
    for s in panel.series:
        mode = {"line": "lines", "dashed": "lines+markers", "faint": "lines", "points": "lines+markers"}[s.style]
        if s.labels:
            mode = "markers+text"
        traces.append(go.Scatter(x=s.x, y=s.y, name=s.name, mode=mode, text=s.labels, textposition="top center", cliponaxis=not s.labels,
                                 line={"color": colour(s.colour), "dash": "dash" if s.style == "dashed" else None, "width": 1 if s.style == "faint" else 2},
                                 opacity=0.6 if s.style == "faint" else 1.0,
                                 showlegend=legend, hovertemplate=f"{s.name}<br>%{{x}}: %{{y:.4g}}<extra></extra>"))
    return traces


def _axes(fig: Any, panel: Panel, row: int, col: int) -> None:
    fig.update_xaxes(title_text=panel.xlabel, row=row, col=col)
    fig.update_yaxes(title_text=panel.ylabel, row=row, col=col, type="log" if panel.log_y else None,
                     range=list(panel.y_range) if panel.y_range else None)
    if panel.kind == "heatmap":
        fig.update_yaxes(autorange="reversed", row=row, col=col)
    if panel.kind == "hbars":
        fig.update_yaxes(autorange="reversed", row=row, col=col)
    labelled = [s for s in panel.series if s.labels]
    if labelled:  # room for the labels beside the outermost points
        xs = [v for s in labelled for v in s.x if v is not None]
        ys = [v for s in labelled for v in s.y if v is not None]
        for values, update in ((xs, fig.update_xaxes), (ys, fig.update_yaxes)):
            low, high = min(values), max(values)
            pad = 0.25 * (high - low) if high > low else 0.05 * max(abs(high), 1e-3)
            update(range=[low - pad, high + pad], row=row, col=col)
    if panel.zero_line:
        fig.add_hline(y=0.0, line_width=1, line_color="black", row=row, col=col)
