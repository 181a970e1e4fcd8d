"""`model.pt`: what prediction needs from a run, apart from the resumable training checkpoints.

Written by the trainer (atomically, weights-only like every checkpoint): the model's weights (the
best by the early-stopping monitor, else the last epoch's), which epoch they are and why, each
task's type, class count, class names and dataset category ids, and the input convention (image
side, letterboxing, normalisation). With the run's spec.resolved.yaml it rebuilds the model without
reading any training data. About a third of a training checkpoint, which also holds the optimizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mtlspec.errors import UsageError

FILE = "model.pt"
FORMAT = "mtlspec-model/1"


def vocabulary(task_types: dict[str, Any], sources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each task's type, class count, class names and category ids, from its training source."""
    out = {}
    for name, tt in task_types.items():
        source = sources.get(tt.spec.dataset)
        out[name] = {"type": tt.name, "num_classes": int(tt.num_classes),
                     "names": tt.class_names(tt.spec, source) if source is not None else None,
                     "category_ids": tt.category_ids(tt.spec, source) if source is not None else None, **tt.saved()}
    return out


def save_model(run_dir: Path, model: torch.nn.Module, spec_hash: str, epoch: int, selected: str,
               tasks: dict[str, dict[str, Any]], image_size: int) -> Path:
    from mtlspec.data.transforms import MEAN, STD
    from mtlspec.train import checkpoint as ckpt

    path = run_dir / FILE
    ckpt.save(path, {"format": FORMAT, "spec_hash": spec_hash, "epoch": epoch, "selected": selected, "model": model.state_dict(),
                     "tasks": tasks, "input": {"image_size": image_size, "resize": "longer side to image_size, padded bottom and right",
                                               "mean": [float(m) for m in MEAN], "std": [float(s) for s in STD]}})
    return path


@dataclass
class Loaded:
    """A run's model ready to predict: the spec, the task types, the model (eval mode, on CPU)."""

    run_dir: Path
    spec: Any
    task_types: dict[str, Any]
    model: torch.nn.Module
    tasks: dict[str, dict[str, Any]]  # type, num_classes, names, category_ids
    epoch: int
    selected: str

    @property
    def image_size(self) -> int:
        return int(self.spec.data.image_size)


def load_run(run_dir: Path) -> Loaded:
    """The model of a run directory, from spec.resolved.yaml and model.pt (weights-only). A run made
    before model.pt existed falls back to its latest checkpoint, with class counts read from its
    training data."""
    import yaml

    from mtlspec.language.root import Spec
    from mtlspec.model.builder import build_model
    from mtlspec.report.manifest import spec_hash
    from mtlspec.tasks import section_task_type
    from mtlspec.train import checkpoint as ckpt

    spec_file = run_dir / "spec.resolved.yaml"
    if not spec_file.is_file():
        raise UsageError(f"{run_dir} is not a run directory (no spec.resolved.yaml); give the folder `mtlspec run` made")
    try:
        spec = Spec.model_validate(yaml.safe_load(spec_file.read_text()))
    except Exception as exc:
        raise UsageError(f"{spec_file} does not validate: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    digest = spec_hash(spec)
    path = run_dir / FILE
    if path.is_file():
        state = ckpt.load(path, digest)
        tasks = state["tasks"]
        selected, epoch = state["selected"], int(state["epoch"])
    else:
        latest = ckpt.latest(run_dir / "checkpoints")
        if latest is None:
            raise UsageError(f"{run_dir} has neither {FILE} nor a checkpoint: the run did not finish an epoch")
        state = ckpt.load(latest, digest)
        tasks = _tasks_from_data(spec, run_dir)
        selected, epoch = f"the latest checkpoint ({latest.name}; this run predates {FILE})", int(state["epoch"])
    task_types = {name: section_task_type(section).restore(name, section, tasks[name]) for name, section in spec.tasks.items()}
    model = build_model(spec, task_types)
    model.load_state_dict(state["model"])
    model.eval()
    return Loaded(run_dir, spec, task_types, model, tasks, epoch, selected)


def _tasks_from_data(spec: Any, run_dir: Path) -> dict[str, dict[str, Any]]:
    import json

    from mtlspec.build import build_task_types
    from mtlspec.data.build import build_sources

    manifest = json.loads((run_dir / "manifest.json").read_text()) if (run_dir / "manifest.json").is_file() else {}
    root = Path(manifest.get("spec_file") or run_dir / "spec.resolved.yaml").resolve().parent
    sources = build_sources(spec, "train", root)
    return vocabulary(build_task_types(spec, sources, root), sources)


def refuse_meta(loaded: Loaded, what: str) -> None:
    """A meta-learned run's head answers the `ways` labels of one episode (a random assignment each
    time), not the task's classes: nothing to predict with or export until it is adapted."""
    from mtlspec.errors import UsageError

    if loaded.spec.meta is not None:
        raise UsageError(f"this is a meta-learned run: its head answers the {loaded.spec.meta.episodes.ways} labels of an episode, "
                         f"not the classes of '{loaded.spec.meta.task}', so there is nothing to {what}; score it on new tasks "
                         f"with `mtlspec adapt RUN_DIR --task SPEC --shots K`")


def refuse_text(loaded: Loaded, what: str) -> None:
    """Tasks that read a text per image (captions, questions) need that text beside each image;
    `predict` and `export` take images alone, so a run with such tasks is refused, by name."""
    reading = [name for name, tt in loaded.task_types.items() if tt.reads_text]
    if reading:
        raise UsageError(f"task(s) {', '.join(reading)} read a text with each image, and `mtlspec {what}` takes images only; "
                         f"score such a run on its own splits with `mtlspec run` (its report) or `mtlspec reproduce`")


def refuse_clips(loaded: Loaded, what: str) -> None:
    """A model that reads clips (model.temporal) needs clips; `predict` and `export` take images."""
    if loaded.model.frames:
        raise UsageError(f"this run's model reads clips of {loaded.model.frames} frames (model.temporal), and `mtlspec {what}` "
                         f"takes images only; score it on its own splits with `mtlspec run` (its report) or `mtlspec reproduce`")
