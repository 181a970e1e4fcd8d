"""Writes mtlspec/data/digit_attributes.csv, the class x attribute table shipped for multidigits'
zero-shot tasks, and (with --splits) probes how well each split of three unseen digits can be
recognised from it.

Each attribute is a named shape statistic measured on every one of scikit-learn's 1,797 digit scans
(the ones multidigits draws) and averaged over the scans of a class, as CUB's class attribute table
averages its per-image annotations: loops (enclosed background regions), a loop in the top or the
bottom half, the share of ink in the top half and in the left half, left-right and top-bottom
symmetry, the width / height of the inked box, and the share of ink in the centre columns, in the
top two rows, in the bottom two rows and in the middle rows. A person could write such a table
(the digit 8 has two loops, a 1 is a centre column); measured, it agrees with the pixels the model
sees. Deterministic: the scans and the arithmetic fix every value.

    python tools/digit_attributes.py            # rewrite the CSV
    python tools/digit_attributes.py --splits   # ESZSL in closed form on raw pixels for all 120 splits

The probe is a linear model (Romera-Paredes & Torr's closed form on the 64 pixels, the table
standardised per attribute): what a model that learns nothing but a linear map can do.
"""

from __future__ import annotations

import argparse
import csv
import itertools
from pathlib import Path

import numpy as np
from scipy import ndimage
from sklearn.datasets import load_digits

OUT = Path(__file__).resolve().parent.parent / "mtlspec" / "data" / "digit_attributes.csv"
NAMES = ["loops", "loop_top", "loop_bottom", "ink_top", "ink_left", "symmetry_lr", "symmetry_tb", "aspect",
         "ink_centre_columns", "ink_top_rows", "ink_bottom_rows", "ink_middle_rows"]
INK = 0.3  # a pixel (of 16 grey levels, scaled to [0, 1]) above this is ink when loops are counted


def statistics(image: np.ndarray) -> list[float]:
    """The attributes of one 8 x 8 scan in [0, 1]."""
    ink = image.sum() + 1e-9
    inked = image > INK
    background, count = ndimage.label(~inked)
    border = set(np.unique(np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]])).tolist())
    loops = [k for k in range(1, count + 1) if k not in border]
    centres = [ndimage.center_of_mass(background == k)[0] for k in loops]
    rows, cols = np.nonzero(inked) if inked.any() else (np.array([0]), np.array([0]))
    return [len(loops), float(any(c < 3.5 for c in centres)), float(any(c >= 3.5 for c in centres)),
            image[:4].sum() / ink, image[:, :4].sum() / ink,
            1 - np.abs(image - image[:, ::-1]).sum() / (2 * ink), 1 - np.abs(image - image[::-1]).sum() / (2 * ink),
            (cols.max() - cols.min() + 1) / (rows.max() - rows.min() + 1),
            image[:, 3:5].sum() / ink, image[:2].sum() / ink, image[-2:].sum() / ink, image[3:5].sum() / ink]


def table() -> np.ndarray:
    pixels, digits = load_digits(return_X_y=True)
    measured = np.array([statistics(p.reshape(8, 8) / 16.0) for p in pixels])
    return np.round(np.array([measured[digits == d].mean(axis=0) for d in range(10)]), 3)


def write(values: np.ndarray) -> None:
    with open(OUT, "w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["class", *NAMES])
        for digit, row in enumerate(values):
            out.writerow([digit, *(f"{v:.3f}" for v in row)])


def probe(values: np.ndarray) -> list[tuple[float, tuple[int, ...]]]:
    """Per-class ZSL top-1 among the unseen digits of ESZSL's closed form on pixels, for every split."""
    pixels, digits = load_digits(return_X_y=True)
    pixels = pixels / 16.0
    order = np.random.default_rng(0).permutation(len(digits))
    train, test = order[:1200], order[1200:]
    s = (values - values.mean(0)) / values.std(0)
    s = s / np.linalg.norm(s, axis=1, keepdims=True)
    out = []
    for unseen in itertools.combinations(range(10), 3):
        seen = [d for d in range(10) if d not in unseen]
        mask = np.isin(digits[train], seen)
        x, y = pixels[train][mask].T, digits[train][mask]
        targets = -np.ones((len(y), len(seen)))
        targets[np.arange(len(y)), [seen.index(d) for d in y]] = 1
        ss = s[seen].T
        v = np.linalg.solve(x @ x.T + np.eye(len(x)), x @ targets @ ss.T) @ np.linalg.inv(ss @ ss.T + np.eye(len(ss)))
        held = np.isin(digits[test], unseen)
        predicted = np.array(unseen)[(pixels[test][held] @ v @ s[list(unseen)].T).argmax(1)]
        truth = digits[test][held]
        out.append((float(np.mean([np.mean(predicted[truth == d] == d) for d in unseen])), unseen))
    return sorted(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", action="store_true", help="print the linear probe's ZSL top-1 for every split of three unseen digits")
    args = parser.parse_args()
    values = table()
    if args.splits:
        scores = probe(values)
        for score, unseen in scores:
            print(f"unseen {unseen}: {score:.3f}")
        print(f"mean over {len(scores)} splits: {np.mean([s for s, _ in scores]):.3f} (chance 0.333)")
        return
    write(values)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
