"""`mtlspec predict`: a run's model on new images or on a split of its datasets, in batches.

Each image is letterboxed as in training (longer side to the spec's image size, padded bottom and
right); predictions are brought back to the original image (maps cropped and resized, boxes
scaled) before they are written (writers.py), with an overlay per image (overlay.py)."""

from __future__ import annotations

import io
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from PIL import Image

from mtlspec.data.transforms import normalize, resize_pad
from mtlspec.inference.inputs import SPLITS, Item, from_files, from_split
from mtlspec.inference.model_file import load_run, refuse_clips, refuse_meta, refuse_text
from mtlspec.inference.overlay import draw
from mtlspec.inference.writers import TaskWriter
from mtlspec.io import write_bytes_atomic, write_text_atomic
from mtlspec.tasks.base import Form

# predict's own files: names no task can have (task names are [a-z][a-z0-9_]*), so no task's output is overwritten
IMAGES, SUMMARY, OVERLAYS = "_images.json", "_predictions.json", "_overlays"


@dataclass
class Letterbox:
    """Where the image sits in the model's square input: its original and scaled sizes."""

    width: int
    height: int
    scaled_width: int
    scaled_height: int


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    return normalize(resize_pad({"image": image}, size)["image"]), Letterbox(w, h, nw, nh)


def restore(form: Form, prediction: Any, box: Letterbox) -> Any:
    """One image's prediction in its original coordinates."""
    if form is Form.CLASS_MAPS:
        labels = np.asarray(prediction)[: box.scaled_height, : box.scaled_width].astype(np.int32)
        return np.asarray(Image.fromarray(labels, "I").resize((box.width, box.height), Image.NEAREST)).astype(np.int64)
    if form is Form.VALUE_MAPS:
        values = np.asarray(prediction, np.float32)[: box.scaled_height, : box.scaled_width]
        return np.asarray(Image.fromarray(values, "F").resize((box.width, box.height), Image.BILINEAR))
    if form is Form.BOXES:
        factor = np.array([box.scaled_width / box.width, box.scaled_height / box.height] * 2, np.float32)
        boxes = np.asarray(prediction["boxes"], np.float32).reshape(-1, 4) / factor
        boxes = np.clip(boxes, 0, [box.width, box.height, box.width, box.height])
        return {"boxes": boxes, "scores": np.asarray(prediction["scores"]), "labels": np.asarray(prediction["labels"])}
    if form is Form.INSTANCES:
        out = restore(Form.BOXES, prediction, box)
        masks = np.asarray(prediction["masks"], np.uint8)[:, : box.scaled_height, : box.scaled_width]
        out["masks"] = np.stack([np.asarray(Image.fromarray(m).resize((box.width, box.height), Image.NEAREST)) > 0 for m in masks]) \
            if len(masks) else np.zeros((0, box.height, box.width), bool)
        return out
    return prediction.numpy() if torch.is_tensor(prediction) else prediction


def batches(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def predict(run_dir: Path, inputs: list[str], out: Path, batch_size: int = 16, device: str = "cpu", overlays: bool = True,
            score_threshold: float = 0.3, progress: Callable[[int, int], Any] | None = None, limit: int | None = None,
            split: str | None = None) -> dict[str, Any]:
    """Predict every task of the run on `inputs` (image files or folders, or one split name when
    no such path exists) or on `split` (a split of the run's data, whatever the current folder
    holds) into `out` (the first `limit` images only, when given); `progress(done, total)` after
    each batch."""
    loaded = load_run(run_dir)
    refuse_meta(loaded, "predict")
    refuse_text(loaded, "predict")
    refuse_clips(loaded, "predict")
    if split is None and len(inputs) == 1 and inputs[0] in SPLITS and not Path(inputs[0]).exists():
        split = inputs[0]
    if split is not None:
        count, items = from_split(loaded.spec, split, _data_root(run_dir))
        what = f"the {split} split of {', '.join(sorted({t.dataset for t in loaded.spec.tasks.values()}))}"
    else:
        count, items = from_files([Path(p) for p in inputs])
        what = ", ".join(inputs)
    if limit is not None:
        count, items = min(count, limit), itertools.islice(items, limit)
    model = loaded.model.to(torch.device(device))
    writers = {t: TaskWriter(out, t, loaded.tasks[t], getattr(tt.spec, "threshold", 0.5)) for t, tt in loaded.task_types.items()}
    images = []
    done = 0
    for batch in batches(items, batch_size):
        tensors, boxes = zip(*(letterbox(item.image, loaded.image_size) for item in batch))
        with torch.no_grad():
            outputs = model(torch.from_numpy(np.stack(tensors)).to(model_device(model)))
        per_image: list[dict[str, tuple[Form, Any, list[str]]]] = [{} for _ in batch]
        for task, tt in loaded.task_types.items():
            predicted = tt.predict(outputs[task], loaded.image_size)
            for i, (item, box) in enumerate(zip(batch, boxes)):
                if item.dataset is not None and item.dataset != tt.spec.dataset:
                    continue  # a split's sample gets the predictions of its own dataset's tasks
                one = predicted[i]
                if torch.is_tensor(one):
                    one = one.detach().float().cpu() if one.is_floating_point() else one.detach().cpu()
                elif isinstance(one, dict):
                    one = {k: v.detach().cpu() for k, v in one.items()}
                mine = restore(tt.form, one, box)
                writers[task].add(tt.form, item.key, item.image_id, mine)
                per_image[i][task] = (tt.form, mine, writers[task].names)
        for item, box, predictions in zip(batch, boxes, per_image):
            images.append({"id": item.image_id, "file_name": item.file or item.key, "key": item.key, "width": box.width, "height": box.height,
                           **({"dataset": item.dataset} if item.dataset is not None else {})})
            if overlays:
                path = out / OVERLAYS / f"{item.key}.png"
                buffer = io.BytesIO()
                draw(item.image, predictions, score_threshold).save(buffer, format="PNG")
                write_bytes_atomic(path, buffer.getvalue())
        done += len(batch)
        if progress is not None:
            progress(done, count)
    summary = {"run_dir": str(run_dir), "model": {"epoch": loaded.epoch, "selected": loaded.selected}, "inputs": what,
               "images": len(images), "image_size": loaded.image_size,
               "tasks": {t: {"type": loaded.tasks[t]["type"], **w.close()} for t, w in writers.items()},
               "overlays": f"{OVERLAYS}/" if overlays else None}
    write_text_atomic(out / IMAGES, json.dumps({"images": images}, indent=1))
    write_text_atomic(out / SUMMARY, json.dumps(summary, indent=2))
    return summary


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _data_root(run_dir: Path) -> Path:
    """The folder the run's data paths are relative to: that of the spec file it was run from."""
    manifest = run_dir / "manifest.json"
    info = json.loads(manifest.read_text()) if manifest.is_file() else {}
    return Path(info.get("spec_file") or run_dir / "spec.resolved.yaml").resolve().parent
