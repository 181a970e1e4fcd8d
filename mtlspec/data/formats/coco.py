"""COCO-format data (instances_*.json plus images) through pycocotools: boxes, masks, image attributes."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np

from mtlspec.data.formats.common import carve, file_stats, is_number, parse_number, read_csv_rows, read_image, read_json
from mtlspec.data.records import DataError, Record, fingerprint
from mtlspec.language.paths import is_file


def _read_side_table(path: Path) -> dict[str, dict[str, float | int]]:
    """file_name -> {attribute: value} from a CSV with a `file_name` column."""
    if not path.is_file():
        raise DataError("attribute side table is missing", str(path))
    rows = read_csv_rows(path)
    if not rows or "file_name" not in rows[0][1]:
        raise DataError("the side table has no 'file_name' column", str(path))
    header = rows[0][1]
    out: dict[str, dict[str, float | int]] = {}
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise DataError(f"line {line} has {len(row)} values for {len(header)} columns", str(path), row[0] if row else line)
        named = dict(zip(header, row))
        values = {}
        for key, raw in named.items():
            if key == "file_name":
                continue
            number = parse_number(raw)
            if number is None:
                raise DataError(f"line {line}: '{key}' = {raw!r} is not a finite number", str(path), named["file_name"])
            values[key] = int(number) if number.is_integer() else number
        out[named["file_name"]] = values
    return out


def _check_structure(data: Any, path: Path, needs_instances: bool) -> None:
    """What pycocotools assumes of a file, checked with the file and the entry named."""
    if not isinstance(data, dict):
        raise DataError("a COCO annotation file holds one JSON object with images, annotations and categories", str(path))
    images = data.get("images")
    if not isinstance(images, list) or not images:
        raise DataError("the file has no images (an 'images' list of {id, file_name, width, height})", str(path))
    ids = set()
    for n, image in enumerate(images):
        if not isinstance(image, dict) or not isinstance(image.get("id"), int) or not isinstance(image.get("file_name"), str):
            raise DataError(f"images[{n}] needs an integer 'id' and a string 'file_name'", str(path), n)
        ids.add(image["id"])
    categories = data.get("categories", [])
    if not isinstance(categories, list) or not all(isinstance(c, dict) and isinstance(c.get("id"), int) for c in categories):
        raise DataError("'categories' must be a list of {id, name}", str(path))
    annotations = data.get("annotations", [])
    if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
        raise DataError("'annotations' must be a list of objects", str(path))
    if needs_instances and not annotations:
        raise DataError("the file has no annotations, and a detection, segmentation or categories task reads them", str(path))
    if needs_instances and not categories:
        raise DataError("the file has no categories, and a detection, segmentation or categories task reads them", str(path))
    for n, ann in enumerate(annotations):
        if ann.get("image_id") not in ids:
            raise DataError(f"annotation {ann.get('id', f'#{n}')} names image id {ann.get('image_id')!r}, which no image in the file has", str(path))
        if not isinstance(ann.get("id"), int):
            raise DataError(f"annotations[{n}] needs an integer 'id'", str(path))


class CocoSource:
    """Records from a COCO annotation file. Categories map to 0..K-1 in the order of their ids.

    A split without a file of its own is carved out of the training file (a seeded 10% each for
    val and test) and removed from training, so no sample is both trained on and evaluated."""

    kind = "coco"

    def __init__(self, name: str, root: str | Path, annotations: dict[str, str | None], split: str, seed: int,
                 attributes: dict[str, str] | None = None, attributes_table: str | None = None, needs_instances: bool = False,
                 needs_masks: bool = False):
        from pycocotools.coco import COCO

        self.name, self.root, self.attributes = name, Path(root), dict(attributes or {})
        self.needs_masks = needs_masks  # an instance segmentation task reads this dataset: every object needs its mask
        chosen = annotations.get(split)
        self.file = self.root / (chosen or annotations["train"])
        if not self.file.is_file():
            raise DataError("annotation file is missing", str(self.file))
        data = read_json(self.file)
        _check_structure(data, self.file, needs_instances)
        self.coco = COCO()
        self.coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):
            self.coco.createIndex()
        ids = sorted(self.coco.getImgIds())
        missing = {s for s in ("val", "test") if not annotations.get(s)}
        self.origin = self.file.name
        if chosen is None or (split == "train" and missing):
            ids = [ids[i] for i in carve(len(ids), split, missing, seed)]
            self.origin = (f"{self.file.name}: {len(ids)} images, a seeded part carved out of the training file" if split != "train"
                           else f"{self.file.name}: {len(ids)} of {len(self.coco.getImgIds())} images ({', '.join(sorted(missing))} carved out)")
        self.image_ids = ids
        self.category_ids = sorted(self.coco.getCatIds())
        self.contiguous = {cid: i for i, cid in enumerate(self.category_ids)}
        self.side_path = self.root / attributes_table if attributes_table else None
        self.side = _read_side_table(self.side_path) if self.side_path else None

    def __len__(self) -> int:
        return len(self.image_ids)

    def fingerprint(self) -> str:
        return fingerprint(self.kind, {"file": str(self.file), "split_images": len(self.image_ids)}, file_stats([self.file]))

    def _annotations(self, image_id: int) -> tuple[dict, list[dict]]:
        info = self.coco.imgs[image_id]
        anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=[image_id], iscrowd=None))
        return info, anns

    def check(self, index: int) -> None:
        """Raise DataError for what the annotations get wrong, or an image file that is not there
        (no image is decoded)."""
        info, anns = self._annotations(self.image_ids[index])
        sample = info.get("file_name", self.image_ids[index])
        if not is_file(self.root / info["file_name"]):
            raise DataError("image file is missing", str(self.root / info["file_name"]), sample)
        width, height = info.get("width"), info.get("height")
        for ann in anns:
            if ann.get("category_id") not in self.contiguous:
                raise DataError(f"annotation {ann.get('id')} has unknown category id {ann.get('category_id')}", str(self.file), sample)
            box = ann.get("bbox")
            if not isinstance(box, list) or len(box) != 4 or not all(is_number(v) for v in box):
                raise DataError(f"annotation {ann.get('id')} needs a bbox of four numbers [x, y, width, height], has {box!r}"[:300], str(self.file), sample)
            x, y, w, h = box
            if w <= 0 or h <= 0:
                raise DataError(f"annotation {ann.get('id')} has a box of zero area {ann['bbox']}", str(self.file), sample)
            if width and height and (x < 0 or y < 0 or x + w > width + 1 or y + h > height + 1):
                raise DataError(f"annotation {ann.get('id')} has a box {ann['bbox']} outside the {width}x{height} image", str(self.file), sample)
            if self.needs_masks and not ann.get("segmentation"):
                raise DataError(f"annotation {ann.get('id')} has no segmentation, and an instance segmentation task needs a mask for every object",
                                str(self.file), sample)
        self.labels(index)

    def image_name(self, index: int) -> str:
        """The image's file_name (what a text file names it by)."""
        return str(self.coco.imgs[self.image_ids[index]].get("file_name", self.image_ids[index]))

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
        instances = np.zeros((len(anns), h, w), np.uint8) if self.needs_masks else None
        for n in sorted(range(len(anns)), key=lambda n: -anns[n].get("area", 0)):  # smaller instances drawn last stay visible
            ann = anns[n]
            if ann.get("segmentation"):
                try:
                    m = self.coco.annToMask(ann)
                except Exception as exc:  # pycocotools' own errors on a malformed polygon or RLE
                    raise DataError(f"annotation {ann.get('id')} has a segmentation pycocotools cannot read ({type(exc).__name__})", str(self.file), sample) from None
                if m.shape != (h, w):
                    raise DataError(f"annotation {ann.get('id')} has a mask of size {m.shape}, the image is {(h, w)}", str(self.file), sample)
                mask[m > 0] = self.contiguous[ann["category_id"]] + 1
                if instances is not None:
                    instances[n] = m > 0
        out = {"image": image, "boxes": boxes, "box_labels": labels, "crowd": np.array([bool(a.get("iscrowd", 0)) for a in anns], bool),
               "mask": mask, "labels": self.labels(index), "meta": {"dataset": self.name, "index": index, "file": str(self.root / info["file_name"])}}
        if instances is not None:  # check() made sure every object has its mask
            out["instance_masks"] = instances
        return out

    def where(self, index: int) -> tuple[str, str]:
        """(file, sample) naming a sample in a message."""
        info = self.coco.imgs[self.image_ids[index]]
        return str(self.side_path or self.file), str(info.get("file_name", self.image_ids[index]))

    def labels(self, index: int) -> dict[str, Any]:
        """The image's labels (categories present, attributes), read without decoding the image."""
        info, anns = self._annotations(self.image_ids[index])
        present = np.zeros(len(self.category_ids), np.float32)
        present[[self.contiguous[a["category_id"]] for a in anns if a.get("category_id") in self.contiguous]] = 1.0
        out: dict[str, Any] = {"categories": present}
        source = self._attributes(info)
        for name in self.attributes:
            if name not in source:
                where = str(self.side_path) if self.side_path is not None else str(self.file)
                raise DataError(f"image has no attribute '{name}'", where, info.get("file_name", self.image_ids[index]))
            out[name] = source[name]
        return out

    def _attributes(self, info: dict) -> dict:
        if self.side is not None:
            return self.side.get(info.get("file_name"), {})
        return info.get("attributes", {})

    def label_classes(self, label: str) -> int:
        """Classes of an attribute (its largest value + 1), or labels of `categories` or of a list attribute."""
        if label == "categories":
            return len(self.category_ids)
        values = [v for img in self.coco.imgs.values() for k, v in self._attributes(img).items() if k == label]
        first = values[0] if values else 0
        return len(first) if isinstance(first, list) else int(max(values, default=0)) + 1

    def box_classes(self) -> int:
        return len(self.category_ids)

    def box_names(self) -> list[str]:
        return [str(self.coco.cats[c].get("name", c)) for c in self.category_ids]

    def box_category_ids(self) -> list[int]:
        return list(self.category_ids)

    def mask_names(self) -> list[str]:
        return ["background", *self.box_names()]

    def label_names(self, label: str) -> list[str] | None:
        return self.box_names() if label == "categories" else None

    def image_id(self, index: int) -> int:
        """The file's own id of a sample's image."""
        return int(self.image_ids[index])

    def mask_classes(self) -> int:
        """Background and one class per category."""
        return len(self.category_ids) + 1
