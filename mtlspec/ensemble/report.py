"""An ensemble's reports: ensemble.json, ensemble.md and (when the spec asks for html) a
self-contained ensemble.html with a chart of each metric's gain over the best member."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

from mtlspec.io import write_text_atomic
from mtlspec.report.run_report import TEMPLATES


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# Ensemble: {report['name']}", "", f"{len(report['members'])} members, evaluated on the `{report['split']}` split.", "",
             "| task | combined by | metric | " + " | ".join(f"member {i + 1}" for i in range(len(report["members"]))) + " | ensemble | gain over best | gain over mean |",
             "|---|---|---|" + "---|" * (len(report["members"]) + 3)]
    for task, t in report["tasks"].items():
        for metric, value in t["metrics"].items():
            members = " | ".join(f"{m.get(metric, float('nan')):.4f}" for m in t["members"])
            g = t["gain"][metric]
            lines.append(f"| {task} | {t['combined_by']} | {metric} | {members} | {value:.4f} | {g['over_best_member']:+.4f} | {g['over_mean_member']:+.4f} |")
    lines += ["", "Gains are signed so that positive is better, whichever direction the metric improves in."]
    for task, t in report["tasks"].items():
        boosting = t.get("boosting")
        if not boosting:
            continue
        lines += ["", f"## Boosting: {task}", "", "The ensemble after each member (staged):", "",
                  "| members | " + " | ".join(t["metrics"]) + " |", "|---|" + "---|" * len(t["metrics"])]
        for m, stage in enumerate(boosting["staged"]):
            lines.append(f"| {m + 1} | " + " | ".join(f"{stage.get(k, float('nan')):.4f}" for k in t["metrics"]) + " |")
        if "member_weights" in boosting:
            lines += ["", "SAMME member weights: " + ", ".join(f"{a:.3f}" for a in boosting["member_weights"])
                      + "; weighted training errors: " + ", ".join(f"{e:.3f}" for e in boosting["training_errors"]) + "."]
        else:
            lines += ["", f"Members fit residuals (initial value {boosting['initial_value']:.4f}, learning rate {boosting['learning_rate']}):"
                      " each member column scores that initial value plus the member's fit alone."]
        if boosting["stopped"]:
            lines += ["", f"Boosting stopped for this task: {boosting['stopped']}."]
    return "\n".join(lines) + "\n"


def _relative(value: float, gain: float, higher: bool) -> float:
    """A gain as a percentage of the reference it is measured from (the best or the mean member)."""
    reference = value - (gain if higher else -gain)
    return 100.0 * gain / abs(reference) if reference else 0.0


def gain_chart(report: dict[str, Any]) -> str:
    """A PNG (data URI): every metric's gain over the best and over the mean member, in percent of
    that member's value (metrics of different scales side by side)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = [(f"{task}.{m}", v, t["gain"][m], t["higher_is_better"][m]) for task, t in report["tasks"].items() for m, v in t["metrics"].items()]
    labels = [r[0] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.3 * len(labels) + 1.2), sharey=True)
    for ax, key, title in zip(axes, ("over_best_member", "over_mean_member"), ("gain over the best member (%)", "gain over the mean member (%)")):
        values = [_relative(v, g[key], higher) for _, v, g, higher in rows]
        ax.barh(labels, values, color=["tab:green" if v >= 0 else "tab:red" for v in values])
        ax.axvline(0, color="black", lw=0.8)
        ax.set(title=title)
    axes[0].invert_yaxis()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def write_ensemble_reports(run_dir: Path, report: dict[str, Any], formats: list[str], plots: bool) -> None:
    write_text_atomic(run_dir / "ensemble.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(run_dir / "ensemble.md", markdown(report))
    if "html" in formats:
        import jinja2

        env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True)
        images = {"gains": gain_chart(report)} if plots else {}
        html = env.get_template("ensemble.html.j2").render(r=report, images=images, nan=float("nan"))
        write_text_atomic(run_dir / "ensemble.html", html)
