"""COCO-VID annotation files (the layout of MMDetection's video datasets, and what its mot2coco
converter writes from MOTChallenge): a COCO file whose `videos` list the videos ({id, name}), whose
images carry `video_id` and `frame_id`, and whose annotations carry `instance_id`, the track. Read
into data/formats/video_boxes.py's videos, every problem named with the file and the entry.

Annotations of the categories the spec names in `ignore_categories` (mot2coco keeps MOTChallenge's
distractors: person on vehicle, static person, distractor, reflection), whatever their `mot_conf`,
are regions to ignore matched one to one, as TrackEval treats MOT's distractors; annotations marked
`iscrowd` or `ignore` are crowd regions of their category, which also swallow every detection or
track lying mostly inside them (COCO's crowd matching; TrackEval's crowd-ignore regions). Of the
rest, those with mot2coco's `mot_conf` 0 (MOTChallenge's "do not consider" flag) or of categories
outside `categories` are left out, as MOTChallenge's evaluation does, and so are those less
visible than `min_visibility` (mot2coco's `visibility`; a training choice, not TrackEval's).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from mtlspec.data.formats.common import is_number, read_json
from mtlspec.data.formats.video_boxes import CROWD, DISTRACTOR, Video, VideoBoxesSource, annotated_frame
from mtlspec.data.records import DataError


def _categories(data: dict, file: str, keep: list[int] | None, ignore: list[int] | tuple) -> tuple[dict[int, str], list[int]]:
    """(every category id -> name, the ids that are classes, in order)."""
    categories = data.get("categories")
    if not isinstance(categories, list) or not categories or not all(isinstance(c, dict) and isinstance(c.get("id"), int) for c in categories):
        raise DataError("'categories' must be a non-empty list of {id, name}", file)
    names = {c["id"]: str(c.get("name", c["id"])) for c in categories}
    unknown = [c for c in [*(keep or []), *ignore] if c not in names]
    if unknown:
        raise DataError(f"category id {unknown[0]} is not in the file's categories ({', '.join(f'{i} {n}' for i, n in sorted(names.items()))})", file)
    return names, sorted(keep) if keep else sorted(c for c in names if c not in ignore)


def _videos_and_images(data: dict, file: str) -> tuple[dict[int, str], dict[int, dict]]:
    """(video id -> name, image id -> image), each entry checked."""
    if not isinstance(data.get("videos"), list) or not data["videos"]:
        raise DataError("a COCO-VID file holds one JSON object with 'videos', 'images', 'annotations' and 'categories'; "
                        "this one has no 'videos' list (a plain COCO file? use type: coco)", file)
    videos: dict[int, str] = {}
    for n, video in enumerate(data["videos"]):
        if not isinstance(video, dict) or not isinstance(video.get("id"), int):
            raise DataError(f"videos[{n}] needs an integer 'id'", file, n)
        videos[video["id"]] = str(video.get("name", video["id"]))
    images: dict[int, dict] = {}
    for n, image in enumerate(data.get("images") or []):
        if not isinstance(image, dict) or not isinstance(image.get("id"), int) or not isinstance(image.get("file_name"), str):
            raise DataError(f"images[{n}] needs an integer 'id' and a string 'file_name'", file, n)
        sample = image["file_name"]
        if image.get("video_id") not in videos:
            raise DataError(f"image {image['id']} names video id {image.get('video_id')!r}, which no video in the file has", file, sample)
        if not isinstance(image.get("frame_id"), int) or image["frame_id"] < 0:
            raise DataError(f"image {image['id']} needs a 'frame_id', its frame's place in the video (0, 1, ...)", file, sample)
        images[image["id"]] = image
    if not images:
        raise DataError("the file has no images (an 'images' list of {id, file_name, video_id, frame_id})", file)
    return videos, images


def _rows(data: dict, file: str, videos: dict[int, str], images: dict[int, dict], names: dict[int, str], classes: list[int],
          ignore: list[int] | tuple, min_visibility: float) -> dict[int, list]:
    """image id -> rows of ([x, y, width, height], class, track id) of what the spec keeps (a negative
    track id: a region to ignore); tracks numbered 0.. per video."""
    if not data.get("annotations"):
        raise DataError("the file has no annotations (MMDetection's mot2coco writes none for MOTChallenge's test sequences, "
                        "whose ground truth is private): give this split a file with boxes, or carve it out of training", file)
    contiguous = {cid: i for i, cid in enumerate(classes)}
    rows: dict[int, list] = defaultdict(list)
    tracks: dict[int, dict] = defaultdict(dict)  # per video: instance id -> a small track id
    for n, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or ann.get("image_id") not in images:
            raise DataError(f"annotations[{n}] names image id {ann.get('image_id') if isinstance(ann, dict) else None!r}, which no image in the file has", file, n)
        image = images[ann["image_id"]]
        sample = f"{videos[image['video_id']]} frame {image['frame_id']}"
        if ann.get("category_id") not in names:
            raise DataError(f"annotation {ann.get('id', f'#{n}')} has unknown category id {ann.get('category_id')!r}", file, sample)
        box = ann.get("bbox")
        if not isinstance(box, list) or len(box) != 4 or not all(is_number(v) for v in box) or box[2] <= 0 or box[3] <= 0:
            raise DataError(f"annotation {ann.get('id', f'#{n}')} needs a bbox [x, y, width, height] of positive size, has {box!r}"[:300], file, sample)
        if ann["category_id"] in ignore:  # a distractor, whatever its mot_conf and visibility
            rows[ann["image_id"]].append((box, 0, DISTRACTOR))
            continue
        if ann.get("iscrowd") or ann.get("ignore"):  # a crowd of its own class, when that is one of the classes
            if ann["category_id"] in contiguous:
                rows[ann["image_id"]].append((box, contiguous[ann["category_id"]], CROWD))
            continue
        visibility = ann.get("visibility", 1.0)
        if ann.get("mot_conf", 1) == 0 or (is_number(visibility) and visibility < min_visibility) or ann["category_id"] not in contiguous:
            continue
        if not isinstance(ann.get("instance_id"), int):
            raise DataError(f"annotation {ann.get('id', f'#{n}')} needs an integer 'instance_id' (its track)", file, sample)
        video_tracks = tracks[image["video_id"]]
        track = video_tracks.setdefault(ann["instance_id"], len(video_tracks))
        rows[ann["image_id"]].append((box, contiguous[ann["category_id"]], track))
    return rows


def read_coco_vid(path: Path, root: Path, keep: list[int] | None = None, ignore: list[int] | tuple = (),
                  min_visibility: float = 0.0) -> tuple[list[Video], list[str], list[int]]:
    """(videos in id order, category names, category ids) of a COCO-VID file; image paths under
    `root`. `keep`: the category ids that are classes (all but `ignore` when None); `ignore`: the
    category ids whose boxes are regions to ignore."""
    if not path.is_file():
        raise DataError("annotation file is missing", str(path))
    data, file = read_json(path), str(path)
    if not isinstance(data, dict):
        raise DataError("a COCO-VID file holds one JSON object with 'videos', 'images', 'annotations' and 'categories'", file)
    videos, images = _videos_and_images(data, file)
    names, classes = _categories(data, file, keep, ignore)
    rows = _rows(data, file, videos, images, names, classes, ignore, min_visibility)
    by_video: dict[int, list[dict]] = defaultdict(list)
    for image in images.values():
        by_video[image["video_id"]].append(image)
    out = []
    for vid in sorted(by_video):
        frames = sorted(by_video[vid], key=lambda image: image["frame_id"])
        seen = [image["frame_id"] for image in frames]
        if len(set(seen)) != len(seen):
            twice = next(f for f in seen if seen.count(f) > 1)
            raise DataError(f"video {videos[vid]!r} has two images with frame_id {twice}", file, videos[vid])
        out.append(Video(videos[vid], [annotated_frame(root / image["file_name"], image["frame_id"], rows[image["id"]]) for image in frames]))
    return out, [names[c] for c in classes], classes


def coco_vid_source(name: str, root: Path, annotations: dict[str, str | None], split: str, seed: int,
                    carve: str, frames: int | None, categories: list[int] | None = None, ignore_categories: list[int] | tuple = (),
                    min_visibility: float = 0.0) -> VideoBoxesSource:
    """The split's clips: from the split's own file, or carved out of the training file."""
    chosen = annotations.get(split)
    path = root / (chosen or annotations["train"])
    videos, classes, category_ids = read_coco_vid(path, root, categories, ignore_categories, min_visibility)
    missing = {s for s in ("val", "test") if not annotations.get(s)}
    return VideoBoxesSource("coco_vid", name, videos, classes, split, seed, carve, missing, frames, str(path), category_ids)
