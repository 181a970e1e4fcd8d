"""Image task types applied to every frame of a clip: `frame_detection` (the detection task's
MMDetection heads on each frame's pyramid) and `frame_segmentation`.

A clip's target is its frames' targets, in order; a batch of N clips stacks into the image task's
batch of N x T frames (frames of a clip consecutive, as the model's features are), and the clip's
`has` and weight hold for each of its frames. Heads, predictions and metrics are the image
task's, over frames.
"""

from __future__ import annotations

from typing import Any

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


class FrameSegmentation(PerFrame, Segmentation):
    name = "frame_segmentation"
