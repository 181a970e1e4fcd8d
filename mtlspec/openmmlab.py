"""The single door to MMDetection's registry: modules are built here from config dicts, quietly."""

from __future__ import annotations

import functools
import logging
from typing import Any

from torch import nn


@functools.cache
def _registry() -> Any:
    import warnings

    # MMDetection's prior generators call torch.meshgrid without `indexing` (same result, a warning per step).
    warnings.filterwarnings("ignore", message="torch.meshgrid", category=UserWarning)
    warnings.filterwarnings("ignore", message="DeprecationWarning: `num_anchors` is deprecated", category=UserWarning)
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.logging import MMLogger

    register_all_modules(init_default_scope=False)
    # init_weights() logs every parameter at INFO; a run's console is for the run.
    MMLogger.get_instance("mmengine").setLevel(logging.WARNING)
    return MODELS


def build_module(config: dict[str, Any]) -> nn.Module:
    """Build an MMDetection module (backbone, neck, head) and initialise its weights. Under the
    meta device (the preflight), it is built on the CPU and moved: MMDetection's transformers read
    numbers out of tensors while they are built (stochastic-depth rates), which meta tensors refuse."""
    import torch

    if torch.empty(0).device.type == "meta":
        with torch.device("cpu"):
            return _registry().build(config).to("meta")
    module = _registry().build(config)
    if not any(p.is_meta for p in module.parameters()):  # on the meta device only shapes matter
        from mmengine.logging import MMLogger

        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.ERROR)  # transformers warn "no pre-trained weights": mtlspec loads its own (model/init.py)
        try:
            module.init_weights()
        finally:
            logger.setLevel(level)
    return module


def build_tracker(config: dict[str, Any]) -> Any:
    """Build an MMDetection tracker (ByteTracker, SORT ...: plain objects, not modules, holding the
    tracks of one video between calls of `track`)."""
    return _registry().build(config)
