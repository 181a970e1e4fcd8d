"""Rules on zero-shot tasks: the method's class table (attributes, or descriptions in words for
`method: text`) is given and reads (its own line named when it does not),
every unseen class has a row, some seen classes remain to train on, the shipped table goes with the
dataset it describes, and no other task trains on labelled images of the unseen classes (which
would make "unseen" a misnomer and joint training's effect on them meaningless).

The table is read with the standard library (data/formats/class_attributes.py), after the spec's
paths are confined (validate._path_findings): a table outside the allowed roots is never opened.
"""

from __future__ import annotations

from pathlib import Path

from mtlspec.data.formats.class_attributes import BUILTIN, TableProblem, read_class_attributes, table_path
from mtlspec.data.formats.class_descriptions import BUILTIN_NAMES, load_class_descriptions
from mtlspec.language.base import default
from mtlspec.language.checks.common import Finding, entries, get_in, tag
from mtlspec.language.data import DIGIT_CLASSES, MultiDigits
from mtlspec.language.paths import Roots

DIGIT_TASKS = {"classification": ("largest_digit", "smallest_digit"), "zero_shot": ("largest_digit", "smallest_digit"),
               "multilabel": ("present",), "detection": None, "segmentation": None, "instance_segmentation": None}
# multidigits labels that name the digits on a canvas (None: every label of the type does)


def check_class_tables(data: dict, base: Path, roots: Roots) -> list[Finding]:
    out: list[Finding] = []
    datasets = entries(get_in(data, "data", "datasets"))
    tasks = entries(data.get("tasks"))
    for name, task in tasks.items():
        if tag(task) != "zero_shot":
            continue
        at = ("tasks", name)
        dataset = datasets.get(task.get("dataset")) if isinstance(task.get("dataset"), str) else None
        unseen = task.get("unseen") if isinstance(task.get("unseen"), list) else []
        names = [str(u) for u in unseen if isinstance(u, (str, int)) and not isinstance(u, bool)]
        for i, u in enumerate(names):
            if names.index(u) != i:
                out.append(Finding(at + ("unseen", i), "invalid", f"unseen class '{u}' is listed twice"))
        text = task.get("method") == "text"
        key = "descriptions" if text else "attributes"
        written = task.get(key)
        if written is None:
            out.append(Finding(at, "missing-key", f"method '{task.get('method', 'ale')}' needs `{key}:` "
                                              + ("(the classes described in words, a JSON Lines file, or multidigits)" if text
                                                 else "(the class x attribute table, a CSV file, or multidigits)")))
        if not isinstance(written, str) or not written:
            continue
        builtin = BUILTIN_NAMES if text else BUILTIN
        what = "class descriptions" if text else "class attribute table"
        if written in builtin and isinstance(dataset, dict) and tag(dataset) != written:
            out.append(Finding(at + (key,), "incompatible", f"the shipped {what} '{written}' describe(s) the {written} dataset's classes; "
                                                             f"dataset '{task.get('dataset')}' is a {dataset.get('type')} dataset: give a file of its classes"))
            continue
        if written not in builtin and roots.check(written, base)[0] is None:
            continue  # refused by the path rules, which say why
        try:
            classes = (load_class_descriptions(written, base) if text else read_class_attributes(table_path(written, base))).classes
        except TableProblem as exc:
            where = f"{written}:{exc.line}" if exc.line else written
            out.append(Finding(at + (key,), "bad-table", f"{what} {where}: {exc}"))
            continue
        for i, u in enumerate(names):
            if u not in classes:
                out.append(Finding(at + ("unseen", i), "undescribed-class",
                                   f"unseen class '{u}' has no {'description' if text else 'row'} in {written} (an unseen class is known only by its description); "
                                   f"its classes: {', '.join(classes[:20])}{' ...' if len(classes) > 20 else ''}"))
        if isinstance(dataset, dict) and tag(dataset) == "multidigits":
            out.extend(_digits(data, name, task, dataset, classes, names, written, key))
    return out


def _digits(data: dict, name: str, task: dict, dataset: dict, described: tuple, unseen: list[str], written: str,
            key: str = "attributes") -> list[Finding]:
    """A multidigits dataset: its classes are the digits 0-9; which of them the canvases show; the
    other tasks that see labelled unseen digits."""
    out = []
    at = ("tasks", name)
    digits = [str(d) for d in range(DIGIT_CLASSES)]
    missing = [d for d in digits if d not in described]
    if missing:
        out.append(Finding(at + (key,), "undescribed-class", f"{written} has no description of digit(s) {', '.join(missing)}: every class needs a description, seen or unseen"))
    for i, u in enumerate(unseen):
        if u not in digits:
            out.append(Finding(at + ("unseen", i), "invalid", f"'{u}' is not a class of multidigits' {task.get('label')} (the digits 0-9)"))
    shown = dataset.get("digits") if isinstance(dataset.get("digits"), list) else list(range(DIGIT_CLASSES))
    shown = [str(d) for d in shown]
    if len([d for d in shown if d not in unseen]) < 2:
        out.append(Finding(at + ("unseen",), "incompatible", "fewer than two seen digits remain on the canvases to train on"))
    for i, u in enumerate(unseen):
        if u in digits and u not in shown:
            out.append(Finding(at + ("unseen", i), "incompatible", f"digit {u} never appears on dataset '{task.get('dataset')}' (its `digits` leave it out): "
                                                              f"there is nothing to score it on", severity="warning"))
    if task.get("label") in DIGIT_TASKS["zero_shot"]:  # its classes are digits, which other tasks may label
        out.extend(_leaks(data, name, task, unseen))
    return out


def _leaks(data: dict, name: str, task: dict, unseen: list[str]) -> list[Finding]:
    """Other tasks on multidigits canvases that label digits the zero-shot task holds out."""
    out = []
    datasets = entries(get_in(data, "data", "datasets"))
    held = task.get("hold_out_images", True) is not False
    for other, spec in entries(data.get("tasks")).items():
        if other == name or tag(spec) not in DIGIT_TASKS:
            continue
        labels = DIGIT_TASKS[str(tag(spec))]
        if labels is not None and spec.get("label") not in labels:
            continue
        ds_name = spec.get("dataset")
        dataset = datasets.get(ds_name) if isinstance(ds_name, str) else None
        if not isinstance(dataset, dict) or tag(dataset) != "multidigits":
            continue
        shown = [str(d) for d in dataset.get("digits")] if isinstance(dataset.get("digits"), list) else [str(d) for d in range(DIGIT_CLASSES)]
        leaked = [u for u in unseen if u in shown]
        if not leaked:
            continue
        most = get_in(dataset, "objects", "max")
        most = most if isinstance(most, int) else default(MultiDigits, "objects", "max")
        if ds_name == task.get("dataset") and held and (most == 1 or spec.get("label") == task.get("label") and tag(spec) == "classification"):
            continue  # its images of unseen digits are held out of training, and each shows one digit
        why = ("its canvases show several digits, and held-out images are only those whose label is unseen"
               if ds_name == task.get("dataset") and held else f"dataset '{ds_name}' shows them")
        out.append(Finding(("tasks", other), "unseen-leak",
                           f"'{other}' ({spec.get('type')}) trains on labelled images of digit(s) {', '.join(leaked)}, which zero-shot task '{name}' "
                           f"holds out ({why}): the shared network learns the unseen classes from its labels. Give '{other}' a dataset whose "
                           f"`digits` leave them out, or canvases of one digit (objects: {{min: 1, max: 1}}) with hold_out_images",
                           "key", severity="warning"))
    return out
