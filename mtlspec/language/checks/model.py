"""Rules on `model` and `weighting` together: gradient methods need shared parameters (and a shared
representation for `space: representation`), static weights name tasks, and the sharing topology
fits the backbone's stages."""

from __future__ import annotations

from typing import Any

from mtlspec.language.base import default
from mtlspec.language.checks.common import Finding, entries, get_in, tag, tag_or_default
from mtlspec.language.diagnose import did_you_mean
from mtlspec.language.model import NO_SHARED_PARAMETERS, PLE, SINGLE_REPRESENTATION, ResNet, SmallCNN
from mtlspec.language.root import Spec
from mtlspec.language.weighting import GRADIENT_METHODS

LOSS_BASED = "ew, uw, dwa, rlw, gls or famo"


def num_stages(backbone: Any) -> int | None:
    """How many stages the backbone has (None when the spec does not say it clearly)."""
    kind = tag_or_default(backbone, default(Spec, "model", "backbone", "type"))
    backbone = backbone if isinstance(backbone, dict) else {}
    if kind in ("ResNet", "ResNeXt"):
        n = backbone.get("num_stages", default(ResNet, "num_stages"))
        return n if isinstance(n, int) else None
    if kind in ("RegNet", "PVT", "PVTv2", "Swin"):
        return 4
    if kind == "SmallCNN":
        channels = backbone.get("channels", default(SmallCNN, "channels"))
        return len(channels) if isinstance(channels, list) else None
    return None


def check_weighting(data: dict) -> list[Finding]:
    out: list[Finding] = []
    weighting, sharing = data.get("weighting"), get_in(data, "model", "sharing")
    method = tag_or_default(weighting, default(Spec, "weighting", "type"))
    topology = tag_or_default(sharing, default(Spec, "model", "sharing", "type"))
    tasks = entries(data.get("tasks"))
    if method in GRADIENT_METHODS and topology in NO_SHARED_PARAMETERS:
        out.append(Finding(("weighting", "type"), "incompatible",
                           f"{method} combines per-task gradients of shared parameters, but sharing '{topology}' shares none; "
                           f"use a loss-based method ({LOSS_BASED}) or a topology with shared parameters"))
    if method in GRADIENT_METHODS and isinstance(data.get("tasks"), dict) and len(data["tasks"]) < 2:
        out.append(Finding(("weighting", "type"), "incompatible", f"{method} balances the gradients of several tasks; this spec has one"))
    if isinstance(weighting, dict) and weighting.get("space") == "representation" and topology not in SINGLE_REPRESENTATION and topology not in NO_SHARED_PARAMETERS:
        out.append(Finding(("weighting", "space"), "incompatible",
                           f"representation-space gradients need one shared representation that every task reads; "
                           f"sharing '{topology}' has none (it has them in: {', '.join(SINGLE_REPRESENTATION)}); use space: params"))
    if method == "static" and isinstance(weighting.get("weights"), dict):
        for task in weighting["weights"]:
            if tasks and task not in tasks:
                out.append(Finding(("weighting", "weights", task), "unknown-task", f"no task '{task}'{did_you_mean(task, list(tasks))}", "key"))
    out.extend(_stages(data, topology, sharing))
    out.extend(_heads_divide(get_in(data, "model", "backbone")))
    return out


def _heads_divide(backbone: Any) -> list[Finding]:
    """Swin's stage i is embed_dims x 2^i wide and splits that over num_heads[i] attention heads."""
    if not isinstance(backbone, dict) or tag(backbone) != "Swin":
        return []
    from mtlspec.language.model import Swin

    dims = backbone.get("embed_dims", default(Swin, "embed_dims"))
    heads = backbone.get("num_heads", default(Swin, "num_heads"))
    if not isinstance(dims, int) or not isinstance(heads, list) or not all(isinstance(h, int) and h > 0 for h in heads):
        return []
    bad = [(i, dims * 2**i, h) for i, h in enumerate(heads) if (dims * 2**i) % h]
    return [Finding(("model", "backbone", "num_heads"), "incompatible", "stage {} is {} wide, which {} heads do not divide".format(*bad[0])
                    + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))] if bad else []


def _frozen(data: dict) -> list[Finding]:
    """frozen_stages names stages the backbone has; freezing all of a trunk that every task shares
    leaves the gradient methods nothing shared to combine."""
    backbone = get_in(data, "model", "backbone")
    frozen = backbone.get("frozen_stages") if isinstance(backbone, dict) else None
    stages = num_stages(backbone)
    if isinstance(frozen, int) and stages is not None and frozen > stages:
        return [Finding(("model", "backbone", "frozen_stages"), "out-of-range",
                        f"frozen_stages {frozen} is more than the backbone's {stages} stages (0: the stem; k: the stem and k stages)")]
    return []


def _stages(data: dict, topology: str | None, sharing: Any) -> list[Finding]:
    out = _frozen(data)
    if not isinstance(sharing, dict):
        return out
    stages = num_stages(get_in(data, "model", "backbone"))
    if topology == "ple" and isinstance(sharing.get("num_levels", default(PLE, "num_levels")), int):
        levels = sharing.get("num_levels", default(PLE, "num_levels"))
        if stages is not None and levels > stages:
            where = ("model", "sharing", "num_levels") if "num_levels" in sharing else ("model", "sharing", "type")
            return out + [Finding(where, "out-of-range", f"each PLE level takes at least one backbone stage; the backbone has {stages}, so num_levels must be at most {stages}")]
    if topology == "hps" and isinstance(sharing.get("branch_at"), int) and stages is not None and sharing["branch_at"] > stages:
        return out + [Finding(("model", "sharing", "branch_at"), "out-of-range", f"the backbone has {stages} stages; branch_at must be at most {stages}")]
    return out
