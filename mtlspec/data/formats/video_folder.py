"""Clips as folders of frames, one sub-folder per class: root/<class>/<clip>/<frame image>, or
root/<split>/<class>/<clip>/... when split folders exist (the layout frame extractions of UCF101
or HMDB51 use). Frames are read in the order of their file names; every frame of a clip must
have the size of its first. Label: `class`, for clip_classification.

Encoded video files (mp4 ...) are not read yet: extract their frames first (`ffmpeg -i clip.mp4
clip/%05d.png`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mtlspec.data.formats.common import IMAGE_SUFFIXES, file_stats, read_image
from mtlspec.data.formats.folders import class_folders
from mtlspec.data.records import DataError, Record, fingerprint


def frame_files(clip: Path) -> list[Path]:
    """The clip's frame images, in name order."""
    return sorted(p for p in clip.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


class VideoFolderSource:
    """The clips of one split of a video folder."""

    kind = "video_folder"
    is_clips = True

    def __init__(self, name: str, root: str | Path, split: str, seed: int):
        self.name, self.root = name, Path(root)
        clip_folders = lambda folder: sorted(p for p in folder.iterdir() if p.is_dir())  # noqa: E731
        self.classes, items, self.origin = class_folders(self.root, split, seed, clip_folders, "clip")
        if not items:
            raise DataError(f"the {split} split has no clip folders (<class>/<clip>/<frames>)", self.origin)
        self.items = items
        self.frames = [frame_files(clip) for clip, _ in items]
        for (clip, _), frames in zip(items, self.frames):
            if not frames:
                raise DataError(f"the clip folder has no frames ({', '.join(IMAGE_SUFFIXES)})", str(clip), clip.name)

    def __len__(self) -> int:
        return len(self.items)

    def fingerprint(self) -> str:
        return fingerprint(self.kind, {"root": str(self.root), "classes": self.classes}, file_stats([f for frames in self.frames for f in frames]))

    def where(self, index: int) -> tuple[str, str]:
        clip = self.items[index][0]
        return str(clip), clip.name

    def check(self, index: int) -> None:
        for path in self.frames[index]:
            if not path.is_file():
                raise DataError("frame file is missing", str(path), f"{self.items[index][0].name} frame {path.name}")

    def clip_frames(self) -> int:
        """The shortest clip's frame count (what a window must fit)."""
        return min(len(f) for f in self.frames)

    def shortest_clip(self) -> str:
        return str(self.items[int(np.argmin([len(f) for f in self.frames]))][0])

    def frame_count(self, index: int) -> int:
        return len(self.frames[index])

    def labels(self, index: int) -> dict:
        return {"class": self.items[index][1]}

    def record(self, index: int, keep: Any = None) -> Record:
        """The clip's frames (only those at the indices `keep`, when given), each an image record."""
        clip, label = self.items[index]
        chosen = range(len(self.frames[index])) if keep is None else keep
        frames, size = [], None
        for t in chosen:
            path = self.frames[index][t]
            image = read_image(path, f"{clip.name} frame {path.name}")
            if size is None:
                size = image.shape[:2]
            elif image.shape[:2] != size:
                raise DataError(f"frame is {image.shape[1]} x {image.shape[0]}, the clip's first is {size[1]} x {size[0]}",
                                str(path), f"{clip.name} frame {path.name}")
            frames.append({"image": image, "meta": {"dataset": self.name, "index": index, "frame": t, "file": str(path)}})
        return {"frames": frames, "labels": {"class": label}, "meta": {"dataset": self.name, "index": index, "file": str(clip)}}

    def label_classes(self, label: str) -> int:
        return len(self.classes)

    def label_names(self, label: str) -> list[str]:
        return list(self.classes)
