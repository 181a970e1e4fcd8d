"""A record: one sample as a source provides it, before transforms and task binding.

Keys: `image` (H, W, 3) uint8; optional `boxes` (N, 4) float32 xyxy pixels with `box_labels`
(N,) int64, and `instance_masks` (N, H, W) uint8, each object's own pixels (1), in the order of
`boxes`, and `crowd` (N,) bool where the source marks crowd regions (COCO's iscrowd: ignored in
training and in matching, as COCO scores them); `mask` (H, W) int64 class map (0 background, 255 ignore); `depth` (H, W) float32
(0 = unknown); `labels`: {name: int | float | list}; `meta`: {"dataset", "index", "file"}.
A key that is absent means the source has no such label for this sample.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

Record = dict[str, Any]

IGNORE_INDEX = 255


class DataError(Exception):
    """Bad data, named by file and sample so a person can find and fix it."""

    def __init__(self, message: str, file: str | None = None, sample: str | int | None = None):
        where = ", ".join(p for p in (f"file {file}" if file else "", f"sample {sample}" if sample is not None else "") if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.file, self.sample = file, sample


def fingerprint(kind: str, params: dict[str, Any], files: list[tuple[str, int, int]] | None = None) -> str:
    """A short, stable hash of what defines a dataset: its parameters, or its files (name, size, mtime)."""
    blob = json.dumps({"kind": kind, "params": params, "files": sorted(files or [])}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
