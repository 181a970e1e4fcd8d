"""What `mtlspec predict` reads: image files (a folder, searched recursively, or files), or a split of
the run's own datasets. Each item keeps its original image, size and name, so predictions go back
to the image's own coordinates and, for a COCO split, to its image id."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from mtlspec.data.formats.common import IMAGE_SUFFIXES, read_image
from mtlspec.errors import UsageError

SPLITS = ("train", "val", "test")


@dataclass
class Item:
    key: str  # a relative name without suffix: where its per-image outputs go
    file: str  # the image file, or "" for a generated sample
    image: np.ndarray  # (H, W, 3) uint8, original size
    image_id: int  # the dataset's own image id where it has one (COCO), else a running number from 1
    dataset: str | None = None  # the dataset of a split's sample: only its tasks are predicted for it


def image_files(paths: list[Path]) -> list[tuple[Path, str]]:
    """(file, key) for every image in the given files and folders, sorted, keys unique."""
    found: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            found += [(p, p.relative_to(path).with_suffix("").as_posix()) for p in files]
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise UsageError(f"{path} is not an image ({', '.join(IMAGE_SUFFIXES)})")
            found.append((path, path.stem))
        else:
            raise UsageError(f"no such file or folder: {path} (give images, a folder of them, or one of {', '.join(SPLITS)})")
    if not found:
        raise UsageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, paths))}")
    keys = [k for _, k in found]
    if len(set(keys)) != len(keys):  # the same stem from two folders given at once
        found = [(p, f"{i:05d}_{k}") for i, (p, k) in enumerate(found)]
    return found


def from_files(paths: list[Path]) -> tuple[int, Iterator[Item]]:
    files = image_files(paths)

    def items() -> Iterator[Item]:
        for number, (path, key) in enumerate(files, start=1):
            yield Item(key, str(path), read_image(path, key), number)

    return len(files), items()


def from_split(spec: Any, split: str, data_root: Path) -> tuple[int, Iterator[Item]]:
    """Every sample of the split, from every dataset a task uses (original images, not resized).
    Image ids are the dataset's own (COCO) or the sample's number in its dataset from 1: unique
    within a dataset, and each task is predicted on its own dataset's images only."""
    from mtlspec.data.build import build_sources

    sources = build_sources(spec, split, data_root)
    total = sum(len(s) for s in sources.values())

    def items() -> Iterator[Item]:
        seen = set()
        for name, source in sources.items():
            for index in range(len(source)):
                record = source.record(index)
                file = str(record.get("meta", {}).get("file") or "")
                file = file if file and Path(file).is_file() else ""  # generated samples name no file
                key = f"{name}/{Path(file).stem}" if file else f"{name}/{index:06d}"
                if key in seen:  # two images of one stem in different folders
                    key = f"{key}_{index:06d}"
                seen.add(key)
                image_id = source.image_id(index) if hasattr(source, "image_id") else index + 1
                yield Item(key, file, record["image"], image_id, name)

    return total, items()
