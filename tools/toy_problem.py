"""The two-task toy problem of Liu et al. (CAGrad, NeurIPS 2021): each gradient method's trajectory.

Two objectives over theta in R^2 whose average has a flat valley: methods that follow the mean
gradient stall or drift along one task, while conflict-aware methods reach the Pareto set.
Writes docs/img/toy_trajectories.png and prints where each run ends.
Run: .venv/bin/python tools/toy_problem.py [--steps N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace as NS

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mtlspec.language.weighting import GRADIENT_METHODS  # noqa: E402
from mtlspec.weighting import METHODS  # noqa: E402

LOWER = 5e-6
INITS = [(-8.5, 7.5), (-8.5, -5.0), (9.0, 9.0)]
DEFAULTS = {  # the spec language's defaults for each method
    "gradnorm": {"alpha": 1.5}, "mgda": {"normalization": "none"}, "graddrop": {"leak": 0.0}, "gradvac": {"beta": 0.01},
    "cagrad": {"c": 0.4, "rescale": 1}, "nash_mtl": {"update_weights_every": 1, "optim_niter": 20, "max_norm": 0.0},
    "db_mtl": {"beta": 0.9, "beta_sigma": 0.5}, "fairgrad": {"alpha": 1.0},
}


def objectives(theta: torch.Tensor) -> torch.Tensor:
    x1, x2 = theta[0], theta[1]
    f1 = torch.clamp((0.5 * (-x1 - 7) - torch.tanh(-x2)).abs(), LOWER).log() + 6
    f2 = torch.clamp((0.5 * (-x1 + 3) + torch.tanh(-x2) + 2).abs(), LOWER).log() + 6
    c1 = torch.clamp(torch.tanh(x2 * 0.5), 0)
    f1_sq = ((-x1 + 7).pow(2) + 0.1 * (-x2 - 8).pow(2)) / 10 - 20
    f2_sq = ((-x1 - 7).pow(2) + 0.1 * (-x2 - 8).pow(2)) / 10 - 20
    c2 = torch.clamp(torch.tanh(-x2 * 0.5), 0)
    return torch.stack([f1 * c1 + f1_sq * c2, f2 * c1 + f2_sq * c2])


def trajectory(name: str, start: tuple[float, float], steps: int, lr: float) -> torch.Tensor:
    torch.manual_seed(0)
    theta = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    method = METHODS[name](["a", "b"], NS(space="params", **DEFAULTS.get(name, {}))) if name != "ew" else None
    optimizer = torch.optim.Adam([theta], lr=lr)
    points = [theta.detach().clone()]
    for _ in range(steps):
        f = objectives(theta)
        G = torch.stack([torch.autograd.grad(f[i], theta, retain_graph=True)[0] for i in range(2)])
        direction = G.mean(0) if method is None else method.aggregate(G, f.detach().abs() + 1e-8)
        theta.grad = direction
        optimizer.step()
        if method is not None:
            method.after_step(lambda: {})
        points.append(theta.detach().clone())
    return torch.stack(points)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=0.01)
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = ["ew", *[n for n in GRADIENT_METHODS if n not in ("gradnorm", "db_mtl")]]
    xs = torch.linspace(-10, 10, 200, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(xs, xs, indexing="xy"))
    mean = torch.stack([objectives(grid[:, i, j]).mean() for i in range(200) for j in range(200)]).reshape(200, 200)
    cols = 4
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    print("| method | " + " | ".join(f"start {s}" for s in INITS) + " |")
    print("|---|" + "---|" * len(INITS))
    for ax, name in zip(axes.flat, names):
        ax.contour(xs, xs, mean, levels=25, linewidths=0.5, cmap="Greys")
        ends = []
        for start in INITS:
            path = trajectory(name, start, args.steps, args.lr)
            ax.plot(path[:, 0], path[:, 1], lw=1.2)
            ax.plot(*path[0], "k.", ms=6)
            ax.plot(*path[-1], "r*", ms=8)
            f = objectives(path[-1])
            ends.append(f"({path[-1][0]:.2f}, {path[-1][1]:.2f}) L=({f[0]:.2f}, {f[1]:.2f})")
        ax.set_title(name, fontsize=10)
        ax.set_xlim(-10, 10)
        ax.set_ylim(-10, 10)
        print(f"| {name} | " + " | ".join(ends) + " |")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    out = REPO / "docs" / "img" / "toy_trajectories.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"\nwrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
