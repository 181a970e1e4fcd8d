"""What made a run: spec hash, seed, versions, git commit, device, dataset fingerprints, wall time."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any


def spec_hash(spec: Any) -> str:
    """A hash of the resolved spec: the same spec, however it was written or composed, hashes the same."""
    return hashlib.sha256(json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def _git_commit(where: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=where, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("mtlspec", "torch", "numpy", "mmengine", "mmcv", "mmdet", "pycocotools", "scikit-learn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def manifest(spec: Any, source: str, variant: str, digest: str, **extra: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "spec_file": str(Path(source).resolve()) if source else source,  # absolute: data paths are relative to its folder, wherever a later command runs
        "variant": variant,
        "spec_hash": digest,
        "seed": spec.seed,
        "versions": versions(),
        "git_commit": _git_commit(Path(source).resolve().parent) if source else None,
        "platform": f"{platform.system()} {platform.machine()}",
        **extra,
    }
