"""Rules on `ensemble`: members given exactly when the strategy combines given members, weights one
per member, per-task strategies that apply to their task's type."""

from __future__ import annotations

from mtlspec.language.base import default
from mtlspec.language.checks.common import Finding, entries, get_in, tag
from mtlspec.language.diagnose import did_you_mean
from mtlspec.language.ensemble import BOOSTED_TASK_TYPES, STRATEGY_TASK_TYPES, TRAINS_MEMBERS, Ensemble
from mtlspec.language.tasks import task_sections


def check_ensemble(data: dict) -> list[Finding]:
    ensemble = data.get("ensemble")
    if not isinstance(ensemble, dict):
        return []
    out: list[Finding] = []
    tasks = entries(data.get("tasks"))
    strategy = ensemble.get("strategy") if isinstance(ensemble.get("strategy"), dict) else {"type": default(Ensemble, "strategy", "type")}
    kind = tag(strategy)
    members = ensemble.get("members")
    per_task = entries(ensemble.get("per_task"))
    if kind in TRAINS_MEMBERS and isinstance(members, dict):
        out.append(Finding(("ensemble", "members"), "incompatible", f"{kind} trains its own members; remove ensemble.members", "key"))
    if kind not in TRAINS_MEMBERS and members is None:
        out.append(Finding(("ensemble", "members"), "missing-key", f"missing required key 'members': {kind} combines members you name (seeds, specs or runs)", "key"))
    if kind == "snapshot" and get_in(data, "training", "scheduler", "type") != "cyclic":
        out.append(Finding(("ensemble", "strategy", "type"), "incompatible", "snapshot ensembles take one member per learning-rate cycle: set training.scheduler.type to cyclic"))
    n_members = None
    if isinstance(members, dict):
        listed = members.get("seeds") if tag(members) == "seeds" else members.get("paths")
        n_members = len(listed) if isinstance(listed, list) else None
    for where, strat in [(("ensemble", "strategy"), strategy)] + [(("ensemble", "per_task", t), s) for t, s in per_task.items()]:
        weights = strat.get("weights")
        if isinstance(weights, list) and n_members is not None and len(weights) != n_members:
            out.append(Finding(where + ("weights",), "incompatible", f"{len(weights)} weights for {n_members} members"))
    for task, strat in per_task.items():
        if tasks and task not in tasks:
            out.append(Finding(("ensemble", "per_task", task), "unknown-task", f"no task '{task}'{did_you_mean(task, list(tasks))}", "key"))
            continue
        if tag(strat) in TRAINS_MEMBERS:
            out.append(Finding(("ensemble", "per_task", task, "type"), "incompatible", f"{strat.get('type')} trains the members of the whole model; it can only be ensemble.strategy"))
        elif tag(strat) == "stacking" and kind in TRAINS_MEMBERS:
            out.append(Finding(("ensemble", "per_task", task, "type"), "incompatible", f"stacking trains its members once per fold; it cannot combine the members {kind} trains"))
    if kind == "boosting" and tasks and not [t for t, s in tasks.items() if tag(s) in BOOSTED_TASK_TYPES and t not in per_task]:
        out.append(Finding(("ensemble", "strategy", "type"), "incompatible", "boosting needs a classification or regression task to boost (and not one that ensemble.per_task combines otherwise)"))
    for task, spec in tasks.items():
        chosen, where = (per_task[task], ("ensemble", "per_task", task, "type")) if task in per_task else (strategy, ("ensemble", "strategy", "type"))
        allowed = STRATEGY_TASK_TYPES.get(str(tag(chosen)))
        if allowed is not None and tag(spec) in task_sections() and tag(spec) not in allowed:
            fitting = [s for s, types in STRATEGY_TASK_TYPES.items() if tag(spec) in types and s not in TRAINS_MEMBERS]
            hint = f" (set ensemble.per_task.{task} to {' or '.join(fitting)})" if fitting and len(fitting) <= 2 else ""
            out.append(Finding(where, "incompatible", f"{chosen.get('type')} does not apply to task '{task}' ({spec.get('type')}){hint}"))
    return out
