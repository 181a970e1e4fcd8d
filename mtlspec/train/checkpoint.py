"""Checkpoints written atomically (temporary file, fsync, rename) with everything a resume needs."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtlspec.io import write_bytes_atomic


class CheckpointError(Exception):
    """A checkpoint that cannot be used: unreadable, or made by a different spec."""


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def load(path: Path, spec_hash: str) -> dict[str, Any]:
    """Load a checkpoint, refusing one made from a different spec."""
    try:
        # Our own checkpoints hold numpy RNG state and plain Python values next to tensors.
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from None
    if state.get("spec_hash") != spec_hash:
        raise CheckpointError(
            f"checkpoint {path} was made from a different spec (hash {str(state.get('spec_hash'))[:12]}, "
            f"this spec {spec_hash[:12]}); resume only with the spec that made it"
        )
    return state


def prune(folder: Path, keep: int) -> None:
    """Keep the newest `keep` epoch checkpoints."""
    old = sorted(folder.glob("epoch-*.pt"))[:-keep]
    for path in old:
        path.unlink(missing_ok=True)


def latest(folder: Path) -> Path | None:
    found = sorted(folder.glob("epoch-*.pt"))
    return found[-1] if found else None
