"""Class-attribute tables: what a zero-shot task knows of each class, seen in training or not.

One CSV file, a header `class,<attribute>,<attribute>...` and one row per class: the class as its
dataset names it (a folder name, a COCO category, or the class index for labels without names),
then one number per attribute (binary as in AwA2's predicate-matrix-binary.txt, or continuous as
in its predicate-matrix-continuous.txt and CUB's class_attribute_labels_continuous.txt). AwA2 and
CUB ship the matrix, the class names and the attribute names as three files; the docs (spec.md,
"Zero-shot") show the three lines of Python that join them into this one.

The keyword `multidigits` names the table shipped in the package for the embedded dataset's digits
(data/digit_attributes.csv: loops, strokes, bars, symmetry, stroke endpoints).

Read with the standard library alone: `validate` reads the table too, and never imports torch.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

BUILTIN = {"multidigits": Path(__file__).resolve().parent.parent / "digit_attributes.csv"}
MAX_BYTES = 64 * 2**20  # a class x attribute table; CUB's is 200 x 312


class TableProblem(ValueError):
    """A table that cannot be used, with the table's line where one is at fault (1-based)."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class ClassAttributes:
    """A class x attribute matrix with its class and attribute names."""

    classes: tuple[str, ...]
    attributes: tuple[str, ...]
    values: tuple[tuple[float, ...], ...]  # values[i][j]: attribute j of class classes[i]

    def row(self, name: str) -> tuple[float, ...]:
        return self.values[self.classes.index(name)]

    def for_classes(self, names: list[str]) -> list[list[float]]:
        """The rows of these classes, in this order; TableProblem naming every class without one."""
        missing = [n for n in names if n not in self.classes]
        if missing:
            raise TableProblem(f"no row for class(es) {', '.join(repr(m) for m in missing[:10])}"
                               f"{' ...' if len(missing) > 10 else ''}: every class needs a description, seen or unseen")
        return [list(self.row(n)) for n in names]

    def to_json(self) -> dict:
        return {"classes": list(self.classes), "attributes": list(self.attributes), "values": [list(v) for v in self.values]}

    @classmethod
    def from_json(cls, data: dict) -> "ClassAttributes":
        return cls(tuple(data["classes"]), tuple(data["attributes"]), tuple(tuple(float(x) for x in v) for v in data["values"]))


def table_path(written: str, base: Path) -> Path:
    """The file a spec's `attributes:` names: a shipped table's keyword, or a path relative to `base`."""
    return BUILTIN[written] if written in BUILTIN else base / written


def read_class_attributes(path: Path) -> ClassAttributes:
    """The table in `path`; TableProblem (with the line at fault) for anything that is not one."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise TableProblem(f"the table is larger than {MAX_BYTES // 2**20} MiB; a class x attribute table is far smaller")
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise TableProblem("the file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TableProblem(f"the file cannot be read as UTF-8 text ({type(exc).__name__})") from None
    rows = [(number, row) for number, row in enumerate(csv.reader(text.splitlines()), start=1) if any(cell.strip() for cell in row)]
    if not rows:
        raise TableProblem("the table is empty; it needs a header `class,<attribute>,...` and one row per class", 1)
    header_line, header = rows[0]
    header = [cell.strip() for cell in header]
    if len(header) < 2 or header[0].lower() != "class":
        raise TableProblem(f"the header must be `class,<attribute>,...`, got {','.join(header)[:120]!r}", header_line)
    attributes = header[1:]
    repeated = sorted({a for a in attributes if attributes.count(a) > 1 or not a})
    if repeated:
        raise TableProblem(f"attribute names must be distinct and non-empty: {', '.join(repr(a) for a in repeated)}", header_line)
    classes: list[str] = []
    values: list[tuple[float, ...]] = []
    for number, row in rows[1:]:
        if len(row) != len(header):
            raise TableProblem(f"the row has {len(row) - 1} attribute value(s), the header names {len(attributes)}", number)
        name = row[0].strip()
        if not name:
            raise TableProblem("the row names no class", number)
        if name in classes:
            raise TableProblem(f"class {name!r} has a second row (the first is line {rows[1 + classes.index(name)][0]})", number)
        numbers = []
        for attribute, cell in zip(attributes, row[1:]):
            try:
                value = float(cell)
            except ValueError:
                raise TableProblem(f"attribute {attribute!r} of class {name!r} is {cell.strip()[:40]!r}, not a number", number) from None
            if not math.isfinite(value):
                raise TableProblem(f"attribute {attribute!r} of class {name!r} is {cell.strip()!r}, not a finite number", number)
            numbers.append(value)
        classes.append(name)
        values.append(tuple(numbers))
    if len(classes) < 2:
        raise TableProblem("the table describes fewer than two classes", rows[-1][0])
    return ClassAttributes(tuple(classes), tuple(attributes), tuple(values))
