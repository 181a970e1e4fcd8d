"""Rules on `tasks`: each task's dataset exists and gives it its labels, class counts agree with the
dataset, reserved names, and a detection head's fields (checked against MMDetection's constructors,
tabulated in dense_head_args.py, without importing MMDetection)."""

from __future__ import annotations

from mtlspec.language.base import default
from mtlspec.language.checks.common import Finding, entries, get_in, tag
from mtlspec.language.data import DATASETS, MultiDigits, multidigits_classes, text_fields
from mtlspec.language.dense_head_args import DEFAULT_NORM_GROUPS, HEAD_ARGUMENTS
from mtlspec.language.diagnose import did_you_mean
from mtlspec.language.model import Model
from mtlspec.language.tasks import COMPUTED_HEAD_FIELDS, task_sections

RESERVED = ("loss", "delta_m")  # val.loss and val.delta_m are monitors


def check_tasks(data: dict) -> list[Finding]:
    out: list[Finding] = []
    datasets = entries(get_in(data, "data", "datasets"))
    for name, task in entries(data.get("tasks")).items():
        if name in RESERVED:
            out.append(Finding(("tasks", name), "invalid-name", f"'{name}' is reserved (val.{name} is a monitor); choose another task name", "key"))
        ds_name, task_type = task.get("dataset"), tag(task)
        if isinstance(ds_name, str) and isinstance(get_in(data, "data", "datasets"), dict) and ds_name not in datasets:
            known = list(datasets)
            out.append(Finding(("tasks", name, "dataset"), "unknown-dataset",
                               f"no dataset '{ds_name}' in data.datasets{did_you_mean(ds_name, known)}; defined: {', '.join(known) or 'none'}"))
        dataset = datasets.get(ds_name) if isinstance(ds_name, str) else None
        if dataset is not None and task_type in task_sections() and tag(dataset) in DATASETS:
            reads_text = getattr(task_sections()[task_type], "TEXT_FIELDS", ())
            out.extend(_text(name, task, task_type, ds_name, dataset, reads_text) if reads_text else _labels(name, task, task_type, ds_name, dataset))
        section = task_sections().get(task_type)
        if isinstance(task.get("head"), dict) and section is not None and "head" in section.model_fields:
            out.extend(check_head(data, name, task["head"]))
    return out


def _labels(name: str, task: dict, task_type: str, ds_name: str, dataset: dict) -> list[Finding]:
    """The dataset gives this task type its labels, the label named, and as many classes as the task says."""
    provided = DATASETS[tag(dataset)].provides(dataset)
    if task_type not in provided:
        return [Finding(("tasks", name, "type"), "label-not-provided",
                        f"dataset '{ds_name}' ({dataset.get('type')}) has no labels for a {task_type} task; it provides: {', '.join(provided)}")]
    label, names = task.get("label"), provided[task_type]
    if isinstance(label, str) and names is not None and label not in names:
        return [Finding(("tasks", name, "label"), "label-not-provided",
                        f"dataset '{ds_name}' has no {task_type} label '{label}'{did_you_mean(label, sorted(names))}; it provides: {', '.join(sorted(names))}")]
    size_key = next((k for k in ("num_classes", "num_labels") if k in task_sections()[task_type].model_fields), None)
    if tag(dataset) != "multidigits" or size_key is None or not isinstance(task.get(size_key), int):
        return []
    most = get_in(dataset, "objects", "max")
    expected = multidigits_classes(label if isinstance(label, str) else None, most if isinstance(most, int) else default(MultiDigits, "objects", "max"))
    if expected is not None and task[size_key] != expected:
        return [Finding(("tasks", name, size_key), "incompatible",
                        f"dataset '{ds_name}' gives {expected} classes for this label, not {task[size_key]}; leave {size_key} out to take the dataset's")]
    return []


def _text(name: str, task: dict, task_type: str, ds_name: str, dataset: dict, fields: tuple[str, ...]) -> list[Finding]:
    """The dataset has text, and the text fields the task names."""
    given = text_fields(dataset, DATASETS[tag(dataset)])
    if given is None:
        return []  # a text file: its fields are known when it is read (validate --deep, run)
    section = task_sections()[task_type]
    if not given:
        return [Finding(("tasks", name, "type"), "label-not-provided",
                        f"dataset '{ds_name}' ({dataset.get('type')}) has no text for a {task_type} task; "
                        f"give the dataset a `text:` JSON Lines file of its images' text")]
    out = []
    for field in fields:
        value = task.get(field, default(section, field))
        if isinstance(value, str) and value not in given:
            out.append(Finding(("tasks", name, field) if field in task else ("tasks", name, "type"), "label-not-provided",
                               f"dataset '{ds_name}' has no text field '{value}'{did_you_mean(value, sorted(given))}; it has: {', '.join(sorted(given))}"))
    return out


def check_head(data: dict, task: str, head: dict) -> list[Finding]:
    """A dense head's fields against its constructor, and the GroupNorm its convolutions use
    against their channel count."""
    out = []
    where = ("tasks", task, "head")
    for field in COMPUTED_HEAD_FIELDS:
        if field in head:
            out.append(Finding(where + (field,), "computed-field", f"'{field}' is filled by the compiler from the model and the dataset; remove it", "key"))
    kind = tag(head)
    if kind not in HEAD_ARGUMENTS:
        return out
    accepted = [a for a in HEAD_ARGUMENTS[kind] if a not in COMPUTED_HEAD_FIELDS]
    for field in head:
        if field != "type" and field not in COMPUTED_HEAD_FIELDS and field not in accepted:
            out.append(Finding(where + (field,), "unknown-key", f"{kind} takes no argument '{field}'{did_you_mean(field, accepted)}", "key"))
    norm = head.get("norm_cfg", {"type": "GN", "num_groups": DEFAULT_NORM_GROUPS.get(kind)} if DEFAULT_NORM_GROUPS.get(kind) else None)
    groups = norm.get("num_groups") if isinstance(norm, dict) and norm.get("type") == "GN" else None
    if "feat_channels" in head:
        channels, named = head["feat_channels"], where + ("feat_channels",)
    else:  # the adapter gives the head as many channels as the neck has
        neck = get_in(data, "model", "neck")
        neck = neck if isinstance(neck, dict) else default(Model, "neck").model_dump()
        channels = neck.get("out_channels", default(Model, "neck", "out_channels")) if tag(neck) == "FPN" else None
        named = ("model", "neck", "out_channels") if "out_channels" in neck else where + ("type",)
    if isinstance(groups, int) and groups > 0 and isinstance(channels, int) and channels % groups:
        out.append(Finding(named, "incompatible", f"{kind} normalises its {channels} feature channels with GroupNorm of {groups} groups; "
                                                  f"channels must be a multiple of {groups} (or set head.norm_cfg.num_groups)"))
    return out
