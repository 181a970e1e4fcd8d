"""Image task types applied to every frame of a clip: `frame_detection` (the detection task's
MMDetection heads on each frame's pyramid) and `frame_segmentation`.

A clip's target is its frames' targets, in order; a batch of N clips stacks into the image task's
batch of N x T frames (frames of a clip consecutive, as the model's features are), and the clip's
`has` and weight hold for each of its frames. Heads, predictions and metrics are the image
task's, over frames.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mtlspec.tasks.base import Metric
from mtlspec.tasks.detection import Detection
from mtlspec.tasks.segmentation import Segmentation


class PerFrame:
    """What makes an image task type (the next class in the bases) read clips frame by frame."""

    level = "frame"
    frames = 1  # frames per clip the model sees: the source's window (data/clips.py), kept in model.pt

    @classmethod
    def create(cls, task_name, spec, source, data_root):
        made = super().create(task_name, spec, source, data_root)
        made.frames = int(source.clip_length)
        return made

    def saved(self):
        return {**super().saved(), "frames": self.frames}

    @classmethod
    def restore(cls, task_name, spec, saved):
        made = super().restore(task_name, spec, saved)
        made.frames = int(saved["frames"])
        return made

    @property
    def image_level(self):
        return False

    def target(self, record):
        frames = record.get("frames")
        if not frames:
            return None, False
        image_target = super().target  # (a comprehension has no zero-argument super)
        read = [image_target(frame) for frame in frames]
        if not all(present for _, present in read):  # a clip is labelled in every frame or not at all
            return None, False
        return [value for value, _ in read], True

    def placeholder(self, image_size):
        return [super().placeholder(image_size)] * self.frames

    def collate(self, targets):
        return super().collate([frame for clip in targets for frame in clip])

    def each_frame(self, values):
        """A per-clip vector (has, weight) repeated for each of the clip's frames."""
        return values.repeat_interleave(self.frames)

    def loss(self, output, target, has, weight):
        return super().loss(output, target, self.each_frame(has), self.each_frame(weight))

    def output_shape(self, batch, image_size):
        return super().output_shape(batch * self.frames, image_size)

    def metric(self):
        return FrameMetric(super().metric(), self)

    def trivial_prediction(self, train_targets, count, image_size):
        return super().trivial_prediction([frame for clip in train_targets for frame in clip], count * self.frames, image_size)

    def describe(self):
        return f"{super().describe()}, per frame"


class FrameMetric(Metric):
    """The image task's metric over every frame of the labelled clips."""

    def __init__(self, inner: Metric, task: PerFrame):
        self.inner, self.task = inner, task

    def update(self, prediction, target, has):
        self.inner.update(prediction, target, self.task.each_frame(has))

    def compute(self):
        return self.inner.compute()

    def details(self) -> Any:
        return self.inner.details()


class FrameDetection(PerFrame, Detection):
    name = "frame_detection"

    def target(self, record):
        value, present = super().target(record)
        if present:  # each frame's track ids beside its boxes: the truth tracking is scored against
            for frame, frame_record in zip(value, record["frames"]):
                frame["track_ids"] = np.asarray(frame_record.get("track_ids", np.full(len(frame["boxes"]), -1)), np.int64).reshape(-1)
        return value, present

    def placeholder(self, image_size):
        return [{**frame, "track_ids": np.zeros((0,), np.int64)} for frame in super().placeholder(image_size)]

    def metric(self):
        if self.spec.tracking is None:
            return super().metric()
        return TrackedFrameMetric(super().metric(), self)

    def describe(self):
        tracked = f", tracked by {self.spec.tracking.type}" if self.spec.tracking is not None else ""
        return super().describe() + tracked


class TrackedFrameMetric(FrameMetric):
    """Per-frame mAP, and each labelled clip's boxes tracked over its frames (tasks/object_tracking.py):
    MOTA, IDF1 and HOTA against the clip's track ids."""

    def __init__(self, inner: Metric, task: FrameDetection):
        from mtlspec.tasks.object_tracking import TrackScores

        super().__init__(inner, task)
        self.tracks = TrackScores()

    def update(self, prediction, target, has):
        from mtlspec.tasks.object_tracking import byte_tracker, track_clip

        super().update(prediction, target, has)
        frames = self.task.frames
        for clip, labelled in enumerate(has.tolist()):
            if labelled:
                span = slice(clip * frames, (clip + 1) * frames)
                self.tracks.add_clip(target[span], track_clip(byte_tracker(self.task.spec.tracking), prediction[span]))

    def compute(self):
        scores = self.inner.compute()
        if not scores:
            return scores
        self.found = self.tracks.compute()
        return {**scores, "mota": self.found["mota"], "idf1": self.found["idf1"], "hota": self.found["hota"]}

    def details(self):
        inner = self.inner.details() or {}
        found = getattr(self, "found", None)
        return {**inner, "tracking": found} if found is not None else (inner or None)


class FrameSegmentation(PerFrame, Segmentation):
    name = "frame_segmentation"
