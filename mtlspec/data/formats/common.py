"""Helpers the readers share: image and JSON loading with clear errors, deterministic splits, file fingerprints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mtlspec.data.records import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SPLIT_FRACTIONS = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}


def read_image(path: Path, sample: str | int) -> np.ndarray:
    """An RGB uint8 array, or a DataError naming the file and the sample."""
    if not path.is_file():
        raise DataError("image file is missing", str(path), sample)
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"unreadable image ({exc.__class__.__name__})", str(path), sample) from None


def partition(count: int, split: str, seed: int) -> np.ndarray:
    """Indices of a split when the data has no split of its own: a seeded 80/10/10 partition."""
    order = np.random.default_rng([seed, 4099]).permutation(count)
    lo, hi = SPLIT_FRACTIONS[split]
    return np.sort(order[int(round(lo * count)) : int(round(hi * count))])


def carve(count: int, split: str, missing: set[str], seed: int) -> np.ndarray:
    """Indices of `split` in a training file that must also provide the splits in `missing`
    (they have no file of their own): each missing split is its part of the seeded partition,
    and training keeps everything no missing split took."""
    if split != "train":
        return partition(count, split, seed)
    taken = np.concatenate([partition(count, m, seed) for m in sorted(missing)] + [np.zeros(0, np.int64)])
    return np.setdiff1d(np.arange(count), taken)


def read_csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every non-blank row of a UTF-8 CSV file."""
    import csv
    import io

    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataError(f"line {line} is not UTF-8 text (byte {exc.start}); save the table as UTF-8", str(path)) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise DataError(f"line {reader.line_num}: not a valid CSV row ({exc})", str(path)) from None


def read_json(path: Path) -> object:
    """A UTF-8 JSON file's content, or a DataError naming the file."""
    import json

    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text (byte {exc.start})", str(path)) from None
    except ValueError as exc:
        raise DataError(f"not valid JSON ({exc})", str(path)) from None


def is_number(value: object) -> bool:
    """Whether a JSON value is a finite number (a bool is not)."""
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_number(raw: str) -> float | None:
    """A finite number written in a table cell, or None."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def file_stats(paths: list[Path]) -> list[tuple[str, int, int]]:
    """(name, size, mtime) of each file: enough for a fingerprint that changes when the data does."""
    out = []
    for p in paths:
        try:
            st = p.stat()
            out.append((str(p), st.st_size, int(st.st_mtime)))
        except OSError:
            out.append((str(p), -1, -1))
    return out
