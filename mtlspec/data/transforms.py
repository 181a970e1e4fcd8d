"""Transforms that keep every label consistent with the image: resize-and-pad, horizontal flip, normalize."""

from __future__ import annotations

import numpy as np
from PIL import Image

from mtlspec.data.records import IGNORE_INDEX, Record

MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255


def _resize_array(array: np.ndarray, width: int, height: int, resample: int) -> np.ndarray:
    if array.ndim == 3:
        return np.asarray(Image.fromarray(array).resize((width, height), resample))
    mode = "F" if array.dtype.kind == "f" else "I"
    return np.asarray(Image.fromarray(array.astype(np.float32 if mode == "F" else np.int32), mode).resize((width, height), resample)).astype(array.dtype)


def resize_pad(record: Record, size: int) -> Record:
    """Scale the longer side to `size` and pad to size x size (bottom and right).

    Boxes scale with the image; masks and depth use nearest-neighbour values; padding is
    background-free: the mask there is ignored and the depth unknown (0).
    """
    image = record["image"]
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return record
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    out = dict(record)
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[:nh, :nw] = _resize_array(image, nw, nh, Image.BILINEAR)
    out["image"] = canvas
    if "mask" in record:
        mask = np.full((size, size), IGNORE_INDEX, np.int64)
        mask[:nh, :nw] = _resize_array(record["mask"], nw, nh, Image.NEAREST)
        out["mask"] = mask
    if "depth" in record:
        depth = np.zeros((size, size), np.float32)
        depth[:nh, :nw] = _resize_array(record["depth"], nw, nh, Image.NEAREST)
        out["depth"] = depth
    if "boxes" in record:
        out["boxes"] = (record["boxes"] * np.array([nw / w, nh / h, nw / w, nh / h], np.float32)).astype(np.float32)
    if "instance_masks" in record:
        masks = np.zeros((len(record["instance_masks"]), size, size), np.uint8)
        for n, m in enumerate(record["instance_masks"]):
            masks[n, :nh, :nw] = _resize_array(m, nw, nh, Image.NEAREST)
        out["instance_masks"] = masks
    return out


def hflip(record: Record) -> Record:
    """Mirror left-right; boxes move with the image (x1' = W - x2, x2' = W - x1), and `left` and
    `right` trade places in its text."""
    out = dict(record)
    width = record["image"].shape[1]
    out["image"] = np.ascontiguousarray(record["image"][:, ::-1])
    for key in ("mask", "depth", "instance_masks"):
        if key in record:
            out[key] = np.ascontiguousarray(record[key][..., ::-1])
    if "boxes" in record:
        boxes = record["boxes"].copy()
        boxes[:, [0, 2]] = width - record["boxes"][:, [2, 0]]
        out["boxes"] = boxes
    if "text" in record:  # "the 3 on the left" is on the right of the mirrored image
        from mtlspec.text.flip import swap_sides

        out["text"] = {field: swap_sides(value) for field, value in record["text"].items()}
    return out


def normalize(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) float32, standardised with ImageNet statistics."""
    return ((image.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1).copy()
