"""One module per task type: its data (targets, placeholders, batches), head, loss (masked by `has`,
weighted per sample), predictions, ensemble form, metrics and trivial baseline (base.TaskType).

TASK_TYPES names where each type's class lives, by the spec's `type` tag: a plain dict that costs no
import (capabilities.py reads it without torch); `task_type_class` imports the one asked for.
Adding a task type is a module here, an entry below, and its section in language/tasks.py.
"""

from __future__ import annotations

import importlib
from typing import Any

TASK_TYPES: dict[str, Any] = {
    "classification": "mtlspec.tasks.classification:Classification",
    "multilabel": "mtlspec.tasks.multilabel:Multilabel",
    "regression": "mtlspec.tasks.regression:Regression",
    "detection": "mtlspec.tasks.detection:Detection",
    "segmentation": "mtlspec.tasks.segmentation:Segmentation",
    "instance_segmentation": "mtlspec.tasks.instance_segmentation:InstanceSegmentation",
    "depth": "mtlspec.tasks.depth:Depth",
    "zero_shot": "mtlspec.tasks.zero_shot:ZeroShot",
    "image_text_retrieval": "mtlspec.tasks.image_text_retrieval:ImageTextRetrieval",
    "vqa": "mtlspec.tasks.vqa:VQA",
    "clip_classification": "mtlspec.tasks.clip_classification:ClipClassification",
    "temporal_localization": "mtlspec.tasks.temporal_localization:TemporalLocalization",
    "frame_detection": "mtlspec.tasks.per_frame:FrameDetection",
    "frame_segmentation": "mtlspec.tasks.per_frame:FrameSegmentation",
}


VARIANTS: dict[str, tuple[str, dict[str, str]]] = {  # a type whose class depends on one field of its section
    "zero_shot": ("method", {"text": "mtlspec.tasks.zero_shot_text:ZeroShotText"}),
}


def section_task_type(section: Any) -> Any:
    """The TaskType subclass of a task section: its type's, or a variant's that a field selects
    (a zero-shot task with `method: text` reads its descriptions through the text tower)."""
    field, classes = VARIANTS.get(section.type, (None, {}))
    entry = classes.get(getattr(section, field, None)) if field else None
    if entry is not None:
        module, _, cls = entry.partition(":")
        return getattr(importlib.import_module(module), cls)
    return task_type_class(section.type)


def task_type_class(name: str) -> Any:
    """The TaskType subclass of a `type` tag (an entry may also be the class itself)."""
    entry = TASK_TYPES[name]
    if isinstance(entry, str):
        module, _, cls = entry.partition(":")
        return getattr(importlib.import_module(module), cls)
    return entry
