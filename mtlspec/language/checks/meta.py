"""Rules on `meta`: it names the spec's one task, a classification task (N-way episodes of its
classes) or a multilabel one (2-way episodes, a new attribute each); it trains alone (no ensemble,
no baseline runs, no early stopping); its held-out classes (attributes) leave enough on both sides
for the episodes where the dataset says how many there are."""

from __future__ import annotations

from mtlspec.language.base import default
from mtlspec.language.checks.common import Finding, entries, get_in, tag
from mtlspec.language.data import MultiDigits, multidigits_classes
from mtlspec.language.diagnose import did_you_mean
from mtlspec.language.meta import Episodes, Meta


def check_meta(data: dict) -> list[Finding]:
    meta = data.get("meta")
    if not isinstance(meta, dict):
        return []
    out: list[Finding] = []
    tasks = entries(data.get("tasks"))
    name = meta.get("task")
    if isinstance(name, str) and tasks and name not in tasks:
        out.append(Finding(("meta", "task"), "unknown-task", f"no task '{name}'{did_you_mean(name, list(tasks))}; meta-learning needs one of the spec's tasks"))
    elif isinstance(name, str) and name in tasks:
        kind = tag(tasks[name])
        ways = get_in(meta, "episodes", "ways")
        if kind not in ("classification", "multilabel"):
            out.append(Finding(("meta", "task"), "incompatible", f"meta-learning draws N-way episodes of a classification task, or binary "
                                                                 f"episodes of a multilabel task's attributes; '{name}' is a {tasks[name].get('type')} task"))
        elif kind == "multilabel" and ways != 2:
            out.append(Finding(("meta", "episodes", "ways") if isinstance(ways, int) else ("meta", "task"), "incompatible",
                               f"episodes of the multilabel task '{name}' are binary (an image has the attribute or not): set meta.episodes.ways: 2"))
        others = [t for t in tasks if t != name]
        if others:
            out.append(Finding(("tasks", others[0]), "incompatible", f"a meta-learning spec trains the episodes of '{name}' alone; "
                                                                  f"move {', '.join(others)} to another spec (`mtlspec adapt` scores a run on new tasks)", "key"))
        out.extend(_classes(data, meta, tasks[name]))
    for section, why in (("ensemble", "an ensemble"), ):
        if isinstance(data.get(section), dict):
            out.append(Finding((section,), "incompatible", f"meta-learning and {why} do not combine yet; remove one", "key"))
    if isinstance(get_in(data, "evaluation", "baseline"), dict) and tag(get_in(data, "evaluation", "baseline")) not in (None, "none"):
        out.append(Finding(("evaluation", "baseline"), "incompatible", "a meta-learning run reports few-shot accuracy, with chance as its baseline; remove evaluation.baseline", "key"))
    data_section = data.get("data") if isinstance(data.get("data"), dict) else {}
    ignored = [k for k in ("holdout", "bootstrap", "sample_overrides") if data_section.get(k) is not None]
    if isinstance(data_section.get("sample_weights"), dict) and tag(data_section["sample_weights"]) not in (None, "none"):
        ignored.append("sample_weights")
    for key in ignored:
        out.append(Finding(("data", key), "incompatible", f"meta-learning draws its episodes from the plain splits; data.{key} would have no effect; remove it", "key"))
    algorithm = meta.get("algorithm", default(Meta, "algorithm"))
    if meta.get("vectorize") is True and algorithm not in ("fomaml", "reptile"):
        out.append(Finding(("meta", "vectorize"), "incompatible", f"vectorize runs the first-order algorithms (fomaml, reptile); {algorithm}'s "
                                                                 f"meta-gradient through BatchNorm is wrong under vmap (docs/results.md); remove vectorize"))
    if get_in(data, "training", "checkpoint", "every_steps") is not None:
        out.append(Finding(("training", "checkpoint", "every_steps"), "incompatible",
                           "a meta-learning run checkpoints at epoch ends (meta.steps_per_epoch outer steps); remove every_steps", "key"))
    if isinstance(get_in(data, "training", "early_stopping"), dict):
        out.append(Finding(("training", "early_stopping"), "incompatible", "meta-learning runs every epoch (early stopping is for ordinary training); remove it", "key"))
    if get_in(data, "training", "precision") in ("bf16", "fp16"):
        out.append(Finding(("training", "precision"), "incompatible", "meta-learning trains in float32 (its inner loops run without autocast); "
                                                                     "remove training.precision or set fp32"))
    return out


def _classes(data: dict, meta: dict, task: dict) -> list[Finding]:
    dataset = entries(get_in(data, "data", "datasets")).get(task.get("dataset"))
    if not isinstance(dataset, dict) or tag(dataset) != "multidigits" or not isinstance(task.get("label"), str):
        return []
    most = get_in(dataset, "objects", "max")
    count = multidigits_classes(task["label"], most if isinstance(most, int) else default(MultiDigits, "objects", "max"))
    ways = get_in(meta, "episodes", "ways")
    ways = ways if isinstance(ways, int) else default(Episodes, "ways")
    held = meta.get("held_out_classes") if isinstance(meta.get("held_out_classes"), list) else []
    held = [c for c in held if isinstance(c, int)]
    if count is None:
        return []
    what = "classes"
    if tag(task) == "multilabel":  # each episode one attribute: one on each side is enough
        ways, what = 1, "attributes"
    present = set(range(count))
    chosen = dataset.get("digits")
    if isinstance(chosen, list) and all(isinstance(d, int) for d in chosen) and task["label"] in ("largest_digit", "smallest_digit", "present"):
        present &= set(chosen)  # the dataset shows only these digits
    out = []
    minimum = get_in(dataset, "objects", "min")
    if what == "attributes" and len(present) == 1 and (minimum if isinstance(minimum, int) else default(MultiDigits, "objects", "min")) >= 1:
        out.append(Finding(("data", "datasets", task["dataset"], "digits"), "incompatible",
                           f"every image shows digit {next(iter(present))}: attribute episodes of '{task['label']}' need images without it; "
                           f"show more digits"))
    outside = [c for c in held if c not in present]
    if outside:
        out.append(Finding(("meta", "held_out_classes"), "out-of-range",
                           f"label '{task['label']}' of this dataset has the classes {sorted(present)}; {outside} are not among them"))
    kept = len(present - set(held))
    if held and len(set(held)) < ways:
        out.append(Finding(("meta", "held_out_classes"), "incompatible", f"{ways}-way evaluation episodes need {ways} held-out classes; {len(set(held))} are held out"))
    if kept < ways:
        out.append(Finding(("meta", "held_out_classes") if what == "attributes" else ("meta", "episodes", "ways"), "incompatible",
                           f"training episodes need {ways} {what}; label '{task['label']}' leaves {kept} for meta-training"))
    return out
