"""An image per input for people to look at: the segmentation and instance masks blended in, boxes
with their class and score, the image-level predictions written in the corner, and each dense
value map (depth) as a panel of its own to the right, coloured from its own range."""

from __future__ import annotations

import colorsys
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from mtlspec.tasks.base import Form

MIN_SIDE = 256  # overlays of smaller images are drawn enlarged by a whole factor,
MAX_SIDE = 4096  # as long as the longer side stays within this


def palette(count: int) -> np.ndarray:
    """Distinct colours (index 0, background, stays black)."""
    colours = [(0, 0, 0)] + [tuple(int(255 * c) for c in colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.75, 1.0)) for i in range(max(count - 1, 0))]
    return np.array(colours[:max(count, 1)], np.uint8)


def draw(image: np.ndarray, predictions: dict[str, tuple[Form, Any, list[str]]], score_threshold: float,
         label_threshold: float = 0.5) -> Image.Image:
    """predictions: task -> (form, this image's prediction in original coordinates, class names).
    Images smaller than MIN_SIDE are drawn enlarged (whole pixels, the longer side at most
    MAX_SIDE), so labels stay readable."""
    zoom = max(1, min(-(-MIN_SIDE // max(1, min(image.shape[:2]))), MAX_SIDE // max(image.shape[:2])))
    canvas = np.kron(image, np.ones((zoom, zoom, 1), image.dtype)).astype(np.float32) if zoom > 1 else image.astype(np.float32)
    for task, (form, prediction, names) in predictions.items():
        if form is Form.CLASS_MAPS:
            labels = np.kron(np.asarray(prediction), np.ones((zoom, zoom), np.int64)) if zoom > 1 else np.asarray(prediction)
            colours = palette(int(labels.max(initial=0)) + 1)[labels]
            blend = labels > 0
            canvas[blend] = 0.5 * canvas[blend] + 0.5 * colours[blend]
            break  # one segmentation blended; more would hide each other
    for task, (form, prediction, names) in predictions.items():
        if form is Form.INSTANCES:  # each object's mask in its class's colour
            colours = palette(len(names) + 1)
            for mask, score, label in zip(prediction["masks"], prediction["scores"], prediction["labels"]):
                if float(score) >= score_threshold:
                    inside = np.kron(np.asarray(mask, bool), np.ones((zoom, zoom), bool)) if zoom > 1 else np.asarray(mask, bool)
                    canvas[inside] = 0.5 * canvas[inside] + 0.5 * colours[int(label) + 1]
    out = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    pen = ImageDraw.Draw(out)
    lines = []
    for task, (form, prediction, names) in predictions.items():
        name = lambda i: names[i] if i < len(names) else str(i)  # noqa: E731
        if form in (Form.BOXES, Form.INSTANCES):
            colours = palette(len(names) + 1)
            for box, score, label in zip(prediction["boxes"], prediction["scores"], prediction["labels"]):
                if float(score) < score_threshold:
                    continue
                colour = tuple(int(c) for c in colours[int(label) + 1])
                x1, y1, x2, y2 = (float(v) * zoom for v in box)
                pen.rectangle([x1, y1, x2, y2], outline=colour, width=max(1, round(min(out.size) / 200)))
                pen.text((x1 + 2, max(y1 - 11, 0)), f"{name(int(label))} {float(score):.2f}", fill=colour)
        elif form is Form.CLASS_PROBABILITIES:
            p = np.asarray(prediction)
            lines.append(f"{task}: {name(int(p.argmax()))} ({p.max():.2f})")
        elif form is Form.LABEL_PROBABILITIES:
            p = np.asarray(prediction)
            lines.append(f"{task}: {', '.join(name(int(i)) for i in np.flatnonzero(p >= label_threshold)) or '-'}")
        elif form is Form.VALUES:
            lines.append(f"{task}: {float(prediction):.3g}")
    for row, line in enumerate(lines):
        pen.text((3, 3 + 11 * row), line, fill=(255, 255, 0), stroke_width=1, stroke_fill=(0, 0, 0))
    panels = [value_panel(task, np.asarray(prediction, np.float32), zoom) for task, (form, prediction, _) in predictions.items()
              if form is Form.VALUE_MAPS]
    if not panels:
        return out
    whole = Image.new("RGB", (out.width * (1 + len(panels)), out.height))
    for n, image in enumerate([out, *panels]):
        whole.paste(image, (n * out.width, 0))
    return whole


def value_panel(task: str, values: np.ndarray, zoom: int) -> Image.Image:
    """A value map (depth) in viridis from its smallest to its largest value, the range written on it."""
    from matplotlib import colormaps

    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    scaled = np.clip((np.nan_to_num(values, nan=low) - low) / (high - low if high > low else 1.0), 0.0, 1.0)
    rgb = (colormaps["viridis"](scaled)[..., :3] * 255).astype(np.uint8)
    if zoom > 1:
        rgb = np.kron(rgb, np.ones((zoom, zoom, 1), np.uint8))
    panel = Image.fromarray(rgb)
    ImageDraw.Draw(panel).text((3, 3), f"{task}: {low:.3g} (dark) to {high:.3g}", fill=(255, 255, 255), stroke_width=1, stroke_fill=(0, 0, 0))
    return panel
