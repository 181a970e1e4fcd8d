"""Clips from a folder, one sub-folder per class: root/<class>/<clip>, or root/<split>/<class>/<clip>
when split folders exist (the layout of UCF101 and HMDB51). A clip is a folder of frame images
(read in the order of their file names) or an encoded video file (mp4, avi, mkv, webm, mov, m4v),
decoded with PyAV: FFmpeg's decoders in a wheel from the package registry, with no system FFmpeg
to install. torchvision.io's video reading is deprecated in favour of TorchCodec, which needs the
system's FFmpeg libraries, so PyAV it is. A video is decoded from its start up to the window's
last frame, and only the window's frames are kept; every frame of a clip must have the size of
its first. Label: `class`, for clip_classification.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mtlspec.data.formats.common import IMAGE_SUFFIXES, file_stats, read_image
from mtlspec.data.formats.folders import class_folders
from mtlspec.data.records import DataError, Record, fingerprint

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")


def frame_files(clip: Path) -> list[Path]:
    """The clip's frame images, in name order."""
    return sorted(p for p in clip.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def clip_entries(folder: Path) -> list[Path]:
    """A class folder's clips: frame folders and video files, in name order. A video beside a
    folder of the same name (its frames, extracted) would be one clip twice, possibly in two splits:
    refused."""
    found = sorted(p for p in folder.iterdir() if p.is_dir() or (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES))
    folders = {p.name for p in found if p.is_dir()}
    twice = [p for p in found if p.is_file() and p.stem in folders]
    if twice:
        raise DataError(f"the clip is here twice, as a video file and as the folder of frames {twice[0].stem}/: keep one of them",
                        str(twice[0]), twice[0].stem)
    return found


def _open(path: Path, sample: str) -> Any:
    """A PyAV container of a video file, or a DataError naming it."""
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise DataError(f"unreadable video ({type(exc).__name__}: {str(exc)[:120]})", str(path), sample) from None
    if not container.streams.video:
        container.close()
        raise DataError("the file has no video stream", str(path), sample)
    return container


def video_frame_count(path: Path, sample: str) -> int:
    """Frames in a video file's first video stream: counted from its packets (demuxed, not
    decoded), since a header's count is missing from some containers (webm, some avi). Packets
    an edit list marks discarded (an MP4 cut without re-encoding keeps the frames before the cut
    for the decoder, and the decoder drops them) are not frames."""
    import av

    with _open(path, sample) as container:
        stream = container.streams.video[0]
        try:
            return sum(1 for packet in container.demux(stream) if packet.size and not packet.is_discard)
        except av.FFmpegError as exc:
            raise DataError(f"unreadable video ({type(exc).__name__}: {str(exc)[:120]})", str(path), sample) from None


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """A frame as it is meant to be seen: rotated by its display matrix (PyAV's `rotation`, the
    angle the matrix turns the stored frame counterclockwise; a phone's portrait video is stored
    landscape with -90), as FFmpeg's players and its autorotate do."""
    turns = int(round(rotation / 90)) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def decode_frames(path: Path, keep: list[int], sample: str) -> dict[int, np.ndarray]:
    """The frames at the indices `keep` (decode order from 0) as RGB uint8 arrays, decoding up to
    the last of them; a video that ends early or breaks is named with the frame."""
    import av

    wanted, last = set(keep), max(keep)
    out: dict[int, np.ndarray] = {}
    t = -1
    with _open(path, sample) as container:
        try:
            for t, frame in enumerate(container.decode(video=0)):
                if t in wanted:
                    out[t] = upright(frame.to_ndarray(format="rgb24"), frame.rotation)
                if t >= last:
                    break
        except av.FFmpegError as exc:
            raise DataError(f"the video cannot be decoded at frame {t + 1} ({type(exc).__name__}: {str(exc)[:120]})",
                            str(path), f"{sample} frame {t + 1}") from None
    if last not in out:
        raise DataError(f"the video ends after {t + 1} decodable frames; its stream has packets for frame {last} and more",
                        str(path), f"{sample} frame {t + 1}")
    return out


class VideoFolderSource:
    """The clips of one split of a video folder."""

    kind = "video_folder"
    is_clips = True

    def __init__(self, name: str, root: str | Path, split: str, seed: int):
        self.name, self.root = name, Path(root)
        self.classes, items, self.origin = class_folders(self.root, split, seed, clip_entries, "clip")
        if not items:
            raise DataError(f"the {split} split has no clips (<class>/<clip folder of frames> or <class>/<clip>{'|'.join(VIDEO_SUFFIXES)})", self.origin)
        self.items = items
        # a frame folder's frames, or None for a video file (whose frames are counted once, here)
        self.frames: list[list[Path] | None] = [frame_files(clip) if clip.is_dir() else None for clip, _ in items]
        self.counts: list[int] = []
        for (clip, _), frames in zip(items, self.frames):
            if frames is None:
                self.counts.append(video_frame_count(clip, clip.name))
            elif not frames:
                raise DataError(f"the clip folder has no frames ({', '.join(IMAGE_SUFFIXES)})", str(clip), clip.name)
            else:
                self.counts.append(len(frames))
            if not self.counts[-1]:
                raise DataError("the video has no frames", str(clip), clip.name)

    def __len__(self) -> int:
        return len(self.items)

    def fingerprint(self) -> str:
        files = [f for (clip, _), frames in zip(self.items, self.frames) for f in (frames if frames is not None else [clip])]
        return fingerprint(self.kind, {"root": str(self.root), "classes": self.classes}, file_stats(files))

    def where(self, index: int) -> tuple[str, str]:
        clip = self.items[index][0]
        return str(clip), clip.name

    def check(self, index: int) -> None:
        clip = self.items[index][0]
        for path in self.frames[index] or [clip]:
            if not path.is_file():
                raise DataError("frame file is missing" if self.frames[index] else "video file is missing", str(path),
                                f"{clip.name} frame {path.name}" if self.frames[index] else clip.name)

    def clip_frames(self) -> int:
        """The shortest clip's frame count (what a window must fit)."""
        return min(self.counts)

    def shortest_clip(self) -> str:
        return str(self.items[int(np.argmin(self.counts))][0])

    def frame_count(self, index: int) -> int:
        return self.counts[index]

    def labels(self, index: int) -> dict:
        return {"class": self.items[index][1]}

    def _images(self, index: int, chosen: list[int]) -> list[tuple[np.ndarray, str, str]]:
        """(image, file, sample) of each chosen frame."""
        clip = self.items[index][0]
        frames = self.frames[index]
        if frames is None:
            decoded = decode_frames(clip, chosen, clip.name)
            return [(decoded[t], str(clip), f"{clip.name} frame {t}") for t in chosen]
        return [(read_image(frames[t], f"{clip.name} frame {frames[t].name}"), str(frames[t]), f"{clip.name} frame {frames[t].name}") for t in chosen]

    def record(self, index: int, keep: Any = None) -> Record:
        """The clip's frames (only those at the indices `keep`, when given), each an image record."""
        clip, label = self.items[index]
        chosen = list(range(self.counts[index]) if keep is None else keep)
        frames, size = [], None
        for t, (image, file, sample) in zip(chosen, self._images(index, chosen)):
            if size is None:
                size = image.shape[:2]
            elif image.shape[:2] != size:
                raise DataError(f"frame is {image.shape[1]} x {image.shape[0]}, the clip's first is {size[1]} x {size[0]}", file, sample)
            frames.append({"image": image, "meta": {"dataset": self.name, "index": index, "frame": t, "file": file}})
        return {"frames": frames, "labels": {"class": label}, "meta": {"dataset": self.name, "index": index, "file": str(clip)}}

    def label_classes(self, label: str) -> int:
        return len(self.classes)

    def label_names(self, label: str) -> list[str]:
        return list(self.classes)
