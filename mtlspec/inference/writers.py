"""Predictions written per task, by the form of its predictions (tasks/base.Form), in the formats
people load elsewhere: CSV for labels and values, COCO results JSON for boxes and instance masks
(original image coordinates, the dataset's category ids; masks run-length encoded), PNG maps for segmentation (class index per pixel) and
depth (16-bit, value x 256, the KITTI convention), all at the original image size."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mtlspec.io import write_bytes_atomic, write_text_atomic
from mtlspec.tasks.base import Form

DEPTH_SCALE = 256.0  # PNG value = depth x 256 (KITTI)


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG") if mode else Image.fromarray(array).save(buffer, format="PNG")
    write_bytes_atomic(path, buffer.getvalue())


class TaskWriter:
    """Collects one task's predictions, one image at a time; `close()` writes the files."""

    def __init__(self, out: Path, task: str, info: dict[str, Any], threshold: float = 0.5):
        self.out, self.task, self.info, self.threshold = out, task, info, threshold
        self.names = info.get("names") or [str(i) for i in range(int(info["num_classes"]))]
        self.form = None
        self.rows: list[list[Any]] = []
        self.detections: list[dict[str, Any]] = []
        self.files: list[str] = []

    def add(self, form: Form, key: str, image_id: int, prediction: Any) -> None:
        """prediction: this image's, already in original coordinates (see predict.restore)."""
        self.form = form
        if form is Form.CLASS_PROBABILITIES:
            p = np.asarray(prediction, np.float64)
            top = int(p.argmax())
            self.rows.append([key, top, self.names[top] if top < len(self.names) else str(top), f"{p[top]:.6f}", *(f"{v:.6f}" for v in p)])
        elif form is Form.LABEL_PROBABILITIES:
            p = np.asarray(prediction, np.float64)
            on = [self.names[i] if i < len(self.names) else str(i) for i in np.flatnonzero(p >= self.threshold)]
            self.rows.append([key, ";".join(on), *(f"{v:.6f}" for v in p)])
        elif form is Form.VALUES:
            self.rows.append([key, f"{float(prediction):.6g}"])
        elif form is Form.CLASS_MAPS:
            labels = np.asarray(prediction)
            path = self.out / self.task / f"{key}.png"
            _png(path, labels.astype(np.uint8) if labels.max(initial=0) < 256 else labels.astype(np.uint16))
            self.files.append(str(path.relative_to(self.out)))
        elif form is Form.VALUE_MAPS:
            path = self.out / self.task / f"{key}.png"
            _png(path, np.clip(np.rint(np.asarray(prediction, np.float64) * DEPTH_SCALE), 0, 65535).astype(np.uint16))
            self.files.append(str(path.relative_to(self.out)))
        elif form in (Form.BOXES, Form.INSTANCES):
            ids = self.info.get("category_ids")
            masks = prediction.get("masks") if form is Form.INSTANCES else None
            for n, (box, score, label) in enumerate(zip(prediction["boxes"], prediction["scores"], prediction["labels"])):
                x1, y1, x2, y2 = (float(v) for v in box)
                label = int(label)
                entry = {"image_id": image_id, "category_id": int(ids[label]) if ids else label + 1,
                         "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)], "score": round(float(score), 5)}
                if masks is not None:
                    from mtlspec.tasks.instance_segmentation import encode

                    entry["segmentation"] = encode(np.asarray(masks[n]))
                self.detections.append(entry)
        else:
            raise ValueError(f"no writer for predictions of the form {form}")

    def close(self) -> dict[str, Any]:
        """Write the task's files; what was written, for _predictions.json."""
        if self.form in (Form.CLASS_PROBABILITIES, Form.LABEL_PROBABILITIES, Form.VALUES):
            head = {Form.CLASS_PROBABILITIES: ["image", "class", "name", "score", *(f"p_{n}" for n in self.names)],
                    Form.LABEL_PROBABILITIES: ["image", "labels", *(f"p_{n}" for n in self.names)],
                    Form.VALUES: ["image", "value"]}[self.form]
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerows([head, *self.rows])
            write_text_atomic(self.out / f"{self.task}.csv", text.getvalue())
            return {"file": f"{self.task}.csv", "format": "csv"}
        if self.form in (Form.BOXES, Form.INSTANCES):
            write_text_atomic(self.out / f"{self.task}.json", json.dumps(self.detections))
            masks = ", segmentation as run-length encoding (pycocotools) at the original size" if self.form is Form.INSTANCES else ""
            return {"file": f"{self.task}.json", "format": f"COCO results (bbox x, y, width, height in original pixels{masks})",
                    "categories": [{"id": int(self.info["category_ids"][i]) if self.info.get("category_ids") else i + 1, "name": n}
                                   for i, n in enumerate(self.names)]}
        if self.form is Form.CLASS_MAPS:
            return {"folder": self.task, "format": "PNG, class index per pixel", "classes": self.names}
        if self.form is Form.VALUE_MAPS:
            return {"folder": self.task, "format": f"16-bit PNG, value x {DEPTH_SCALE:g} (0: none)"}
        return {}
