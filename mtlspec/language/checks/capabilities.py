"""The `not-implemented` warning: a part the language has and this version cannot run (capabilities.py)."""

from __future__ import annotations

import functools
from typing import Any

from mtlspec.capabilities import IMPLEMENTED
from mtlspec.language.base import default
from mtlspec.language.checks.common import Finding, entries, get_in, tag, tag_or_default
from mtlspec.language.root import Spec
from mtlspec.language.schema_walk import tags


@functools.cache
def language_types() -> dict[str, frozenset[str]]:
    """Every `type` the language has, per part that capabilities.IMPLEMENTED lists."""
    from mtlspec.language import data, ensemble, evaluation, model, tasks, weighting

    return {
        "dataset": tags(data.Dataset), "task": tags(tasks.Task), "backbone": tags(model.Backbone),
        "neck": tags(model.Neck), "sharing": tags(model.Sharing), "weighting": tags(weighting.Weighting),
        "ensemble": tags(ensemble.Strategy), "ensemble members": tags(ensemble.Members),
        "detection head": tags(tasks.DenseHead.model_fields["type"].annotation) | tags(tasks.TwoStageHead.model_fields["type"].annotation)
        | tags(tasks.MaskRCNNHead.model_fields["type"].annotation),
        "sample weights": tags(data.SampleWeights), "baseline": tags(evaluation.Baseline), "temporal": tags(model.Temporal),
        "tracker": tags(tasks.FrameDetection.model_fields["tracking"].annotation),
    }


def _named(data: dict) -> list[tuple[str, tuple, Any]]:
    """(part, where, type) of every typed part the spec names or takes by default."""
    named: list[tuple[str, tuple, Any]] = []
    for name, ds in entries(get_in(data, "data", "datasets")).items():
        named.append(("dataset", ("data", "datasets", name, "type"), tag(ds)))
    for name, task in entries(data.get("tasks")).items():
        named.append(("task", ("tasks", name, "type"), tag(task)))
        if isinstance(task.get("head"), dict):
            named.append(("detection head", ("tasks", name, "head", "type"), tag(task["head"])))
        if isinstance(task.get("tracking"), dict):
            named.append(("tracker", ("tasks", name, "tracking", "type"), tag(task["tracking"])))
    for part in ("backbone", "neck", "sharing"):
        named.append((part, ("model", part, "type"), tag_or_default(get_in(data, "model", part), default(Spec, "model", part, "type"))))
    named.append(("weighting", ("weighting", "type"), tag_or_default(data.get("weighting"), default(Spec, "weighting", "type"))))
    for part, path in (("sample weights", ("data", "sample_weights")), ("baseline", ("evaluation", "baseline")), ("temporal", ("model", "temporal"))):
        if isinstance(get_in(data, *path), dict):
            named.append((part, path + ("type",), tag(get_in(data, *path))))
    ensemble = data.get("ensemble")
    if isinstance(ensemble, dict):
        named.append(("ensemble", ("ensemble", "strategy", "type"), tag_or_default(ensemble.get("strategy"), "mean")))
        for task, strat in entries(ensemble.get("per_task")).items():
            named.append(("ensemble", ("ensemble", "per_task", task, "type"), tag(strat)))
        if isinstance(ensemble.get("members"), dict):
            named.append(("ensemble members", ("ensemble", "members", "type"), tag(ensemble["members"])))
    return named


def check_capabilities(data: dict) -> list[Finding]:
    """Warn about each named part the language has but this version cannot run yet."""
    out = []
    for part, path, value in _named(data):
        # an unknown type is the schema's error (unknown-type); only the language's own types can be missing here
        if isinstance(value, str) and value in language_types()[part] and value not in IMPLEMENTED.get(part, frozenset()):
            out.append(Finding(path, "not-implemented", f"{part} '{value}' is part of the language but this version of mtlspec cannot run it yet; `mtlspec run` will refuse it", severity="warning"))
    return out
