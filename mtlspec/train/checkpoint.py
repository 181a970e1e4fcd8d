"""Checkpoints: written atomically (temporary file, fsync, rename) with everything a resume needs,
and read back with torch's weights-only loader, so a checkpoint can hold tensors, numbers, strings,
lists and dicts and nothing that runs code when it is opened (a planted pickle is refused)."""

from __future__ import annotations

import io
import math
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtlspec.io import write_bytes_atomic

# A weight of this size means the run has diverged (a sane network's weights stay far below it;
# float32 overflows near 3e38): such a state is not saved as a checkpoint to resume from.
MAX_ABS_WEIGHT = 1e8


class CheckpointError(Exception):
    """A checkpoint that cannot be used: unreadable, not one mtlspec wrote, or made by a different spec."""


def rng_state() -> dict[str, Any]:
    """Every random generator's state, as tensors and plain values."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["position"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def plain(value: Any) -> Any:
    """The value with numpy arrays as tensors and numpy scalars as Python numbers: what the
    weights-only loader reads back."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    return value


def save(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(plain(state), buffer)
    write_bytes_atomic(path, buffer.getvalue())


def read(path: Path) -> dict[str, Any]:
    """A checkpoint's contents, loaded without running any code it might carry."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} was not loaded: it holds more than tensors and plain values, so mtlspec did not "
                              f"write it, and loading it could run code ({first[:160]})") from None
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a checkpoint mtlspec wrote (no model state in it)")
    return state


def load(path: Path, spec_hash: str) -> dict[str, Any]:
    """Load a checkpoint, refusing one made from a different spec."""
    state = read(path)
    if state.get("spec_hash") != spec_hash:
        raise CheckpointError(
            f"checkpoint {path} was made from a different spec (hash {str(state.get('spec_hash'))[:12]}, "
            f"this spec {spec_hash[:12]}); resume only with the spec that made it"
        )
    return state


def unhealthy(model: torch.nn.Module) -> str | None:
    """Why the model's state is not worth resuming from (a weight that is not finite, or so large
    the run has diverged), or None."""
    for name, tensor in model.state_dict().items():
        if not tensor.is_floating_point() or tensor.numel() == 0:
            continue
        top = float(tensor.detach().abs().max())
        if not math.isfinite(top) or top > MAX_ABS_WEIGHT:
            return f"'{name}' holds {'a non-finite value' if not math.isfinite(top) else f'a weight of {top:.3g}'}"
    return None


def epoch_file(epochs_done: int) -> str:
    """The checkpoint at the end of an epoch."""
    return f"epoch-{epochs_done:04d}.pt"


def step_file(epochs_done: int, step: int) -> str:
    """A checkpoint within epoch `epochs_done + 1`, after `step` steps in all. The names sort in
    training order: "epoch-0003_step-..." after "epoch-0003.pt" ('_' sorts after '.') and before
    "epoch-0004.pt"."""
    return f"epoch-{epochs_done:04d}_step-{step:09d}.pt"


def prune(folder: Path, keep: int) -> None:
    """Keep the newest `keep` checkpoints (of epoch ends and within epochs)."""
    old = sorted(folder.glob("epoch-*.pt"))[:-keep]
    for path in old:
        path.unlink(missing_ok=True)


def latest(folder: Path) -> Path | None:
    found = sorted(folder.glob("epoch-*.pt"))
    return found[-1] if found else None


def remove_partial_writes(folder: Path) -> list[Path]:
    """Temporary files an interrupted atomic write left behind (the file they were to become is
    intact: the rename never happened)."""
    found = sorted(folder.glob(".*.tmp")) if folder.is_dir() else []
    for path in found:
        path.unlink(missing_ok=True)
    return found
