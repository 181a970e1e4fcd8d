"""Starting a backbone from weights in a local file, and freezing parts of it.

The file may be a torchvision ResNet state dict, an MMDetection or MMPretrain checkpoint, or an
mtlspec run (its directory, model.pt or a checkpoint); it is read with torch's weights-only
loader. Keys are mapped to the backbone's own names (a stem and stages): torchvision's and
MMDetection's ResNet share `conv1`, `bn1`, `layer1..4` (MMDetection's PVT has `layers.0..3`,
each a stage whole); MMDetection and MMPretrain put the
backbone under `backbone.`; an mtlspec model keeps it as `topology.stem` and `topology.trunk`
(the shared trunk of hard sharing). Tensors whose name and shape match are loaded; the rest is
reported. Nothing matching is an error, not a silent start from scratch.
"""

from __future__ import annotations

import pickle
import re
import types
from pathlib import Path
from typing import Any

import torch
from torch import nn


# Checkpoints as the original Swin and PVT repositories publish them (MMDetection converts them first).
ORIGINAL_LAYOUTS = {"Swin Transformer": r"layers\.\d+\.blocks\.", "PVT": r"(patch_embed1|block1)\."}
CONVERTERS = {"Swin Transformer": "swin2mmdet.py", "PVT": "pvt2mmdet.py"}


class InitError(Exception):
    """The checkpoint cannot start this backbone: unreadable, unsafe, or nothing in it matches."""


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint file (or of an mtlspec run directory's model.pt / latest checkpoint)."""
    if path.is_dir():
        found = [path / "model.pt"] if (path / "model.pt").is_file() else sorted((path / "checkpoints").glob("epoch-*.pt"))[-1:]
        if not found:
            raise InitError(f"{path} is a folder without model.pt or checkpoints/epoch-*.pt: not an mtlspec run directory")
        path = found[0]
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InitError(f"{path} holds more than tensors and plain values, so loading it could run code; it was not loaded. "
                        f"Save its weights alone (torch.save(model.state_dict(), file)) and name that file") from None
    except Exception as exc:
        raise InitError(f"cannot read {path}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # MMEngine (MMDetection, MMPretrain)
        state = state["state_dict"]
    elif isinstance(state, dict) and isinstance(state.get("model"), dict):  # mtlspec checkpoints and model.pt
        state = state["model"]
    if not isinstance(state, dict):
        raise InitError(f"{path} holds a {type(state).__name__}, not a state dict")
    return {k: v for k, v in state.items() if isinstance(k, str) and torch.is_tensor(v)}


def backbone_names(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors under the backbone's own names (stem.*, stages.i.*)."""
    tensors = {k.removeprefix("module."): v for k, v in tensors.items()}  # saved from a DataParallel/DDP wrapper
    if any(k.startswith("topology.") for k in tensors):  # an mtlspec model: its shared stem and trunk
        out = {}
        for key, value in tensors.items():
            if key.startswith("topology.stem."):
                out["stem." + key.removeprefix("topology.stem.")] = value
            elif (m := re.match(r"topology\.trunk\.(\d+)\.(.*)", key)):
                out[f"stages.{m[1]}.{m[2]}"] = value
            elif (m := re.match(r"topology\.(?:shared_branch\.)?neck\.norms\.(\d+)\.(.*)", key)):  # Swin's output norms, in a shared neck
                out[f"out_norms.{m[1]}.{m[2]}"] = value
        return out
    if any(k.startswith("backbone.") for k in tensors):  # MMDetection / MMPretrain: the backbone part
        tensors = {k.removeprefix("backbone."): v for k, v in tensors.items() if k.startswith("backbone.")}
    original = next((kind for kind, pattern in ORIGINAL_LAYOUTS.items() if any(re.match(pattern, k) for k in tensors)), None)
    if original is not None:
        raise InitError(f"the file is in the original {original} repository's layout, which MMDetection converts before loading; "
                        f"convert it with MMDetection's tools/model_converters/{CONVERTERS[original]} and name the converted file")
    out = {}
    for key, value in tensors.items():  # torchvision's and MMDetection's ResNet names
        if key.startswith("conv1."):
            out["stem.0." + key.removeprefix("conv1.")] = value
        elif key.startswith("bn1."):
            out["stem.1." + key.removeprefix("bn1.")] = value
        elif (m := re.match(r"layer(\d+)\.(.*)", key)):
            out[f"stages.{int(m[1]) - 1}.{m[2]}"] = value
        elif (m := re.match(r"layers\.(\d+)\.(.*)", key)):  # MMDetection's PVT: layers[i] is stage i whole
            out[f"stages.{m[1]}.layer.{m[2]}"] = value
        elif key.startswith("patch_embed."):  # MMDetection's Swin: its stem, merges and output norms
            out["stem." + key] = value
        elif (m := re.match(r"stages\.(\d+)\.downsample\.(.*)", key)):
            out[f"stages.{int(m[1]) + 1}.merge.{m[2]}"] = value
        elif (m := re.match(r"norm(\d+)\.(.*)", key)):
            out[f"out_norms.{m[1]}.{m[2]}"] = value
        else:
            out[key] = value
    return out


def load_init(backbone: nn.Module, path: Path) -> dict[str, Any]:
    """Load what matches; a report of what was loaded, missing, unused or of another shape."""
    tensors = read_tensors(path)
    mapped = backbone_names(tensors)
    own = backbone.state_dict()
    matched = {k: v for k, v in mapped.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    mismatched = sorted(f"{k} {tuple(v.shape)} (backbone {tuple(own[k].shape)})" for k, v in mapped.items() if k in own and k not in matched)
    report = {"checkpoint": str(path), "loaded": len(matched), "of": len(own),
              "missing": sorted(k for k in own if k not in matched), "unused": sorted(k for k in mapped if k not in own),
              "mismatched": mismatched}
    if not matched:
        first = ", ".join(sorted(tensors)[:4]) or "no tensors"
        raise InitError(f"nothing in {path} matches the backbone's {len(own)} tensors (the file has {first}, ...; the backbone "
                        f"wants {', '.join(sorted(own)[:3])}, ...): is it the same architecture?")
    if not any(t.is_meta for t in own.values()):  # on the meta device (run's preflight) matching is the check
        backbone.load_state_dict(matched, strict=False)
    return report


def _stay_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    """train() of a frozen part: it and everything in it stay in eval mode (no dropout, no stochastic
    depth, fixed statistics), as MMDetection's _freeze_stages leaves them."""
    return nn.Module.train(self, False)


class FixedBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm layer that stays in eval mode when its model trains (statistics fixed)."""

    def train(self, mode: bool = True) -> "FixedBatchNorm2d":
        return super().train(False)


def freeze(backbone: nn.Module, frozen_stages: int, norm_eval: bool) -> None:
    """MMDetection's semantics: frozen_stages k >= 0 freezes the stem and the first k stages (no
    gradient, eval mode: statistics fixed, no dropout or stochastic depth); norm_eval fixes every
    BatchNorm's statistics."""
    frozen = [backbone.stem, *list(backbone.stages)[:frozen_stages]] if frozen_stages >= 0 else []
    if frozen_stages > 0 and getattr(backbone, "out_norms", None) is not None:  # Swin: MMDetection freezes a stage with its norm
        frozen += list(backbone.out_norms)[:frozen_stages]   # and the patch merging after it (the next stage's merge here)
        if frozen_stages < len(backbone.stages) and getattr(backbone.stages[frozen_stages], "merge", None) is not None:
            frozen.append(backbone.stages[frozen_stages].merge)
    for part in frozen:
        for p in part.parameters():
            p.requires_grad_(False)
        part.train = types.MethodType(_stay_eval, part)  # copies of the part (topologies deep-copy) are bound to themselves
        part.eval()
    for part in [backbone] if norm_eval else frozen:
        for module in part.modules():
            if type(module) is nn.BatchNorm2d:
                module.__class__ = FixedBatchNorm2d
                module.eval()
