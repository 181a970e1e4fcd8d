"""The resolved spec a run directory keeps: every default filled in, nothing left to merge or expand,
so it validates and runs again as it is (`mtlspec reproduce`, ensemble members of type runs)."""

from __future__ import annotations

from typing import Any

import yaml


def resolved_data(spec: Any) -> dict[str, Any]:
    """The spec as plain data, without the loader's instructions (`extends`, `matrix`): they were
    carried out to make this spec."""
    data = spec.model_dump(mode="json")
    for key in ("extends", "matrix"):
        data.pop(key, None)
    return data


def resolved_yaml(spec: Any) -> str:
    return yaml.safe_dump(resolved_data(spec), sort_keys=False, allow_unicode=True)
