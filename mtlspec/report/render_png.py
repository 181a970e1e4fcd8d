"""Figures (report/figures.py) drawn as PNGs with matplotlib: the static charts of report.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtlspec.report.figures import Figure, Panel, rows_of


def write_pngs(figures: list[Figure], folder: Path) -> list[str]:
    """One PNG per figure in folder; returns their file names."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for figure in figures:
        fig = draw(figure)
        fig.tight_layout()
        fig.savefig(folder / f"{figure.name}.png", dpi=100)
        plt.close(fig)
        written.append(f"{figure.name}.png")
    return written


def draw(figure: Figure) -> Any:
    from matplotlib import pyplot as plt

    rows, columns = rows_of(figure), figure.columns
    width = figure.width or (8 if columns == 1 else 3 * columns)
    fig, axes = plt.subplots(rows, columns, figsize=(width, figure.height * rows), squeeze=False)
    for ax, panel in zip(axes.flat, figure.panels):
        _panel(ax, panel, small=len(figure.panels) > 1, shared=figure.shared_legend)
    for ax in list(axes.flat)[len(figure.panels):]:
        ax.set_visible(False)
    if figure.shared_legend:  # one legend for the series every panel shares
        handles = {h.get_label(): h for ax in axes.flat for h in ax.get_lines()}
        fig.legend(list(handles.values()), list(handles), fontsize=7, loc="lower center", ncol=min(4, len(handles)))
    if len(figure.panels) > 1:
        fig.suptitle(figure.title, fontsize=10)
    return fig


def _panel(ax: Any, panel: Panel, small: bool, shared: bool = False) -> None:
    from matplotlib import pyplot as plt
    from matplotlib.ticker import MaxNLocator

    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = lambda n: colours[n % len(colours)]  # noqa: E731
    if panel.kind == "heatmap":
        image = ax.imshow(panel.matrix, cmap="Blues", vmin=0.0, vmax=1.0)
        if len(panel.categories) <= 60:  # class names while they can be read; the pattern alone above
            ticks = range(len(panel.categories))
            ax.set_xticks(list(ticks), panel.categories, fontsize=7, rotation=90 if len(panel.categories) > 6 else 0)
            ax.set_yticks(list(ticks), panel.categories, fontsize=7)
        if len(panel.categories) <= 12 and panel.counts:  # counts in the cells while they are readable
            for i, row in enumerate(panel.counts):
                for j, count in enumerate(row):
                    ax.text(j, i, str(count), ha="center", va="center", fontsize=6, color="white" if panel.matrix[i][j] > 0.5 else "black")
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    elif panel.kind == "hbars":
        for s in panel.series:
            ax.barh(s.y, s.x, color=colour(s.colour))
            ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=7)
    elif panel.kind == "stacked":
        bottom = None
        for s in panel.series:
            ax.bar(s.x, s.y, bottom=bottom, label=s.name, color=colour(s.colour))
            bottom = s.y if bottom is None else [a + b for a, b in zip(bottom, s.y)]
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    else:
        for s in panel.series:
            style = {"line": {}, "dashed": {"linestyle": "--", "marker": "o", "markersize": 3}, "faint": {"linewidth": 0.8, "alpha": 0.6},
                     "points": {"marker": "o"}}[s.style]
            ax.plot(s.x, s.y, label=s.name, color=colour(s.colour), **style)
            for x, y, text in zip(s.x, s.y, s.labels or []):
                ax.annotate(text, (x, y), fontsize=7)
        if panel.log_y:
            ax.set_yscale("log")
        if len(panel.series) > 1 and not shared:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the curves, not over them
    if panel.zero_line:
        ax.axhline(0.0, color="black", lw=0.7)
    if panel.y_range:
        ax.set_ylim(*panel.y_range)
    ax.set_title(panel.title, fontsize=9 if small else 11)
    ax.set_xlabel(panel.xlabel, fontsize=8 if small else 10)
    ax.set_ylabel(panel.ylabel, fontsize=8 if small else 10)
    if small:
        ax.tick_params(labelsize=7)
        if panel.xlabel == "epoch":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
