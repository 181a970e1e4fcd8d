"""MOTChallenge sequences (MOT16, MOT17, MOT20): root/<sequence>/ with seqinfo.ini, the frames
(img1/000001.jpg ...) and gt/gt.txt, or the same under root/<split>/. A gt.txt row is
`frame, id, left, top, width, height, flag, class, visibility` (frames from 1). As MOTChallenge's
evaluation (TrackEval) reads it: rows of the distractor classes (`ignore_classes`: person on
vehicle, static person, distractor, reflection), whatever their flag (MOT17 flags them 0), are
regions to ignore, where a detection or a track matched to one is neither a hit nor a false
positive; of the other rows, those with flag 0 ("do not consider") or outside `classes` are left
out, and so are rows less visible than `min_visibility` (a training choice: TrackEval has no such filter).
MOT15's ten-column rows (world coordinates, no class) read as class 1. MOT17 ships each training
sequence three times, once per public detector (-DPM, -FRCNN, -SDP: the same frames and ground
truth); unless `sequences` names them, one copy of each is read (-FRCNN, as ByteTrack's and
MMDetection's MOT17 setups keep). Read into data/formats/video_boxes.py's videos, every problem
named with the file and line.
"""

from __future__ import annotations

import configparser
from collections import defaultdict
from pathlib import Path

from mtlspec.data.formats.common import IMAGE_SUFFIXES, parse_number
from mtlspec.data.formats.video_boxes import DISTRACTOR, Video, VideoBoxesSource, annotated_frame
from mtlspec.data.records import DataError


def _sequence_info(folder: Path) -> tuple[Path, list[Path]]:
    """(the frames' folder, the frame files in order) of a sequence, from seqinfo.ini when there is one."""
    image_dir, suffix, length = "img1", None, None
    ini = folder / "seqinfo.ini"
    if ini.is_file():
        parser = configparser.ConfigParser()
        try:
            parser.read(ini, encoding="utf-8")
            section = parser["Sequence"]
            image_dir, suffix = section.get("imDir", image_dir), section.get("imExt")
            length = int(section["seqLength"]) if "seqLength" in section else None
        except (configparser.Error, KeyError, ValueError) as exc:
            raise DataError(f"seqinfo.ini cannot be read ({type(exc).__name__}: {exc})"[:300], str(ini)) from None
    frames_dir = folder / image_dir
    if not frames_dir.is_dir():
        raise DataError(f"the sequence has no frames folder '{image_dir}'", str(folder), folder.name)
    files = sorted(p for p in frames_dir.iterdir() if p.is_file() and (p.suffix.lower() == suffix if suffix else p.suffix.lower() in IMAGE_SUFFIXES))
    if length is not None and length != len(files):
        raise DataError(f"seqinfo.ini says seqLength={length}; the frames folder has {len(files)} frames", str(frames_dir), folder.name)
    if not files:
        raise DataError("the frames folder has no images", str(frames_dir), folder.name)
    return frames_dir, files


def read_sequence(folder: Path, classes: dict[int, int], min_visibility: float, ignore: list[int] | tuple = ()) -> Video:
    """One sequence as a video; `classes` maps MOT class numbers to the spec's 0..K-1, rows of the
    classes in `ignore` are regions to ignore."""
    _, files = _sequence_info(folder)
    gt = folder / "gt" / "gt.txt"
    if not gt.is_file():
        raise DataError("the sequence has no gt/gt.txt (MOTChallenge's test sequences keep theirs private)", str(gt), folder.name)
    rows: dict[int, list] = defaultdict(list)
    tracks: dict[int, int] = {}
    for line, text in enumerate(gt.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not text.strip():
            continue
        cells = [c.strip() for c in text.split(",")]
        values = [parse_number(c) for c in cells]
        if len(cells) < 6 or any(v is None for v in values[:6]):
            raise DataError(f"line {line}: a row is frame, id, left, top, width, height[, flag, class, visibility]; this one is {text[:80]!r}",
                            str(gt), folder.name)
        frame, track, x, y, w, h = values[:6]
        flag = values[6] if len(values) > 6 and values[6] is not None else 1
        mot_class = int(values[7]) if len(values) == 9 and values[7] is not None else 1
        visibility = values[8] if len(values) == 9 and values[8] is not None else 1.0
        if not (frame.is_integer() and 1 <= frame <= len(files)):
            raise DataError(f"line {line}: frame {frame:g} is outside the sequence's 1..{len(files)}", str(gt), folder.name)
        if mot_class in ignore:  # a distractor, whatever its flag (MOT17 flags them 0) and visibility: a region to ignore
            if w > 0 and h > 0:
                rows[int(frame)].append(([x, y, w, h], 0, DISTRACTOR))
            continue
        if flag == 0 or visibility < min_visibility or mot_class not in classes:
            continue
        if w <= 0 or h <= 0:
            raise DataError(f"line {line}: a box of size {w:g} x {h:g}", str(gt), f"{folder.name} frame {int(frame)}")
        rows[int(frame)].append(([x, y, w, h], classes[mot_class], tracks.setdefault(int(track), len(tracks))))
    return Video(folder.name, [annotated_frame(file, t, rows[t]) for t, file in enumerate(files, 1)])


DETECTOR_COPIES = ("-FRCNN", "-DPM", "-SDP")  # MOT17's copies of each sequence, the one kept first


def _sequences(folder: Path, chosen: list[str] | None) -> list[Path]:
    """The sequences of a folder: those `chosen` names, else every one, one copy of each of MOT17's."""
    found = sorted(p for p in folder.iterdir() if p.is_dir() and ((p / "gt").is_dir() or (p / "img1").is_dir() or (p / "seqinfo.ini").is_file()))
    if chosen is None:
        copies: dict[str, list[Path]] = {}
        for p in found:
            base = next((p.name[: -len(s)] for s in DETECTOR_COPIES if p.name.endswith(s)), p.name)
            copies.setdefault(base, []).append(p)
        rank = lambda p: next((i for i, s in enumerate(DETECTOR_COPIES) if p.name.endswith(s)), 0)  # noqa: E731
        return sorted(min(group, key=rank) for group in copies.values())
    names = {p.name: p for p in found}
    unknown = [s for s in chosen if s not in names]
    if unknown:
        raise DataError(f"no sequence {unknown[0]!r} here; there are {', '.join(sorted(names)) or 'none'}", str(folder))
    return [names[s] for s in chosen]


def mot_source(name: str, root: Path, split: str, seed: int, class_names: dict[int, str], sequences: list[str] | None,
               min_visibility: float, carve: str, frames: int | None, ignore_classes: list[int] | tuple = ()) -> VideoBoxesSource:
    """The split's clips: root/<split>/ when it exists with ground truth, else carved out of
    root/train/ (or root/ itself). `sequences` names the training folder's sequences to read."""
    if not root.is_dir():
        raise DataError("MOTChallenge folder is missing", str(root))
    has_truth = lambda folder: folder.is_dir() and any((p / "gt" / "gt.txt").is_file() for p in folder.iterdir() if p.is_dir())  # noqa: E731
    top = root / "train" if (root / "train").is_dir() else root
    missing = {s for s in ("val", "test") if not (top is not root and has_truth(root / s))}
    folder = root / split if split not in missing and top is not root else top
    found = _sequences(folder, sequences if folder == top else None)
    if not found:
        raise DataError("no sequences (folders with img1/ and gt/gt.txt)", str(folder))
    ordered = sorted(class_names)
    classes = {mot: i for i, mot in enumerate(ordered)}
    videos = [read_sequence(seq, classes, min_visibility, [c for c in ignore_classes if c not in classes]) for seq in found]
    return VideoBoxesSource("mot", name, videos, [class_names[c] for c in ordered], split, seed, carve, missing, frames, str(folder), ordered)
