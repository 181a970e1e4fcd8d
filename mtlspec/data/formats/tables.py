"""Images with a table of attributes: CSV (a header row), or CelebA's list_attr_celeba.txt (+1/-1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mtlspec.data.formats.common import SPLIT_FRACTIONS, file_stats, parse_number, partition, read_csv_rows, read_image
from mtlspec.data.records import DataError, Record, fingerprint
from mtlspec.language.paths import is_file


def _read_csv(path: Path) -> tuple[list[str], list[str], list[list[str]], list[int]]:
    rows = read_csv_rows(path)
    if not rows:
        raise DataError("the table is empty", str(path))
    header, body = rows[0][1], rows[1:]
    if "image" not in header:
        raise DataError("the table has no 'image' column", str(path))
    if not body:
        raise DataError("the table has a header and no rows", str(path))
    col = header.index("image")
    for line, row in body:
        if len(row) != len(header):
            raise DataError(f"line {line} has {len(row)} values for the {len(header)} columns of the header", str(path),
                            row[col] if len(row) > col else f"line {line}")
    names = [h for i, h in enumerate(header) if i != col]
    files = [r[col] for _, r in body]
    values = [[v for i, v in enumerate(r) if i != col] for _, r in body]
    return names, files, values, [line for line, _ in body]


def _read_celeba(path: Path) -> tuple[list[str], list[str], list[list[str]]]:
    try:
        lines = path.read_bytes().decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text (byte {exc.start})", str(path)) from None
    if len(lines) < 2:
        raise DataError("a CelebA attribute list needs a count line and a names line", str(path))
    names = lines[1].split()
    files, values, numbers = [], [], []
    for n, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            raise DataError(f"line {n} has {len(parts) - 1} values for {len(names)} attributes", str(path), parts[0])
        files.append(parts[0])
        values.append(["1" if v == "1" else "0" if v == "-1" else v for v in parts[1:]])
        numbers.append(n)
    if not files:
        raise DataError("the attribute list has no rows", str(path))
    return names, files, values, numbers


class AttributeTableSource:
    """One image per row; every column is a label (classification or regression) and together
    the columns are the multilabel label `attributes`. A `split` column, when present, chooses rows."""

    kind = "attribute_table"

    def __init__(self, name: str, table: str | Path, images: str | Path, fmt: str, split: str, seed: int, columns: list[str] | None = None):
        self.name, self.table, self.images = name, Path(table), Path(images)
        if not self.table.is_file():
            raise DataError("attribute table is missing", str(self.table))
        names, files, values, lines = (_read_celeba if fmt == "celeba" else _read_csv)(self.table)
        for column in columns or []:
            if column not in names:
                raise DataError(f"the table has no column '{column}' (it has: {', '.join(names)})", str(self.table))
        if "split" in names:
            at = names.index("split")
            for i, row in enumerate(values):
                if row[at] not in SPLIT_FRACTIONS:
                    raise DataError(f"line {lines[i]}: split {row[at]!r} is not train, val or test", str(self.table), files[i])
            keep = [i for i, row in enumerate(values) if row[at] == split]
            if not keep:
                raise DataError(f"no row has split '{split}' (the split column decides every row's split)", str(self.table))
            names = names[:at] + names[at + 1 :]
            values = [row[:at] + row[at + 1 :] for row in values]
            self.origin = f"{self.table.name}: the rows whose split column is '{split}'"
        else:
            keep = list(partition(len(files), split, seed))
            self.origin = f"{self.table.name}: a seeded {int(round(100 * (SPLIT_FRACTIONS[split][1] - SPLIT_FRACTIONS[split][0])))}% of its rows"
        self.columns = names
        self.files = [files[i] for i in keep]
        self.lines = [lines[i] for i in keep]
        self.rows = []
        for i in keep:
            numbers = [parse_number(v) for v in values[i]]
            if None in numbers:
                bad = numbers.index(None)
                raise DataError(f"line {lines[i]}: '{names[bad]}' = {values[i][bad]!r} is not a finite number", str(self.table), files[i])
            self.rows.append(np.array(numbers, np.float32))

    def __len__(self) -> int:
        return len(self.files)

    def fingerprint(self) -> str:
        return fingerprint(self.kind, {"table": str(self.table), "rows": len(self.files)}, file_stats([self.table]))

    def column(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise DataError(f"the table has no column '{name}'", str(self.table))
        return np.array([row[self.columns.index(name)] for row in self.rows], np.float32)

    def where(self, index: int) -> tuple[str, str]:
        """(file, sample) naming a sample in a message."""
        return str(self.table), f"{self.files[index]} (line {self.lines[index]})"

    def check(self, index: int) -> None:
        if not is_file(self.images / self.files[index]):
            raise DataError("image file is missing", str(self.images / self.files[index]), self.files[index])

    def image_name(self, index: int) -> str:
        """The image as the table names it (what a text file names it by)."""
        return self.files[index]

    def labels(self, index: int) -> dict:
        row = self.rows[index]
        out = {name: (int(v) if float(v).is_integer() else float(v)) for name, v in zip(self.columns, row)}
        out["attributes"] = (row > 0).astype(np.float32)
        return out

    def record(self, index: int) -> Record:
        image = read_image(self.images / self.files[index], self.files[index])
        return {"image": image, "labels": self.labels(index),
                "meta": {"dataset": self.name, "index": index, "file": str(self.images / self.files[index])}}

    def label_names(self, label: str) -> list[str] | None:
        return list(self.columns) if label == "attributes" else None

    def label_classes(self, label: str) -> int:
        """Classes of a column (its largest value + 1), or labels of `attributes` (every column)."""
        if label == "attributes":
            return len(self.columns)
        return int(max((row[self.columns.index(label)] for row in self.rows), default=0)) + 1
