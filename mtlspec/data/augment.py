"""Training-time augmentation of one record, keeping every label consistent with the image.

A random resized crop (boxes clipped and dropped below a visible fraction with their instance
masks, masks and depth cropped with the image), photometric jitter and RandAugment's photometric operations (no label
moves). Each draw comes from a generator seeded by (seed, epoch, sample), so a sample's
augmentation is the same on every machine, worker and resume. Records are never changed in place.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from mtlspec.data.records import Record


def augment(record: Record, spec: Any, rng: np.random.Generator) -> Record:
    """The record after the spec's transforms (`spec`: the dataset's `augment` section)."""
    if spec.crop is not None and rng.random() < spec.crop.p:
        record = resized_crop(record, spec.crop, rng)
    if spec.photometric is not None and rng.random() < spec.photometric.p:
        record = {**record, "image": photometric(record["image"], spec.photometric, rng)}
    if spec.randaugment is not None:
        record = {**record, "image": randaugment(record["image"], spec.randaugment.n, spec.randaugment.magnitude, rng)}
    return record


def crop_window(height: int, width: int, scale: list[float], ratio: list[float], rng: np.random.Generator) -> tuple[int, int, int, int] | None:
    """(x0, y0, crop width, crop height) of `scale` of the area at an aspect ratio in `ratio`
    (drawn on a log scale); None after 10 draws that do not fit."""
    for _ in range(10):
        area = height * width * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 1 <= cw <= width and 1 <= ch <= height:
            return int(rng.integers(0, width - cw + 1)), int(rng.integers(0, height - ch + 1)), cw, ch
    return None


def resized_crop(record: Record, spec: Any, rng: np.random.Generator) -> Record:
    image = record["image"]
    window = crop_window(image.shape[0], image.shape[1], spec.scale, spec.ratio, rng)
    if window is None:
        return record
    x0, y0, cw, ch = window
    out = dict(record)
    for key in ("image", "mask", "depth"):
        if key in record:
            out[key] = np.ascontiguousarray(record[key][y0 : y0 + ch, x0 : x0 + cw])
    if "boxes" in record:
        boxes = np.asarray(record["boxes"], np.float32).reshape(-1, 4)
        moved = boxes - np.array([x0, y0, x0, y0], np.float32)
        clipped = np.clip(moved, 0, [cw, ch, cw, ch]).astype(np.float32)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
        keep = (visible > 0) & (visible >= spec.min_visible * np.maximum(area, 1e-12))
        out["boxes"] = clipped[keep]
        out["box_labels"] = np.asarray(record["box_labels"])[keep]
        if "crowd" in record:
            out["crowd"] = np.asarray(record["crowd"])[keep]
        if "instance_masks" in record:  # each object's pixels cropped with the image, kept with its box
            out["instance_masks"] = np.ascontiguousarray(record["instance_masks"][keep][:, y0 : y0 + ch, x0 : x0 + cw])
    return out


def _hue_shift(image: Image.Image, shift: float) -> Image.Image:
    h, s, v = image.convert("HSV").split()
    h = h.point(lambda x: int(x + shift * 256) % 256)
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def photometric(image: np.ndarray, spec: Any, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, saturation and hue, in a random order (as torchvision's ColorJitter)."""
    picture = Image.fromarray(image)
    steps = [("brightness", lambda im, f: ImageEnhance.Brightness(im).enhance(f)),
             ("contrast", lambda im, f: ImageEnhance.Contrast(im).enhance(f)),
             ("saturation", lambda im, f: ImageEnhance.Color(im).enhance(f)),
             ("hue", _hue_shift)]
    for k in rng.permutation(len(steps)):
        name, apply = steps[int(k)]
        amount = getattr(spec, name)
        if amount > 0:
            factor = rng.uniform(-amount, amount) if name == "hue" else rng.uniform(max(0.0, 1 - amount), 1 + amount)
            picture = apply(picture, factor)
    return np.asarray(picture, np.uint8).copy()


def _enhance(kind):
    return lambda im, m, sign: kind(im).enhance(1.0 + sign * 0.9 * m)


RANDAUGMENT = {
    "autocontrast": lambda im, m, sign: ImageOps.autocontrast(im),
    "equalize": lambda im, m, sign: ImageOps.equalize(im),
    "posterize": lambda im, m, sign: ImageOps.posterize(im, max(1, 8 - int(round(4 * m)))),
    "solarize": lambda im, m, sign: ImageOps.solarize(im, int(round(256 - 256 * m))),
    "color": _enhance(ImageEnhance.Color),
    "contrast": _enhance(ImageEnhance.Contrast),
    "brightness": _enhance(ImageEnhance.Brightness),
    "sharpness": _enhance(ImageEnhance.Sharpness),
}


def randaugment(image: np.ndarray, n: int, magnitude: int, rng: np.random.Generator) -> np.ndarray:
    """`n` operations drawn uniformly (with replacement) at magnitude/10, each enhancement's
    direction drawn at random."""
    picture = Image.fromarray(image)
    names = list(RANDAUGMENT)
    for _ in range(n):
        name = names[int(rng.integers(len(names)))]
        picture = RANDAUGMENT[name](picture, magnitude / 10.0, 1.0 if rng.random() < 0.5 else -1.0)
    return np.asarray(picture.convert("RGB"), np.uint8).copy()
