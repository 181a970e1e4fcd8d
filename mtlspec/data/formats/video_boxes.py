"""Videos with boxes and track ids in every frame, read from annotation files (COCO-VID, data/formats/
coco_vid.py; MOTChallenge, data/formats/mot.py) into one shape, and served as clips.

A parsed video is its name and its frames in time order, each frame an image file with the boxes
(xyxy pixels), their classes (0..K-1), their track ids, and which boxes are regions to ignore
(MOTChallenge's distractors, COCO's crowds: no loss, and a detection or track on one is neither a
hit nor a false positive; served as the record's `crowd`), and the frame's own number in its
format (MOT's from 1, COCO-VID's frame_id) for messages. A split is a set of clips: whole videos
carved by a seeded partition (`carve: videos`), or each video's first 80% of frames for training,
the next 10% for validation and the last 10% for testing (`carve: frames`, MOT17's half-split
convention, for a few long sequences); with `frames: N`, each video's part is then cut into
consecutive clips of N frames (a last, shorter piece is dropped), so a long sequence gives many
samples rather than one centred window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtlspec.data.formats.common import carve as carve_indices
from mtlspec.data.formats.common import SPLIT_FRACTIONS, file_stats, read_image
from mtlspec.data.records import DataError, Record, fingerprint


DISTRACTOR = -1  # the track id of a region to ignore matched one to one (MOTChallenge's distractors)
CROWD = -2  # the track id of a crowd region, which also swallows what lies mostly inside it (COCO's iscrowd)


@dataclass
class Frame:
    """One annotated frame: its image file, boxes (N, 4) xyxy pixels, classes, track ids
    (DISTRACTOR or CROWD for a region to ignore), which boxes are regions to ignore, and the
    frame's number in its format."""

    file: Path
    boxes: np.ndarray
    labels: np.ndarray
    track_ids: np.ndarray
    ignore: np.ndarray
    number: int


@dataclass
class Video:
    name: str
    frames: list[Frame] = field(default_factory=list)


def annotated_frame(file: Path, number: int, rows: list[tuple[list[float], int, int]]) -> Frame:
    """A frame from rows of ([x, y, width, height], class, track id); a negative track id (DISTRACTOR,
    CROWD): a region to ignore."""
    boxes = np.asarray([[x, y, x + w, y + h] for (x, y, w, h), _, _ in rows], np.float32).reshape(-1, 4)
    tracks = np.asarray([t for _, _, t in rows], np.int64)
    return Frame(file, boxes, np.asarray([c for _, c, _ in rows], np.int64), tracks, tracks < 0, number)


def _frame_spans(count: int, split: str, missing: set[str]) -> list[tuple[int, int]]:
    """The [first, end) frame ranges of a video of `count` frames that fall in `split` when the
    splits in `missing` are carved out of it (training keeps what they do not take)."""
    cut = lambda share: (int(round(share[0] * count)), int(round(share[1] * count)))  # noqa: E731
    if split != "train":
        return [cut(SPLIT_FRACTIONS[split])]
    taken = sorted(cut(SPLIT_FRACTIONS[m]) for m in missing)
    spans, at = [], 0
    for first, end in taken:
        spans.append((at, first))
        at = max(at, end)
    return [(a, b) for a, b in spans + [(at, count)] if b > a]


def clips_of(videos: list[Video], split: str, seed: int, carve: str, missing: set[str], frames: int | None) -> list[tuple[int, int, int]]:
    """(video index, first frame, end frame) of each clip of the split. The splits in `missing`
    have no file or folder of their own: they are carved out of training's videos, by whole
    videos or by each video's frames; a split with its own keeps all of its videos."""
    if split != "train" and split not in missing or split == "train" and not missing:
        spans = [(v, 0, len(video.frames)) for v, video in enumerate(videos)]
    elif carve == "videos":
        spans = [(int(v), 0, len(videos[v].frames)) for v in carve_indices(len(videos), split, missing, seed)]
    else:
        spans = [(v, first, end) for v, video in enumerate(videos) for first, end in _frame_spans(len(video.frames), split, missing)]
    if frames is None:
        return [span for span in spans if span[2] > span[1]]
    return [(v, s, s + frames) for v, first, end in spans for s in range(first, end - frames + 1, frames)]


class VideoBoxesSource:
    """Clips of annotated videos: per frame the image, boxes, box classes and track ids."""

    is_clips = True

    def __init__(self, kind: str, name: str, videos: list[Video], classes: list[str], split: str, seed: int,
                 carve: str, missing: set[str], frames: int | None, annotation_file: str, category_ids: list[int]):
        self.kind, self.name, self.videos, self.classes = kind, name, videos, classes
        self.file, self.category_ids = annotation_file, category_ids
        self.clips = clips_of(videos, split, seed, carve, missing, frames)
        if not self.clips:
            why = (f"no video has {frames} frames in this split" if frames else
                   "a seeded tenth of the videos is none of them; give the split a file of its own, or carve: frames" if carve == "videos" and split in missing
                   else "no video falls in this split")
            raise DataError(f"the {split} split has no clips: {why} ({len(videos)} videos)", annotation_file)
        per = f" cut into clips of {frames} frames" if frames else ""
        self.origin = f"{annotation_file}: {len(self.clips)} clips from {len({v for v, _, _ in self.clips})} videos{per}"

    def __len__(self) -> int:
        return len(self.clips)

    def _frames(self, index: int) -> list[Frame]:
        v, first, end = self.clips[index]
        return self.videos[v].frames[first:end]

    def fingerprint(self) -> str:
        files = [Path(self.file)] + [f.file for i in range(len(self)) for f in self._frames(i)]
        return fingerprint(self.kind, {"clips": self.clips, "classes": self.classes}, file_stats(files))

    def where(self, index: int) -> tuple[str, str]:
        v, _, _ = self.clips[index]
        frames = self._frames(index)
        return self.file, f"{self.videos[v].name} frames {frames[0].number}-{frames[-1].number}"

    def check(self, index: int) -> None:
        v, _, _ = self.clips[index]
        for frame in self._frames(index):
            if not frame.file.is_file():
                raise DataError("frame image is missing", str(frame.file), f"{self.videos[v].name} frame {frame.number}")

    def clip_frames(self) -> int:
        """The shortest clip's frame count (what a window must fit)."""
        return min(end - first for _, first, end in self.clips)

    def shortest_clip(self) -> str:
        return self.where(int(np.argmin([end - first for _, first, end in self.clips])))[1]

    def frame_count(self, index: int) -> int:
        _, first, end = self.clips[index]
        return end - first

    def labels(self, index: int) -> dict:
        return {}

    def record(self, index: int, keep: Any = None) -> Record:
        """The clip's frames (only those at the indices `keep`, when given), each an image record
        with its boxes, classes and track ids."""
        v, first, _ = self.clips[index]
        video, frames = self.videos[v], self._frames(index)
        chosen = range(len(frames)) if keep is None else keep
        out = []
        for t in chosen:
            frame = frames[t]
            image = read_image(frame.file, f"{video.name} frame {frame.number}")
            h, w = image.shape[:2]
            boxes = frame.boxes.copy()  # boxes of objects half out of view (MOT's are) cut to the image; slivers dropped
            boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
            kept = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
            out.append({"image": image, "boxes": boxes[kept], "box_labels": frame.labels[kept], "track_ids": frame.track_ids[kept],
                        "crowd": frame.ignore[kept], "meta": {"dataset": self.name, "index": index, "frame": first + t, "file": str(frame.file)}})
        return {"frames": out, "labels": {}, "meta": {"dataset": self.name, "index": index, "file": self.file, "video": video.name}}

    def label_classes(self, label: str) -> int | None:
        return None

    def label_names(self, label: str) -> list[str] | None:
        return None

    def box_classes(self) -> int:
        return len(self.classes)

    def box_names(self) -> list[str]:
        return list(self.classes)

    def box_category_ids(self) -> list[int]:
        return list(self.category_ids)
