"""`mtlspec adapt`: a trained model (meta-learned, or any run) adapted to a new classification task
from K labelled examples per class, scored over many N-way K-shot episodes of the new task's
evaluation split (mean query accuracy and its 95% confidence interval, as few-shot papers report);
or to new binary tasks, one attribute of a multilabel task per episode (2-way: has it or not).

The new task comes from a spec file with one classification or multilabel task (its dataset, label and, where
it has one, a `meta` section for the episode shape and inner loop); `classes` restricts episodes to
some of its classes (those a meta-learned run held out, for the few-shot protocol). The model is the run's
topology with a head for the episode: a meta-learned run's own head when it answers as many
classes, else a new one (seeded); `scratch` replaces the run's weights by a seeded fresh start of the
same architecture (the from-scratch comparison). Nothing in the run directory is written.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtlspec.errors import SpecError, UsageError


class AdaptedModel(nn.Module):
    """The run's topology and one head, named like a compiled model's (`heads.<task>.`), fed the
    features the run computed for `source` (one of its tasks)."""

    def __init__(self, topology: nn.Module, source: str, task: str, head: nn.Module):
        super().__init__()
        self.topology, self.source, self.task = topology, source, task
        self.heads = nn.ModuleDict({task: head})

    def forward(self, images: torch.Tensor) -> dict[str, Any]:
        return {self.task: self.heads[self.task](self.topology(images)[self.source])}


def _new_task(task_spec: Path) -> tuple[Any, str]:
    from mtlspec.language import validate_file

    results = validate_file(task_spec, [])
    if len(results) != 1:
        raise UsageError(f"{task_spec} expands to {len(results)} specs (a matrix); give a spec of one new task")
    (result,) = results
    if result.errors:
        raise SpecError(result.errors)
    from mtlspec.tasks import task_type_class

    tasks = [name for name, section in result.spec.tasks.items() if task_type_class(section.type).episodic]
    if len(result.spec.tasks) != 1 or not tasks:
        raise UsageError(f"{task_spec} must have exactly one task, of type classification or multilabel (it has: "
                         f"{', '.join(f'{n} ({s.type})' for n, s in result.spec.tasks.items())})")
    return result.spec, tasks[0]


def adapt(run_dir: Path, task_spec: Path, shots: int, ways: int | None = None, queries: int | None = None, episodes: int = 100,
          steps: int | None = None, lr: float | None = None, heads_only: bool | None = None, scratch: bool = False, seed: int = 0,
          source: str | None = None, device: str = "cpu", classes: list[int] | None = None) -> dict[str, Any]:
    """Few-shot evaluation of the run's model on the new task; a summary dict (see module doc)."""
    from mtlspec.data.build import build_dataset, build_sources
    from mtlspec.inference.model_file import load_run
    from mtlspec.meta import adapts
    from mtlspec.meta.episodes import EpisodeSampler, label_reader
    from mtlspec.meta.fit import few_shot
    from mtlspec.meta.functional import adapted_names
    from mtlspec.tasks import task_type_class
    from mtlspec.tasks.base import Form

    loaded = load_run(run_dir)
    spec, task = _new_task(task_spec)
    meta = loaded.spec.meta or spec.meta
    binary = task_type_class(spec.tasks[task].type).form is Form.LABEL_PROBABILITIES  # a multilabel task's episodes: one attribute each
    if binary and ways not in (None, 2):
        raise UsageError(f"--ways {ways}: episodes of the multilabel task '{task}' are binary (has the attribute or not), so 2-way")
    ways = ways if ways is not None else (2 if binary else meta.episodes.ways if meta else 5)
    queries = queries if queries is not None else (meta.episodes.queries if meta else 15)
    steps = steps if steps is not None else (meta.inner_steps if meta else 10)
    lr = lr if lr is not None else (meta.inner_lr if meta else 0.05)
    adapt = ("heads" if heads_only else "all") if heads_only is not None else (adapts(meta) if meta else "all")
    image_level = [t for t, tt in loaded.task_types.items() if tt.image_level and not tt.reads_text]
    source = source or (loaded.spec.meta.task if loaded.spec.meta else (image_level or list(loaded.task_types))[0])
    if source not in loaded.task_types:
        raise UsageError(f"--from-task {source}: the run has no such task (it has {', '.join(loaded.task_types)})")

    topology = copy.deepcopy(loaded.model.topology)
    torch.manual_seed(seed)
    if scratch:  # the same architecture from a seeded fresh start
        from mtlspec.model.builder import build_model

        topology = build_model(loaded.spec, loaded.task_types).topology
    section = spec.tasks[task]
    reused = loaded.spec.meta is not None and not scratch and source == loaded.spec.meta.task and loaded.tasks[source]["num_classes"] == ways
    head = copy.deepcopy(loaded.model.heads[source]) if reused else task_type_class(section.type)(task, ways, section).build_head(
        topology.vector_channels, topology.pyramid_channels, topology.strides, loaded.image_size)
    model = AdaptedModel(topology, source, task, head).to(device)

    data = spec.model_copy(update={"data": spec.data.model_copy(update={"image_size": loaded.image_size})})
    base = task_spec.resolve().parent
    reader = label_reader(task, section, build_sources(data, "train", base)[section.dataset])  # class count as a run counts it
    split = spec.evaluation.split
    dataset = build_dataset(data, split, False, base, reader)
    sampler = EpisodeSampler(dataset, task, ways, shots, queries, seed, classes, f"{split} split", every_class=classes is not None)
    try:
        adapted_names(model, task, adapt)
    except ValueError as exc:  # an adapt prefix the run's meta section names, absent from this model
        raise UsageError(str(exc)) from None
    scored = few_shot(model, sampler, task, episodes, steps, lr, adapt, torch.device(device))
    return {"run_dir": str(run_dir), "task_spec": str(task_spec), "task": task, "split": split, "start": "scratch" if scratch else
            ("the run's meta-learned initialisation" if loaded.spec.meta else f"the run's weights ({loaded.selected})"),
            "head": "the run's meta-learned head" if reused else "a new head", "features_of": source,
            "inner": {"steps": steps, "lr": lr, "adapts": {"all": "every parameter", "heads": "the head"}.get(adapt, adapt) if isinstance(adapt, str)
                      else ", ".join(adapt)}, "seed": seed,
            "classes": sampler.classes, **scored}
