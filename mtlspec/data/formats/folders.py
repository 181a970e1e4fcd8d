"""Image folders (one sub-folder per class) and dense-label folders (image, PNG mask, NPY depth per sample)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mtlspec.data.formats.common import IMAGE_SUFFIXES, file_stats, partition, read_image
from mtlspec.data.records import DataError, Record, fingerprint


class ImageFolderSource:
    """root/<class>/<image>, or root/<split>/<class>/<image> when the split folders exist."""

    kind = "image_folder"

    def __init__(self, name: str, root: str | Path, split: str, seed: int):
        self.name, self.root = name, Path(root)
        if not self.root.is_dir():
            raise DataError("image folder is missing", str(self.root))
        base = self.root / split if (self.root / "train").is_dir() else self.root
        self.classes = sorted(p.name for p in (self.root / "train" if base != self.root else self.root).iterdir() if p.is_dir())
        if not self.classes:
            raise DataError("no class sub-folders", str(base))
        items = [(p, c) for c, name in enumerate(self.classes) for p in sorted((base / name).glob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
        self.items = items if base != self.root else [items[i] for i in partition(len(items), split, seed)]

    def __len__(self) -> int:
        return len(self.items)

    def fingerprint(self) -> str:
        return fingerprint(self.kind, {"root": str(self.root), "classes": self.classes}, file_stats([p for p, _ in self.items]))

    def check(self, index: int) -> None:
        path, _ = self.items[index]
        if not path.is_file():
            raise DataError("image file is missing", str(path), path.name)

    def record(self, index: int) -> Record:
        path, label = self.items[index]
        return {"image": read_image(path, path.name), "labels": {"class": label}, "meta": {"dataset": self.name, "index": index, "file": str(path)}}

    def num_classes(self, label: str | None, task_type: str) -> int:
        return len(self.classes)


class DenseFolderSource:
    """root/<split>/image/<id>.png with root/<split>/mask/<id>.png and/or root/<split>/depth/<id>.npy."""

    kind = "dense_folder"

    def __init__(self, name: str, root: str | Path, split: str, num_classes: int | None = None):
        self.name, self.root = name, Path(root) / split
        if not (self.root / "image").is_dir():
            raise DataError("no image/ folder for this split", str(self.root))
        self.ids = sorted(p.stem for p in (self.root / "image").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        self.suffix = {p.stem: p.name for p in (self.root / "image").glob("*")}
        self.declared_classes = num_classes

    def __len__(self) -> int:
        return len(self.ids)

    def fingerprint(self) -> str:
        files = [self.root / "image" / self.suffix[i] for i in self.ids]
        return fingerprint(self.kind, {"root": str(self.root), "count": len(self.ids)}, file_stats(files))

    def _mask(self, sample: str, shape: tuple[int, int]) -> np.ndarray | None:
        path = self.root / "mask" / f"{sample}.png"
        if not path.is_file():
            return None
        with Image.open(path) as image:
            mask = np.asarray(image).astype(np.int64)
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

    def num_classes(self, label: str | None, task_type: str) -> int:
        if self.declared_classes:
            return self.declared_classes
        top = 0
        for sample in self.ids:
            path = self.root / "mask" / f"{sample}.png"
            if path.is_file():
                with Image.open(path) as image:
                    values = np.asarray(image)
                    top = max(top, int(values[values != 255].max(initial=0)))
        return top + 1
