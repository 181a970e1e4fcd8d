"""A dataset's text from a JSON Lines file: one object per image, `image` naming it as the dataset
does (a COCO file_name, a table's image column, a path under an image folder's root), every other
key a text field. Any source gains it by `WithText`: its records carry `text`, and `text(index)`
reads it without decoding the image. A line that is not an object of strings, an image named
twice, or a sample of the split with no line is a DataError naming the file and the line or sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mtlspec.data.records import DataError, Record


def read_text_file(path: Path) -> dict[str, dict[str, str]]:
    """image name -> {field: text}."""
    if not path.is_file():
        raise DataError("text file is missing", str(path))
    try:
        lines = path.read_bytes().decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text (byte {exc.start})", str(path)) from None
    out: dict[str, dict[str, str]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"line {number} is not JSON: {exc.msg}", str(path), f"line {number}") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
            raise DataError(f"line {number} is not an object with a string 'image'", str(path), f"line {number}")
        image = entry.pop("image")
        bad = [k for k, v in entry.items() if not isinstance(v, str)]
        if bad:
            raise DataError(f"line {number}: field '{bad[0]}' is not a string", str(path), image)
        if image in out:
            raise DataError(f"line {number} names image '{image}' a second time", str(path), image)
        out[image] = entry
    if not out:
        raise DataError("the text file has no lines", str(path))
    return out


class WithText:
    """A source whose samples carry the text a JSON Lines file gives them."""

    def __init__(self, source: Any, path: Path):
        self.source, self.path, self.name = source, Path(path), getattr(source, "name", "")
        self.texts = read_text_file(self.path)

    def __len__(self) -> int:
        return len(self.source)

    def text(self, index: int) -> dict[str, str]:
        image = self.source.image_name(index)
        found = self.texts.get(image)
        if found is None:
            raise DataError(f"no line for image '{image}'", str(self.path), image)
        return found

    def record(self, index: int) -> Record:
        return {**self.source.record(index), "text": self.text(index)}

    def text_field_names(self) -> set[str]:
        return {field for fields in self.texts.values() for field in fields}

    def fingerprint(self) -> str:
        from mtlspec.data.formats.common import file_stats
        from mtlspec.data.records import fingerprint

        return fingerprint("with_text", {"source": self.source.fingerprint()}, file_stats([self.path]))

    def __getattr__(self, name: str) -> Any:  # labels, where, check, label_classes ... of the source itself
        return getattr(self.source, name)
