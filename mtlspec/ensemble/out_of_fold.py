"""Stacking's out-of-fold predictions: every member is trained again once per fold of the training
split without that fold (`data.holdout`), and predicts only the fold it never saw. The meta-model
is fitted on these, never on a prediction for a sample its member trained on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtlspec.ensemble.members import Log, Member, TrainOrReuse, derived, load_member, member_predictions, trained, with_checkpoint
from mtlspec.language.root import Spec


def _spec_file(run_dir: Path, fallback: str) -> str:
    """The file a member run was made from (its data paths are relative to it), when it still exists."""
    try:
        made_from = json.loads((run_dir / "manifest.json").read_text()).get("spec_file")
    except (OSError, ValueError):
        made_from = None
    return made_from if made_from and Path(made_from).is_file() else fallback


def out_of_fold(spec: Spec, members: list[Member], folds: int, tasks: list[str], spec_file: str, out_root: Path,
                sources: dict[str, Any], log: Log, train_or_reuse: TrainOrReuse) -> tuple[dict[str, list[np.ndarray]], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """({task: each member's out-of-fold predictions}, {task: targets}, {task: labelled}) over the
    training split in dataset order. `members` are the loaded full members (their specs are
    retrained per fold, from the file each was made from, so relative data paths still resolve);
    `sources` the ensemble's training sources."""
    from mtlspec.data.build import fold_ids

    data_root = Path(spec_file).resolve().parent
    predictions: dict[str, list[list[Any]]] = {t: [[] for _ in members] for t in tasks}
    targets: dict[str, list[Any]] = {t: [] for t in tasks}
    labelled: dict[str, list[Any]] = {t: [] for t in tasks}
    fold_models = []
    for member in members:
        copies = [derived(member.spec, f"{member.spec.name}.fold{k}of{folds}", data_holdout={"folds": folds, "fold": k}) for k in range(folds)]
        made_from = _spec_file(member.run_dir, spec_file)
        fold_models.append([load_member(*with_checkpoint(trained(train_or_reuse, c, made_from, out_root, log)), sources) for c in copies])
    assignment = {name: fold_ids(len(source), folds) for name, source in sources.items()}
    for i, copies in enumerate(fold_models):
        for batch, per_fold in member_predictions(spec, copies, "train", data_root, tasks):
            which = torch.tensor([int(assignment[m["dataset"]][m["index"]]) for m in batch["meta"]])
            for task in tasks:
                stacked = torch.stack([p.double() for p in per_fold[task]])  # (folds, N, ...)
                predictions[task][i].append(stacked[which, torch.arange(len(which))])
                if i == 0:
                    targets[task].append(batch["targets"][task])
                    labelled[task].append(batch["has"][task])
    return ({t: [torch.cat(p).numpy() for p in per_member] for t, per_member in predictions.items()},
            {t: torch.cat(v).numpy() for t, v in targets.items()}, {t: torch.cat(v).numpy().astype(bool) for t, v in labelled.items()})

