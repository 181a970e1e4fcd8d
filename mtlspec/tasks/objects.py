"""Objects in an image, as the detection and instance segmentation tasks read them: which are crowd
regions (COCO's iscrowd), and the objects that train."""

from __future__ import annotations

import numpy as np


def crowd_flags(record: dict, count: int) -> np.ndarray:
    """Which objects are crowd regions (COCO's iscrowd): left out of the loss, ignored in matching."""
    return np.asarray(record["crowd"], bool).reshape(-1) if "crowd" in record else np.zeros(count, bool)


def without_crowd(target: dict) -> dict:
    """A target's objects that train: crowd regions dropped (MMDetection's COCO loader ignores them too)."""
    if "crowd" not in target or not bool(target["crowd"].any()):
        return target
    keep = ~target["crowd"].bool()
    return {k: v[keep] for k, v in target.items() if k != "crowd"}
