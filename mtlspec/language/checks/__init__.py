"""Rules across sections that the schema alone cannot state, checked without torch or mmdet: one
module per section (tasks, data, model and weighting, training, ensemble, meta, matrix, clips), and the
`not-implemented` warnings (capabilities). `check(data)` runs every rule on raw spec data."""

from __future__ import annotations

from typing import Any

from mtlspec.language.checks.capabilities import check_capabilities, language_types
from mtlspec.language.checks.clips import check_clips
from mtlspec.language.checks.common import Finding, entries, get_in, tag
from mtlspec.language.checks.data import check_data
from mtlspec.language.checks.ensemble import check_ensemble
from mtlspec.language.checks.matrix import check_matrix
from mtlspec.language.checks.meta import check_meta
from mtlspec.language.checks.model import check_weighting
from mtlspec.language.checks.tasks import check_tasks
from mtlspec.language.checks.training import check_training

__all__ = ["Finding", "check", "check_capabilities", "check_matrix", "entries", "get_in", "language_types", "tag"]


def check(data: Any) -> list[Finding]:
    """Every cross-section rule, on raw spec data (the matrix is checked before it is expanded)."""
    if not isinstance(data, dict):
        return []
    return [*check_tasks(data), *check_data(data), *check_weighting(data), *check_training(data), *check_ensemble(data), *check_meta(data), *check_clips(data)]
