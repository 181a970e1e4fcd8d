"""Clips as the model sees them: a window of `length` frames, `stride` apart, from each clip of a
source, with the clip's labels moved into the window's time.

A clip record (data/moving_digits.py, and any source whose records have `frames`) is
{"frames": [image record, ...], "labels": {...}, "meta": {...}}; each frame is an ordinary image
record (image, boxes, box_labels, track_ids, mask ...). The window is centred on the clip, the
same for every epoch and split (no temporal jitter yet). Events (`labels["events"]` and
`labels["visits"]`: [class, start, end) in the clip's frames) are re-expressed in the window's frames, cut to the window, and
dropped where nothing of them falls inside it.
"""

from __future__ import annotations

import math
from typing import Any

from mtlspec.data.records import DataError


def window_start(frames: int, length: int, stride: int) -> int:
    """The first frame of the centred window (0 when the window spans the clip)."""
    span = (length - 1) * stride + 1
    return max(0, (frames - span) // 2)


def window_events(events: list, start: int, length: int, stride: int) -> list[list[int]]:
    """Events [class, s, e) of the clip as [class, s', e') in window frames: s' the first window
    frame at or after s, e' one past the last window frame before e."""
    out = []
    for cls, s, e in events:
        first = max(0, math.ceil((s - start) / stride))
        last = min(length, math.ceil((e - start) / stride))
        if last > first:
            out.append([int(cls), int(first), int(last)])
    return out


EVENT_LABELS = ("events", "visits")  # the labels whose values are [class, start, end) lists in clip frames


class ClipWindow:
    """A clip source seen through a window of `length` frames, `stride` apart."""

    def __init__(self, source: Any, length: int, stride: int = 1):
        self.source, self.length, self.stride = source, length, stride
        self.clip_length = length
        frames = source.clip_frames()  # the shortest clip's
        if (length - 1) * stride + 1 > frames:
            where = source.shortest_clip() if hasattr(source, "shortest_clip") else getattr(source, "origin", None)
            raise DataError(f"a window of {length} frames {stride} apart needs {(length - 1) * stride + 1} frames; "
                            f"the shortest clip has {frames}", where)

    def __len__(self) -> int:
        return len(self.source)

    def _frames(self, index: int) -> int:
        """The clip's frame count (a source of clips of different lengths says each one's)."""
        return self.source.frame_count(index) if hasattr(self.source, "frame_count") else self.source.clip_frames()

    def record(self, index: int) -> dict[str, Any]:
        start = window_start(self._frames(index), self.length, self.stride)
        chosen = range(start, start + (self.length - 1) * self.stride + 1, self.stride)
        if hasattr(self.source, "frame_count"):  # frames read from files: only the window's
            record = self.source.record(index, keep=chosen)
            frames = record["frames"]
        else:
            record = self.source.record(index)
            frames = [record["frames"][t] for t in chosen if t < len(record["frames"])]
        if len(frames) != self.length:
            file, sample = self.where(index)
            raise DataError(f"the clip gave {len(frames)} frames of the window's {self.length}", file, sample)
        out = dict(record)
        out["frames"] = frames
        out["labels"] = self._labels(record["labels"], start)
        return out

    def labels(self, index: int) -> dict[str, Any]:
        labels = self.source.labels(index) if hasattr(self.source, "labels") else self.source.record(index)["labels"]
        return self._labels(labels, window_start(self._frames(index), self.length, self.stride))

    def _labels(self, labels: dict[str, Any], start: int) -> dict[str, Any]:
        """The clip's labels with every event list (a list of [class, start, end]) in window frames."""
        return {name: window_events(value, start, self.length, self.stride) if name in EVENT_LABELS else value for name, value in labels.items()}

    def where(self, index: int) -> tuple[str, Any]:
        if hasattr(self.source, "where"):
            return self.source.where(index)
        return getattr(self.source, "origin", ""), index

    def __getattr__(self, name: str) -> Any:  # fingerprint, label_classes, box_classes ... of the clips themselves
        if name == "source":  # not set yet (a copy being unpickled in a data-loader worker)
            raise AttributeError(name)
        return getattr(self.source, name)
