"""From a spec to what runs, in one place: `build(spec) -> Built` (the training sources, a task
type per task with its class count, the model, the weighting method), used alike by training,
`validate --deep`, `run`'s preflight, `graph` and ensemble members."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtlspec.data.build import build_dataset, build_sources
from mtlspec.model.builder import MultiTaskModel, build_model
from mtlspec.tasks import section_task_type
from mtlspec.text.attach import attach_tokenizer
from mtlspec.weighting import METHODS


@dataclass
class Built:
    spec: Any
    data_root: Path  # data paths in the spec are relative to it (the spec file's folder)
    sources: dict[str, Any]  # the training split of every dataset a task uses
    task_types: dict[str, Any]
    model: MultiTaskModel
    weighting: Any

    @property
    def num_classes(self) -> dict[str, int]:
        return {name: tt.num_classes for name, tt in self.task_types.items()}

    def dataset(self, split: str, train: bool = False) -> Any:
        """The split as samples for these task types (`train`: as the spec trains on it: held-out
        fold removed, bootstrapped, weighted, flipped)."""
        return build_dataset(self.spec, split, train, self.data_root, self.task_types,
                             sources=self.sources if split == "train" else None)


def build_task_types(spec: Any, sources: dict[str, Any], data_root: Path = Path(".")) -> dict[str, Any]:
    """A task type per task, its class count from the spec or else its dataset's training split
    (files a task's section names, relative to `data_root`)."""
    out = {}
    for name, section in spec.tasks.items():
        cls = section_task_type(section)
        if spec.meta is not None and name == spec.meta.task:  # a meta-learned head answers `ways` classes of an episode
            out[name] = cls(name, spec.meta.episodes.ways, section)
            continue
        out[name] = cls.create(name, section, sources[section.dataset], data_root)
    attach_tokenizer(spec, out, sources)  # one vocabulary for the tasks that read text, from their training text
    return out


def build(spec: Any, data_root: Path = Path("."), sources: dict[str, Any] | None = None) -> Built:
    """Everything a spec compiles to; model.builder.BuildError names the parts that cannot be built."""
    sources = sources if sources is not None else build_sources(spec, "train", data_root)
    task_types = build_task_types(spec, sources, data_root)
    model = build_model(spec, task_types, data_root)
    weighting = METHODS[spec.weighting.type](list(spec.tasks), spec.weighting)
    return Built(spec, data_root, sources, task_types, model, weighting)
