"""Rules on clips (video): clip tasks need a backbone that sees time, a temporal model needs clips,
a spec feeds the model all images or all clips, the window of frames fits in the clips, and clips
are not mirrored (their labels name directions)."""

from __future__ import annotations

from mtlspec.language.base import default
from mtlspec.language.checks.common import Finding, entries, get_in, tag
from mtlspec.language.data import DATASETS, Clip, is_clips
from mtlspec.language.tasks import task_sections

TEMPORAL_TYPES = "pool, tsm or r2plus1d"


def check_clips(data: dict) -> list[Finding]:
    out: list[Finding] = []
    datasets = entries(get_in(data, "data", "datasets"))
    tasks = entries(data.get("tasks"))
    used = {t.get("dataset") for t in tasks.values() if isinstance(t.get("dataset"), str)}
    clip_sets = [name for name, ds in datasets.items() if is_clips(ds) and name in used]
    image_sets = [name for name, ds in datasets.items() if tag(ds) in DATASETS and not is_clips(ds) and name in used]
    temporal = get_in(data, "model", "temporal")
    for name, task in tasks.items():
        section = task_sections().get(tag(task))
        metrics = task.get("metrics")
        needs = [m for m in (metrics if isinstance(metrics, list) else []) if m in getattr(section, "TRACKING_METRICS", ())]
        if needs and not isinstance(task.get("tracking"), dict):
            out.append(Finding(("tasks", name, "metrics", metrics.index(needs[0])), "incompatible",
                               f"{needs[0]} scores tracks: give the task `tracking: {{type: ByteTrack}}`"))
        level = getattr(section, "CLIP_LEVEL", None)
        if level is not None and not isinstance(temporal, dict):
            out.append(Finding(("tasks", name, "type"), "incompatible",
                               f"a {tag(task)} task reads clips: set model.temporal ({TEMPORAL_TYPES}) to say how the backbone sees time"))
    if isinstance(temporal, dict) and not clip_sets and (image_sets or tasks):
        out.append(Finding(("model", "temporal"), "incompatible", "model.temporal is for clips, and no dataset a task uses gives clips (moving_digits does)", "key"))
    if clip_sets and image_sets:
        out.append(Finding(("data", "datasets", image_sets[0]), "incompatible",
                           f"dataset '{image_sets[0]}' gives images and '{clip_sets[0]}' gives clips: one model reads one or the other; "
                           f"use frame_* task types on the clips instead", "key"))
    clip = get_in(data, "data", "clip")
    length = clip.get("length", default(Clip, "length")) if isinstance(clip, dict) else default(Clip, "length")
    stride = clip.get("stride", default(Clip, "stride")) if isinstance(clip, dict) else default(Clip, "stride")
    if isinstance(length, int) and isinstance(stride, int):
        needed = (length - 1) * stride + 1
        for name in clip_sets:  # where the spec says how long the clips are (a folder's are known once read)
            section = DATASETS[tag(datasets[name])]
            if "frames" not in section.model_fields:
                continue
            frames = datasets[name].get("frames", default(section, "frames"))
            if isinstance(frames, int) and needed > frames:
                where = ("data", "clip", "length") if isinstance(clip, dict) and "length" in clip else ("data", "clip") if isinstance(clip, dict) else ("data", "datasets", name, "frames")
                out.append(Finding(where, "incompatible",
                                   f"a window of {length} frames {stride} apart spans {needed} frames; dataset '{name}' has clips of {frames}"))
    hflip = get_in(data, "data", "hflip")
    if clip_sets and isinstance(hflip, (int, float)) and hflip > 0:
        out.append(Finding(("data", "hflip"), "incompatible",
                           f"mirroring clips would contradict their labels (dataset '{clip_sets[0]}' names directions of motion); set hflip to 0"))
    return out
