"""How a task that reads an image and a text together fuses them (model.fusion.type): one class per
file, each mapping (image features, TextFeatures) to one fused vector of `hidden` channels.

FUSIONS is a plain dict from the spec's tag to the class's module; `build_fusion` imports the one
asked for.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

FUSIONS = {
    "late": "mtlspec.model.fusion.late:LateFusion",
    "film": "mtlspec.model.fusion.film:FiLMFusion",
    "cross_attention": "mtlspec.model.fusion.cross_attention:CrossAttentionFusion",
}


def build_fusion(spec: Any, vector_channels: int, pyramid_channels: int, strides: list[int], image_size: int, text_width: int) -> Any:
    module, _, name = FUSIONS[spec.type].partition(":")
    cls = getattr(importlib.import_module(module), name)
    return cls(spec, vector_channels, pyramid_channels, strides, image_size, text_width)


def spatial_level(strides: list[int], image_size: int, most: int = 16) -> tuple[int, int]:
    """(index, side) of the finest pyramid level whose side is at most `most` positions (the
    coarsest level where none is): enough positions to tell left from right, few enough to attend."""
    sides = [math.ceil(image_size / s) for s in strides]
    for index, side in enumerate(sides):
        if side <= most:
            return index, side
    return len(sides) - 1, sides[-1]
