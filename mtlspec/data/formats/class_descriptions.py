"""Class descriptions in words: what a zero-shot task with `method: text` knows of each class.

One JSON Lines file, one object per line: `class` naming the class as its dataset does, `text` a
description of it (`{"class": "zebra", "text": "a horse-like animal with black and white
stripes"}`). A class may have several lines; their embeddings are averaged, as CLIP averages its
prompts (Radford et al. 2021, section 3.1.4). The keyword `multidigits` names descriptions written
from the embedded dataset's measured digit table (data/digit_descriptions.py).

Read with the standard library alone: `validate` reads the file too, and never imports torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mtlspec.data.digit_descriptions import digit_descriptions
from mtlspec.data.formats.class_attributes import TableProblem

MAX_BYTES = 64 * 2**20


@dataclass(frozen=True)
class ClassDescriptions:
    """The descriptions of each class, in the order the file first names the classes."""

    classes: tuple[str, ...]
    texts: tuple[tuple[str, ...], ...]  # texts[i]: the descriptions of classes[i]

    def for_classes(self, names: list[str]) -> list[tuple[str, ...]]:
        """The descriptions of these classes, in this order; TableProblem naming every class without one."""
        missing = [n for n in names if n not in self.classes]
        if missing:
            raise TableProblem(f"no description of class(es) {', '.join(repr(m) for m in missing[:10])}"
                               f"{' ...' if len(missing) > 10 else ''}: every class needs a description, seen or unseen")
        return [self.texts[self.classes.index(n)] for n in names]

    def to_json(self) -> dict:
        return {"classes": list(self.classes), "texts": [list(t) for t in self.texts]}

    @classmethod
    def from_json(cls, data: dict) -> "ClassDescriptions":
        return cls(tuple(data["classes"]), tuple(tuple(t) for t in data["texts"]))


def builtin_descriptions() -> dict[str, "ClassDescriptions"]:
    classes, texts = digit_descriptions()
    return {"multidigits": ClassDescriptions(classes, texts)}


BUILTIN_NAMES = ("multidigits",)


def descriptions_path(written: str, base: Path) -> Path | None:
    """The file a spec's `descriptions:` names, or None for a shipped keyword."""
    return None if written in BUILTIN_NAMES else base / written


def load_class_descriptions(written: str, base: Path) -> ClassDescriptions:
    """A shipped keyword's descriptions, or the file `written` names relative to `base`."""
    path = descriptions_path(written, base)
    return builtin_descriptions()[written] if path is None else read_class_descriptions(path)


def read_class_descriptions(path: Path) -> ClassDescriptions:
    """The descriptions in `path`; TableProblem (with the line at fault) for anything that is not a descriptions file."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise TableProblem(f"the file is larger than {MAX_BYTES // 2**20} MiB; class descriptions are far smaller")
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise TableProblem("the file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TableProblem(f"the file cannot be read as UTF-8 text ({type(exc).__name__})") from None
    found: dict[str, list[str]] = {}
    last = 1
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        last = number
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TableProblem(f"the line is not JSON: {exc.msg}", number) from None
        if not isinstance(entry, dict) or not isinstance(entry.get("class"), (str, int)) or isinstance(entry.get("class"), bool):
            raise TableProblem("the line is not an object with a `class` (a string or an integer)", number)
        description = entry.get("text")
        if not isinstance(description, str) or not description.strip():
            raise TableProblem(f"class {entry['class']!r} has no `text` (a non-empty string)", number)
        found.setdefault(str(entry["class"]), []).append(description)
    if len(found) < 2:
        raise TableProblem("the file describes fewer than two classes; it needs one line `{\"class\": ..., \"text\": ...}` per description", last)
    return ClassDescriptions(tuple(found), tuple(tuple(v) for v in found.values()))
