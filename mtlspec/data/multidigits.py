"""The embedded dataset: canvases of scikit-learn's bundled handwritten digit scans (no download).

Each canvas holds 1..K digits at random positions; a digit's depth sets its scale (nearer is
larger) and nearer digits occlude farther ones. Every sample carries labels for every task
type. Splits draw from disjoint pools of source scans. Generation is deterministic in its
parameters and cached on disk under a key of them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mtlspec.data.multidigits_text import TEXT_VERSION, canvas_text
from mtlspec.data.records import DataError, Record, fingerprint
from mtlspec.io import write_bytes_atomic
from mtlspec.language.data import DIGIT_CLASSES, most_digits, multidigits_classes

GENERATOR_VERSION = 2  # 2: each digit's visible pixels stored (instance masks); images and labels as in 1
SPLITS = ("train", "val", "test")
POOL_FRACTIONS = (0.7, 0.15, 0.15)  # of the 1,797 scans, per split
BACKGROUND_DEPTH = 1.0
NEAR, FAR = 0.3, 0.9  # digit depths (background is farther than any digit)
MIN_VISIBLE = 0.5  # a digit must keep this share of its ink visible after occlusion


@dataclass(frozen=True)
class MultiDigitsParams:
    canvas: int = 64
    min_objects: int = 1
    max_objects: int = 3
    split: str = "train"
    size: int = 4000
    seed: int = 0
    digits: tuple[int, ...] | None = None  # only these digits' scans (all ten when None)

    def described(self) -> dict:
        """The parameters as keys and fingerprints read them (`digits` only when chosen, so every
        earlier dataset keeps its key)."""
        out = asdict(self)
        if self.digits is None:
            del out["digits"]
        else:
            out["digits"] = sorted(self.digits)
        return out

    def key(self) -> str:
        blob = json.dumps({"version": GENERATOR_VERSION, **self.described()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cache_dir() -> Path:
    return Path(os.environ.get("MTLSPEC_CACHE", Path.home() / ".cache" / "mtlspec")) / "multidigits"


def _scans() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # ships its data inside the package

    digits = load_digits()
    return digits.images.astype(np.float32) / 16.0, digits.target.astype(np.int64)


def split_pools(n_scans: int, seed: int) -> dict[str, np.ndarray]:
    """Disjoint sets of scan indices per split, fixed by the seed."""
    order = np.random.default_rng([seed, 7919]).permutation(n_scans)
    bounds = np.cumsum([0] + [int(round(f * n_scans)) for f in POOL_FRACTIONS])
    bounds[-1] = n_scans
    return {name: np.sort(order[bounds[i] : bounds[i + 1]]) for i, name in enumerate(SPLITS)}


def _resize(scan: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upscaling of an 8x8 scan to size x size (pure numpy: the same bits everywhere)."""
    src = scan.shape[0]
    coords = (np.arange(size, dtype=np.float64) + 0.5) * src / size - 0.5
    coords = np.clip(coords, 0, src - 1)
    lo = np.floor(coords).astype(int)
    hi = np.minimum(lo + 1, src - 1)
    frac = coords - lo
    rows = scan[lo] * (1 - frac)[:, None] + scan[hi] * frac[:, None]
    return (rows[:, lo] * (1 - frac)[None, :] + rows[:, hi] * frac[None, :]).astype(np.float32)


def _background(rng: np.random.Generator, canvas: int) -> np.ndarray:
    """A smooth coloured texture: a few random plane waves plus fine noise."""
    yy, xx = np.mgrid[0:canvas, 0:canvas].astype(np.float32) / canvas
    image = np.zeros((canvas, canvas, 3), np.float32)
    for channel in range(3):
        for _ in range(3):
            fy, fx = rng.uniform(0.5, 4.0, size=2)
            phase = rng.uniform(0, 2 * np.pi)
            image[..., channel] += np.sin(2 * np.pi * (fy * yy + fx * xx) + phase)
    image = (image - image.min()) / max(float(np.ptp(image)), 1e-6)
    image = 20 + 60 * image + rng.normal(0, 6, image.shape)
    return image


def _compose(rng: np.random.Generator, scans: np.ndarray, labels: np.ndarray, pool: np.ndarray, p: MultiDigitsParams) -> Record:
    canvas = p.canvas
    for _attempt in range(100):
        count = int(rng.integers(p.min_objects, p.max_objects + 1))
        chosen = rng.choice(pool, size=count, replace=False)
        depths = np.sort(rng.uniform(NEAR, FAR, size=count))[::-1]  # far first: painter's order
        image = _background(rng, canvas)
        mask = np.zeros((canvas, canvas), np.int64)
        depth = np.full((canvas, canvas), BACKGROUND_DEPTH, np.float32)
        owner = np.full((canvas, canvas), -1, np.int64)
        inks, boxes = [], []
        for i, (scan_id, d) in enumerate(zip(chosen, depths)):
            size = max(8, int(round(canvas * (0.62 - 0.5 * d))))
            glyph = _resize(scans[scan_id], size)
            ink = glyph > 0.3
            if not ink.any():
                break
            y0, x0 = (int(v) for v in rng.integers(0, canvas - size + 1, size=2))
            colour = rng.uniform(140, 255, size=3)
            region = image[y0 : y0 + size, x0 : x0 + size]
            alpha = np.clip(glyph, 0, 1)[..., None]
            region[:] = region * (1 - alpha) + colour * alpha
            mask[y0 : y0 + size, x0 : x0 + size][ink] = labels[scan_id] + 1
            depth[y0 : y0 + size, x0 : x0 + size][ink] = d
            owner[y0 : y0 + size, x0 : x0 + size][ink] = i
            ys, xs = np.nonzero(ink)
            boxes.append([x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1])
            inks.append(int(ink.sum()))
        else:
            visible = [int((owner == i).sum()) for i in range(count)]
            if all(v >= MIN_VISIBLE * n for v, n in zip(visible, inks)):
                digits = labels[chosen]
                return {
                    "image": np.clip(image, 0, 255).astype(np.uint8),
                    "mask": mask,
                    "depth": depth,
                    "boxes": np.asarray(boxes, np.float32).reshape(-1, 4),
                    "box_labels": digits.astype(np.int64),
                    "scan_ids": chosen.astype(np.int64),
                    "owners": np.where(owner < 0, 255, owner).astype(np.uint8),
                }
    raise DataError(f"could not place {p.min_objects} to {p.max_objects} digits on a {canvas} px canvas in 100 tries "
                    f"(at most {most_digits(canvas)} fit reliably); use a larger canvas or fewer objects", f"multidigits:{p.split}")


def generate(p: MultiDigitsParams) -> dict[str, np.ndarray]:
    """Generate one split as packed arrays (what the cache stores)."""
    scans, labels = _scans()
    pool = split_pools(len(scans), p.seed)[p.split]
    if p.digits is not None:  # the same split pools as with all ten digits, less the other digits' scans
        pool = pool[np.isin(labels[pool], list(p.digits))]
    rng = np.random.default_rng([p.seed, SPLITS.index(p.split), p.canvas, p.min_objects, p.max_objects])
    samples = [_compose(rng, scans, labels, pool, p) for _ in range(p.size)]
    offsets = np.cumsum([0] + [len(s["boxes"]) for s in samples])
    return {
        "images": np.stack([s["image"] for s in samples]),
        "masks": np.stack([s["mask"] for s in samples]).astype(np.uint8),
        "depths": np.stack([s["depth"] for s in samples]).astype(np.float32),
        "boxes": np.concatenate([s["boxes"] for s in samples]),
        "box_labels": np.concatenate([s["box_labels"] for s in samples]),
        "scan_ids": np.concatenate([s["scan_ids"] for s in samples]),
        "owners": np.stack([s["owners"] for s in samples]),  # which digit (0..n-1, 255 none) each pixel shows
        "offsets": offsets.astype(np.int64),
    }


def load(p: MultiDigitsParams) -> dict[str, np.ndarray]:
    """The split's arrays, from the on-disk cache when present, else generated and cached."""
    import io

    path = cache_dir() / f"{p.split}-{p.key()}.npz"
    if path.is_file():
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError):
            pass  # a damaged cache file is regenerated
    arrays = generate(p)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())
    return arrays


class MultiDigitsSource:
    """Records of one multidigits split, with labels for every task type."""

    kind = "multidigits"

    def __init__(self, name: str, params: MultiDigitsParams):
        self.name, self.params = name, params
        self.arrays = load(params)
        self.origin = f"generated from the {params.split} pool of digit scans (seed {params.seed})"

    def __len__(self) -> int:
        return len(self.arrays["images"])

    def fingerprint(self) -> str:
        return fingerprint(self.kind, {"version": GENERATOR_VERSION, "text": TEXT_VERSION, **self.params.described()})

    def record(self, index: int) -> Record:
        a = self.arrays
        lo, hi = a["offsets"][index], a["offsets"][index + 1]
        digits = a["box_labels"][lo:hi]
        present = np.zeros(DIGIT_CLASSES, np.float32)
        present[digits] = 1.0
        return {
            "image": a["images"][index],
            "mask": a["masks"][index].astype(np.int64),
            "depth": a["depths"][index],
            "boxes": a["boxes"][lo:hi],
            "box_labels": digits,
            "instance_masks": (a["owners"][index][None] == np.arange(hi - lo, dtype=np.uint8)[:, None, None]).astype(np.uint8),
            "labels": {
                "largest_digit": int(digits.max()),
                "smallest_digit": int(digits.min()),
                "num_digits": int(len(digits)),
                "present": present,
                "count": float(len(digits)),
                "mean_digit": float(digits.mean()),
                "digit_sum": float(digits.sum()),
            },
            "text": self.text(index),
            "meta": {"dataset": self.name, "index": index, "file": f"multidigits:{self.params.split}"},
        }

    def text(self, index: int) -> dict[str, str]:
        """The canvas's caption, question, answer and question type (data/multidigits_text.py)."""
        a = self.arrays
        lo, hi = a["offsets"][index], a["offsets"][index + 1]
        return canvas_text(a["box_labels"][lo:hi], a["boxes"][lo:hi], self.params.canvas, self.params.seed,
                           SPLITS.index(self.params.split), index)

    def label_classes(self, label: str) -> int:
        return multidigits_classes(label, self.params.max_objects)

    def box_classes(self) -> int:
        return DIGIT_CLASSES

    def box_names(self) -> list[str]:
        return [str(d) for d in range(DIGIT_CLASSES)]

    def mask_names(self) -> list[str]:
        return ["background", *self.box_names()]

    def label_names(self, label: str) -> list[str] | None:
        count = multidigits_classes(label, self.params.max_objects)
        return [str(v) for v in range(count)] if count else None

    def mask_classes(self) -> int:
        return multidigits_classes(None, self.params.max_objects)
