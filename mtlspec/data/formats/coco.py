"""COCO-format data (instances_*.json plus images) through pycocotools: boxes, masks, image attributes."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np

from mtlspec.data.formats.common import file_stats, partition, read_image
from mtlspec.data.records import DataError, Record, fingerprint


def _read_side_table(path: Path) -> dict[str, dict[str, float | int]]:
    """file_name -> {attribute: value} from a CSV with a `file_name` column."""
    import csv

    if not path.is_file():
        raise DataError("attribute side table is missing", str(path))
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and "file_name" not in rows[0]:
        raise DataError("the side table has no 'file_name' column", str(path))
    out: dict[str, dict[str, float | int]] = {}
    for n, row in enumerate(rows, start=2):
        values = {}
        for key, raw in row.items():
            if key == "file_name":
                continue
            try:
                number = float(raw)
            except (TypeError, ValueError):
                raise DataError(f"line {n}: '{key}' = {raw!r} is not a number", str(path), row.get("file_name")) from None
            values[key] = int(number) if number.is_integer() else number
        out[row["file_name"]] = values
    return out


class CocoSource:
    """Records from a COCO annotation file. Categories map to 0..K-1 in the order of their ids."""

    kind = "coco"

    def __init__(self, name: str, root: str | Path, annotations: dict[str, str | None], split: str, seed: int,
                 attributes: dict[str, str] | None = None, attributes_table: str | None = None):
        from pycocotools.coco import COCO

        self.name, self.root, self.attributes = name, Path(root), dict(attributes or {})
        chosen = annotations.get(split)
        self.file = self.root / (chosen or annotations["train"])
        if not self.file.is_file():
            raise DataError("annotation file is missing", str(self.file))
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self.coco = COCO(str(self.file))
        except Exception as exc:
            raise DataError(f"not a COCO annotation file ({type(exc).__name__}: {exc})", str(self.file)) from None
        ids = sorted(self.coco.getImgIds())
        if chosen is None:  # no annotation file for this split: a seeded part of the training file
            ids = [ids[i] for i in partition(len(ids), split, seed)]
        self.image_ids = ids
        self.category_ids = sorted(self.coco.getCatIds())
        self.contiguous = {cid: i for i, cid in enumerate(self.category_ids)}
        self.side = _read_side_table(self.root / attributes_table) if attributes_table else None

    def __len__(self) -> int:
        return len(self.image_ids)

    def fingerprint(self) -> str:
        return fingerprint(self.kind, {"file": str(self.file), "split_images": len(self.image_ids)}, file_stats([self.file]))

    def _annotations(self, image_id: int) -> tuple[dict, list[dict]]:
        info = self.coco.imgs[image_id]
        anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=[image_id], iscrowd=None))
        return info, anns

    def check(self, index: int) -> None:
        """Raise DataError for what the annotations get wrong (no image read)."""
        info, anns = self._annotations(self.image_ids[index])
        sample = info.get("file_name", self.image_ids[index])
        width, height = info.get("width"), info.get("height")
        for ann in anns:
            if ann.get("category_id") not in self.contiguous:
                raise DataError(f"annotation {ann.get('id')} has unknown category id {ann.get('category_id')}", str(self.file), sample)
            x, y, w, h = ann["bbox"]
            if w <= 0 or h <= 0:
                raise DataError(f"annotation {ann.get('id')} has a box of zero area {ann['bbox']}", str(self.file), sample)
            if width and height and (x < 0 or y < 0 or x + w > width + 1 or y + h > height + 1):
                raise DataError(f"annotation {ann.get('id')} has a box {ann['bbox']} outside the {width}x{height} image", str(self.file), sample)
        source = self._attributes(info)
        for name in self.attributes:
            if name not in source:
                where = str(self.root) if self.side is not None else str(self.file)
                raise DataError(f"image has no attribute '{name}'", where, sample)

    def record(self, index: int) -> Record:
        self.check(index)
        image_id = self.image_ids[index]
        info, anns = self._annotations(image_id)
        sample = info.get("file_name", image_id)
        image = read_image(self.root / info["file_name"], sample)
        h, w = image.shape[:2]
        boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in anns], np.float32).reshape(-1, 4)
        labels = np.array([self.contiguous[a["category_id"]] for a in anns], np.int64)
        mask = np.zeros((h, w), np.int64)
        for ann in sorted(anns, key=lambda a: -a.get("area", 0)):  # smaller instances drawn last stay visible
            if ann.get("segmentation"):
                m = self.coco.annToMask(ann)
                if m.shape != (h, w):
                    raise DataError(f"annotation {ann.get('id')} has a mask of size {m.shape}, the image is {(h, w)}", str(self.file), sample)
                mask[m > 0] = self.contiguous[ann["category_id"]] + 1
        present = np.zeros(len(self.category_ids), np.float32)
        present[labels] = 1.0
        record_labels: dict[str, Any] = {"categories": present}
        for name in self.attributes:
            record_labels[name] = self._attributes(info)[name]
        return {"image": image, "boxes": boxes, "box_labels": labels, "mask": mask, "labels": record_labels,
                "meta": {"dataset": self.name, "index": index, "file": str(self.root / info["file_name"])}}

    def _attributes(self, info: dict) -> dict:
        if self.side is not None:
            return self.side.get(info.get("file_name"), {})
        return info.get("attributes", {})

    def num_classes(self, label: str | None, task_type: str) -> int:
        if task_type == "detection" or label == "categories":
            return len(self.category_ids)
        if task_type == "segmentation":
            return len(self.category_ids) + 1
        values = [v for img in self.coco.imgs.values() for k, v in self._attributes(img).items() if k == label]
        first = values[0] if values else 0
        return len(first) if isinstance(first, list) else int(max(values, default=0)) + 1
