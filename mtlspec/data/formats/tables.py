"""Images with a table of attributes: CSV (a header row), or CelebA's list_attr_celeba.txt (+1/-1)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from mtlspec.data.formats.common import file_stats, partition, read_image
from mtlspec.data.records import DataError, Record, fingerprint


def _read_csv(path: Path) -> tuple[list[str], list[str], list[list[str]]]:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise DataError("the table is empty", str(path))
    header, body = rows[0], rows[1:]
    if "image" not in header:
        raise DataError("the table has no 'image' column", str(path))
    col = header.index("image")
    names = [h for i, h in enumerate(header) if i != col]
    files = [r[col] for r in body]
    values = [[v for i, v in enumerate(r) if i != col] for r in body]
    return names, files, values


def _read_celeba(path: Path) -> tuple[list[str], list[str], list[list[str]]]:
    lines = path.read_text().splitlines()
    if len(lines) < 2:
        raise DataError("a CelebA attribute list needs a count line and a names line", str(path))
    names = lines[1].split()
    files, values = [], []
    for n, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            raise DataError(f"line {n} has {len(parts) - 1} values for {len(names)} attributes", str(path), parts[0])
        files.append(parts[0])
        values.append(["1" if v == "1" else "0" if v == "-1" else v for v in parts[1:]])
    return names, files, values


class AttributeTableSource:
    """One image per row; every column is a label (classification or regression) and together
    the columns are the multilabel label `attributes`. A `split` column, when present, chooses rows."""

    kind = "attribute_table"

    def __init__(self, name: str, table: str | Path, images: str | Path, fmt: str, split: str, seed: int, columns: list[str] | None = None):
        self.name, self.table, self.images = name, Path(table), Path(images)
        if not self.table.is_file():
            raise DataError("attribute table is missing", str(self.table))
        names, files, values = (_read_celeba if fmt == "celeba" else _read_csv)(self.table)
        for column in columns or []:
            if column not in names:
                raise DataError(f"the table has no column '{column}' (it has: {', '.join(names)})", str(self.table))
        if "split" in names:
            at = names.index("split")
            keep = [i for i, row in enumerate(values) if row[at] == split]
            names = names[:at] + names[at + 1 :]
            values = [row[:at] + row[at + 1 :] for row in values]
        else:
            keep = list(partition(len(files), split, seed))
        self.columns = names
        self.files = [files[i] for i in keep]
        self.rows = []
        for i in keep:
            try:
                self.rows.append(np.array([float(v) for v in values[i]], np.float32))
            except ValueError:
                raise DataError("a value is not a number", str(self.table), files[i]) from None

    def __len__(self) -> int:
        return len(self.files)

    def fingerprint(self) -> str:
        return fingerprint(self.kind, {"table": str(self.table), "rows": len(self.files)}, file_stats([self.table]))

    def column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise DataError(f"the table has no column '{name}'", str(self.table))
        return np.array([row[self.columns.index(name)] for row in self.rows], np.float32)

    def check(self, index: int) -> None:
        if not (self.images / self.files[index]).is_file():
            raise DataError("image file is missing", str(self.images / self.files[index]), self.files[index])

    def labels(self, index: int) -> dict:
        row = self.rows[index]
        out = {name: (int(v) if float(v).is_integer() else float(v)) for name, v in zip(self.columns, row)}
        out["attributes"] = (row > 0).astype(np.float32)
        return out

    def record(self, index: int) -> Record:
        image = read_image(self.images / self.files[index], self.files[index])
        return {"image": image, "labels": self.labels(index),
                "meta": {"dataset": self.name, "index": index, "file": str(self.images / self.files[index])}}

    def num_classes(self, label: str | None, task_type: str) -> int:
        if label == "attributes":
            return len(self.columns)
        return int(max((row[self.columns.index(label)] for row in self.rows), default=0)) + 1
