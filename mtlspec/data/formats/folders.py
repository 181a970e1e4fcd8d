"""Image folders (one sub-folder per class) and dense-label folders (image, PNG mask, NPY depth per sample)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from mtlspec.data.formats.common import IMAGE_SUFFIXES, carve, file_stats, read_image
from mtlspec.data.records import DataError, Record, fingerprint


def class_folders(root: Path, split: str, seed: int, members: Callable[[Path], list[Path]], what: str) -> tuple[list[str], list[tuple[Path, int]], str]:
    """(classes, (member, class index) of the split, where they come from) of root/<class>/<member>,
    or root/<split>/<class>/<member> when split folders exist. The classes are the training
    folder's; a split without a folder of its own is a seeded part carved out of training.
    `members(folder)` lists a class folder's samples (images, clip folders), `what` names them."""
    if not root.is_dir():
        raise DataError(f"{what} folder is missing", str(root))
    split_folders = (root / "train").is_dir()
    top = root / "train" if split_folders else root
    classes = sorted(p.name for p in top.iterdir() if p.is_dir())
    if not classes:
        raise DataError("no class sub-folders", str(top))
    missing = {s for s in ("val", "test") if not (root / s).is_dir()} if split_folders else {"val", "test"}
    base = root / split if split_folders and split not in missing else top
    items = [(p, c) for c, name in enumerate(classes) if (base / name).is_dir() for p in members(base / name)]
    if split in missing or (split == "train" and missing):
        items = [items[i] for i in carve(len(items), split, missing, seed)]
        origin = f"{top}: {len(items)} {what}s, a seeded part" + (f" ({', '.join(sorted(missing))} carved out)" if split == "train" else " carved out of training")
    else:
        origin = f"{base}"
    return classes, items, origin


def image_files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.glob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]


class ImageFolderSource:
    """root/<class>/<image>, or root/<split>/<class>/<image> when the split folders exist."""

    kind = "image_folder"

    def __init__(self, name: str, root: str | Path, split: str, seed: int):
        self.name, self.root = name, Path(root)
        self.classes, items, self.origin = class_folders(self.root, split, seed, image_files, "image")
        if not items:
            raise DataError(f"the {split} split has no images ({', '.join(IMAGE_SUFFIXES)})", self.origin)
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def fingerprint(self) -> str:
        return fingerprint(self.kind, {"root": str(self.root), "classes": self.classes}, file_stats([p for p, _ in self.items]))

    def check(self, index: int) -> None:
        path, _ = self.items[index]
        if not path.is_file():
            raise DataError("image file is missing", str(path), path.name)

    def labels(self, index: int) -> dict:
        return {"class": self.items[index][1]}

    def where(self, index: int) -> tuple[str, str]:
        """(file, sample) naming a sample in a message."""
        return str(self.items[index][0]), self.items[index][0].name

    def image_name(self, index: int) -> str:
        """The image's path under the root, as a text file names it."""
        return self.items[index][0].relative_to(self.root).as_posix()

    def record(self, index: int) -> Record:
        path, label = self.items[index]
        return {"image": read_image(path, path.name), "labels": {"class": label}, "meta": {"dataset": self.name, "index": index, "file": str(path)}}

    def label_classes(self, label: str) -> int:
        return len(self.classes)

    def label_names(self, label: str) -> list[str]:
        return list(self.classes)


def _read_mask(path: Path, sample: str) -> np.ndarray | None:
    """A PNG of class indices (255: ignore), or None where the sample has none."""
    if not path.is_file():
        return None
    try:
        with Image.open(path) as image:
            mask = np.asarray(image).astype(np.int64)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"unreadable mask ({exc.__class__.__name__})", str(path), sample) from None
    if mask.ndim != 2:
        raise DataError(f"a mask has one channel of class indices; this one has shape {mask.shape}", str(path), sample)
    return mask


class DenseFolderSource:
    """root/<split>/image/<id>.png with root/<split>/mask/<id>.png and/or root/<split>/depth/<id>.npy."""

    kind = "dense_folder"

    def __init__(self, name: str, root: str | Path, split: str, num_classes: int | None = None):
        self.name, self.root = name, Path(root) / split
        if not (self.root / "image").is_dir():
            raise DataError("no image/ folder for this split", str(self.root))
        self.suffix = {p.stem: p.name for p in sorted((self.root / "image").glob("*")) if p.suffix.lower() in IMAGE_SUFFIXES}
        self.ids = sorted(self.suffix)
        if not self.ids:
            raise DataError(f"the {split} split has no images ({', '.join(IMAGE_SUFFIXES)})", str(self.root / "image"))
        self.declared_classes = num_classes
        self.origin = str(self.root)

    def __len__(self) -> int:
        return len(self.ids)

    def fingerprint(self) -> str:
        files = [self.root / "image" / self.suffix[i] for i in self.ids]
        return fingerprint(self.kind, {"root": str(self.root), "count": len(self.ids)}, file_stats(files))

    def _mask(self, sample: str, shape: tuple[int, int]) -> np.ndarray | None:
        path = self.root / "mask" / f"{sample}.png"
        mask = _read_mask(path, sample)
        if mask is None:
            return None
        if mask.shape != shape:
            raise DataError(f"mask is {mask.shape[1]}x{mask.shape[0]}, the image is {shape[1]}x{shape[0]}", str(path), sample)
        return mask

    def _depth(self, sample: str, shape: tuple[int, int]) -> np.ndarray | None:
        path = self.root / "depth" / f"{sample}.npy"
        if not path.is_file():
            return None
        try:
            depth = np.load(path).astype(np.float32)
        except (ValueError, OSError) as exc:
            raise DataError(f"unreadable depth map ({exc.__class__.__name__})", str(path), sample) from None
        if depth.shape != shape:
            raise DataError(f"depth map is {depth.shape}, the image is {shape}", str(path), sample)
        return depth

    def check(self, index: int) -> None:
        """The sample read in full: its maps are its annotations, checked against its image."""
        self.record(index)

    def record(self, index: int) -> Record:
        sample = self.ids[index]
        image = read_image(self.root / "image" / self.suffix[sample], sample)
        out: Record = {"image": image, "labels": {}, "meta": {"dataset": self.name, "index": index, "file": str(self.root / "image" / self.suffix[sample])}}
        mask = self._mask(sample, image.shape[:2])
        depth = self._depth(sample, image.shape[:2])
        if mask is not None:
            out["mask"] = mask
        if depth is not None:
            out["depth"] = depth
        return out

    def mask_classes(self) -> int:
        """The declared count, else the largest class in any mask + 1."""
        if self.declared_classes:
            return self.declared_classes
        top = 0
        for sample in self.ids:
            values = _read_mask(self.root / "mask" / f"{sample}.png", sample)
            if values is not None:
                top = max(top, int(values[values != 255].max(initial=0)))
        return top + 1
