"""Annotated videos from files (issue 16): COCO-VID files and MOTChallenge sequences written from
moving_digits clips read back with the same boxes, classes and tracks; the splits never share a
frame; long videos cut into clips; bad annotations named by file, line and frame; and a
frame_detection run with tracking on each format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtlspec.data.formats.coco_vid import coco_vid_source
from mtlspec.data.formats.mot import mot_source
from mtlspec.data.formats.video_boxes import Video, annotated_frame, clips_of
from mtlspec.data.moving_digits import MovingDigitsParams, MovingDigitsSource
from mtlspec.data.records import DataError
from mtlspec.language import validate_file
from tests.conftest import run_result

VIDEOS, FRAMES = 10, 8


def _clips(count: int = VIDEOS, frames: int = FRAMES, canvas: int = 32) -> list[dict]:
    source = MovingDigitsSource("m", MovingDigitsParams(canvas=canvas, frames=frames, max_objects=2, size=count, seed=5))
    return [source.record(i) for i in range(count)]


def write_coco_vid(root: Path, clips: list[dict], name: str = "train.json") -> Path:
    """The clips as a COCO-VID file (frames as PNGs); instance ids made large and sparse, category
    ids from 1, as real files have them."""
    videos, images, annotations = [], [], []
    for v, clip in enumerate(clips):
        videos.append({"id": 100 + v, "name": f"video{v}"})
        for t, frame in enumerate(clip["frames"]):
            file = f"video{v}/{t:06d}.png"
            (root / f"video{v}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(frame["image"]).save(root / file)
            image_id = len(images) + 1
            h, w = frame["image"].shape[:2]
            images.append({"id": image_id, "file_name": file, "video_id": 100 + v, "frame_id": t, "width": w, "height": h})
            for box, label, track in zip(frame["boxes"], frame["box_labels"], frame["track_ids"]):
                x0, y0, x1, y1 = (float(c) for c in box)
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label) + 1,
                                    "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0,
                                    "instance_id": 7000 + 13 * v + int(track)})
    path = root / name
    path.write_text(json.dumps({"videos": videos, "images": images, "annotations": annotations,
                                "categories": [{"id": d + 1, "name": str(d)} for d in range(10)]}))
    return path


def write_mot(root: Path, clips: list[dict], extra_rows: bool = True) -> Path:
    """The clips as MOTChallenge sequences: img1/ frames from 1, gt/gt.txt rows with the digit as
    the MOT class + 1; with `extra_rows`, beside them rows MOTChallenge's evaluation leaves out
    (flag 0, low visibility) and a distractor (class 12, a reflection) at [2, 2, 7, 7], flagged 0
    and barely visible as MOT17 writes its distractors."""
    for v, clip in enumerate(clips):
        seq = root / f"SEQ-{v:02d}"
        (seq / "img1").mkdir(parents=True)
        (seq / "gt").mkdir()
        (seq / "seqinfo.ini").write_text(f"[Sequence]\nname=SEQ-{v:02d}\nimDir=img1\nframeRate=10\nseqLength={len(clip['frames'])}\n"
                                         f"imWidth=32\nimHeight=32\nimExt=.png\n")
        rows = []
        for t, frame in enumerate(clip["frames"], 1):
            Image.fromarray(frame["image"]).save(seq / "img1" / f"{t:06d}.png")
            for box, label, track in zip(frame["boxes"], frame["box_labels"], frame["track_ids"]):
                x0, y0, x1, y1 = (float(c) for c in box)
                rows.append(f"{t},{int(track) + 1},{x0},{y0},{x1 - x0},{y1 - y0},1,{int(label) + 1},1.0")
            if extra_rows:
                rows += [f"{t},90,1,1,5,5,0,1,1.0", f"{t},91,2,2,5,5,0,12,0.05", f"{t},92,3,3,5,5,1,1,0.05"]
        (seq / "gt" / "gt.txt").write_text("\n".join(rows) + "\n")
    return root


def _same_as_clips(source, clips: list[dict], video_of) -> None:
    """Every clip of the source holds the boxes, classes and images of the moving_digits clip it
    was written from, and its track ids follow the same digits (up to renumbering)."""
    for index in range(len(source)):
        record = source.record(index)
        clip = clips[video_of(record)]
        mapping: dict[int, int] = {}
        for frame in record["frames"]:
            truth = clip["frames"][frame["meta"]["frame"]]
            assert np.array_equal(frame["image"], truth["image"])
            ignored = frame["crowd"]  # regions to ignore are not objects: checked by the callers
            assert (frame["track_ids"][ignored] == -1).all()
            frame = {k: frame[k][~ignored] for k in ("boxes", "box_labels", "track_ids")}
            order, got = np.lexsort(truth["boxes"].T), np.lexsort(frame["boxes"].T)  # the same objects, in box order
            assert np.allclose(frame["boxes"][got], truth["boxes"][order])
            assert np.array_equal(frame["box_labels"][got], truth["box_labels"][order])
            for mine, theirs in zip(frame["track_ids"][got], truth["track_ids"][order]):
                assert mapping.setdefault(int(mine), int(theirs)) == int(theirs)  # one track, one digit
        assert len(set(mapping.values())) == len(mapping)


def test_a_coco_vid_file_reads_back_every_box_class_and_track(tmp_path):
    clips = _clips()
    write_coco_vid(tmp_path, clips)
    ann = {"train": "train.json", "val": None, "test": None}
    splits = {s: coco_vid_source("v", tmp_path, ann, s, seed=0, carve="videos", frames=None) for s in ("train", "val", "test")}
    assert sum(len(s) for s in splits.values()) == VIDEOS and all(len(s) for s in splits.values())
    names = {s: {src.where(i)[1].split()[0] for i in range(len(src))} for s, src in splits.items()}
    assert not names["train"] & names["test"] and not names["train"] & names["val"]  # whole videos per split
    for source in splits.values():
        assert source.box_names() == [str(d) for d in range(10)] and source.box_category_ids() == list(range(1, 11))
        _same_as_clips(source, clips, lambda record: int(record["meta"]["video"][5:]))


def test_mot_sequences_read_back_their_boxes_and_leave_out_what_motchallenge_ignores(tmp_path):
    clips = _clips()
    write_mot(tmp_path / "mot" / "train", clips)
    classes = {d + 1: f"d{d}" for d in range(10)}
    train = mot_source("m", tmp_path / "mot", "train", 0, classes, None, 0.1, "frames", None, ignore_classes=[2, 7, 8, 12])
    test = mot_source("m", tmp_path / "mot", "test", 0, classes, None, 0.1, "frames", None, ignore_classes=[2, 7, 8, 12])
    assert len(train) == len(test) == VIDEOS  # carved in time: every sequence in both, no frame in both
    for v in range(VIDEOS):
        train_frames = [f["meta"]["frame"] for f in train.record(v)["frames"]]
        test_frames = [f["meta"]["frame"] for f in test.record(v)["frames"]]
        assert train_frames == list(range(0, 6)) and test_frames == [7] and not set(train_frames) & set(test_frames)
    # the rows with flag 0 and of visibility 0.05 are gone; the digits' are there; the distractor
    # (class 12) is a region to ignore in every frame (class 2, a digit here, is not ignored)
    _same_as_clips(train, clips, lambda record: int(record["meta"]["video"][4:]))
    for frame in train.record(0)["frames"]:
        assert frame["crowd"].sum() == 1 and np.array_equal(frame["boxes"][frame["crowd"]], [[2, 2, 7, 7]])
    only_pedestrians = mot_source("m", tmp_path / "mot", "train", 0, {1: "pedestrian"}, ["SEQ-01"], 0.0, "frames", None)
    record = only_pedestrians.record(0)
    kept = [int(label) for f in record["frames"] for label in f["box_labels"]]
    assert set(kept) <= {0} and len(kept) >= len(record["frames"])  # digit 0 (class 1) and the low-visibility row at min 0


def test_long_videos_are_cut_into_consecutive_clips_with_no_frame_in_two_splits():
    videos = [Video(f"v{i}", [annotated_frame(Path(f"{i}-{t}.png"), t, []) for t in range(n)])
              for i, n in enumerate([100, 37, 10])]
    missing = {"val", "test"}
    by_split = {s: clips_of(videos, s, 0, "frames", missing, 8) for s in ("train", "val", "test")}
    frames = {s: {(v, t) for v, a, b in c for t in range(a, b)} for s, c in by_split.items()}
    assert all(b - a == 8 for c in by_split.values() for _, a, b in c)
    assert not frames["train"] & frames["val"] and not frames["train"] & frames["test"] and not frames["val"] & frames["test"]
    assert [c for c in by_split["train"] if c[0] == 0] == [(0, s, s + 8) for s in range(0, 80 - 7, 8)]
    assert by_split["val"] == [(0, 80, 88)] and by_split["test"] == [(0, 90, 98)]  # 37 and 10 frames: no 8-frame clip in 10%
    only_test_missing = clips_of(videos, "train", 0, "frames", {"test"}, None)  # val has a file of its own
    assert only_test_missing == [(0, 0, 90), (1, 0, 33), (2, 0, 9)]


@pytest.mark.parametrize("change, words", [
    (lambda d: d["images"][3].pop("frame_id"), "needs a 'frame_id'"),
    (lambda d: d["images"][3].update(video_id=999), "names video id 999"),
    (lambda d: d["annotations"][2].pop("instance_id"), "needs an integer 'instance_id'"),
    (lambda d: d["annotations"][2].update(bbox=[1, 2, 0, 4]), "positive size"),
    (lambda d: d["annotations"][2].update(category_id=77), "unknown category id 77"),
    (lambda d: d["images"][1].update(frame_id=0), "two images with frame_id 0"),
    (lambda d: d.pop("videos"), "no 'videos' list"),
])
def test_a_bad_coco_vid_file_is_named_with_the_entry(tmp_path, change, words):
    path = write_coco_vid(tmp_path, _clips(2, 4))
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError) as caught:
        coco_vid_source("v", tmp_path, {"train": "train.json"}, "train", 0, "videos", None)
    assert words in str(caught.value) and str(path) in str(caught.value)


@pytest.mark.parametrize("row, words", [
    ("3,1,x,4,5,6,1,1,1", "line 2: a row is frame, id"),
    ("12,1,3,4,5,6,1,1,1", "line 2: frame 12 is outside the sequence's 1..4"),
    ("2,1,3,4,0,6,1,1,1", "line 2: a box of size 0 x 6"),
])
def test_a_bad_gt_row_is_named_by_its_line(tmp_path, row, words):
    write_mot(tmp_path, _clips(1, 4), extra_rows=False)
    gt = tmp_path / "SEQ-00" / "gt" / "gt.txt"
    lines = gt.read_text().splitlines()
    gt.write_text("\n".join([lines[0], row] + lines[1:]) + "\n")
    with pytest.raises(DataError) as caught:
        mot_source("m", tmp_path, "train", 0, {1: "pedestrian"}, None, 0.0, "frames", None)
    assert words in str(caught.value) and str(gt) in str(caught.value)


def test_a_missing_frame_or_sequence_is_named(tmp_path):
    write_mot(tmp_path, _clips(2, 4), extra_rows=False)
    (tmp_path / "SEQ-01" / "img1" / "000003.png").unlink()
    with pytest.raises(DataError, match="seqLength=4; the frames folder has 3 frames"):
        mot_source("m", tmp_path, "train", 0, {1: "pedestrian"}, None, 0.0, "frames", None)
    with pytest.raises(DataError, match="no sequence 'SEQ-09' here; there are SEQ-00, SEQ-01"):
        mot_source("m", tmp_path, "train", 0, {1: "pedestrian"}, ["SEQ-09"], 0.0, "frames", None)
    source = mot_source("m", tmp_path, "train", 0, {1: "pedestrian"}, ["SEQ-00"], 0.0, "frames", None)
    (tmp_path / "SEQ-00" / "img1" / "000002.png").unlink()
    with pytest.raises(DataError, match="frame image is missing") as caught:
        source.check(0)
    assert "SEQ-00 frame 2" in str(caught.value)  # MOTChallenge's own frame number (its file 000002.png)


def test_mot17s_three_copies_of_a_sequence_are_read_once(tmp_path):
    clips = _clips(2, 4)
    write_mot(tmp_path / "copies", clips, extra_rows=False)
    for detector in ("DPM", "FRCNN", "SDP"):
        (tmp_path / "copies" / "SEQ-00").rename(tmp_path / "copies" / f"SEQ-00-{detector}") if detector == "DPM" else \
            __import__("shutil").copytree(tmp_path / "copies" / "SEQ-00-DPM", tmp_path / "copies" / f"SEQ-00-{detector}")
    source = mot_source("m", tmp_path / "copies", "train", 0, {1: "pedestrian"}, None, 0.0, "frames", None)
    assert sorted(v.name for v in source.videos) == ["SEQ-00-FRCNN", "SEQ-01"]  # one copy, -FRCNN, as ByteTrack keeps
    named = mot_source("m", tmp_path / "copies", "train", 0, {1: "pedestrian"}, ["SEQ-00-SDP", "SEQ-00-DPM"], 0.0, "frames", None)
    assert [v.name for v in named.videos] == ["SEQ-00-SDP", "SEQ-00-DPM"]  # named: read as named


RUN = """name: {name}
data:
  datasets:
    v: {dataset}
  clip: {{length: 4}}
  batch_size: 2
  image_size: 32
tasks:
  boxes:
    type: frame_detection
    dataset: v
    head: {{type: FCOSHead, stacked_convs: 1, feat_channels: 32}}
    tracking: {{type: ByteTrack, score_high: 0.2, init_score: 0.2}}
    metrics: [map, mota, idf1, hota]
model: {{backbone: {{type: SmallCNN, channels: [8, 16]}}, neck: {{type: FPN, out_channels: 8}}, temporal: {{type: tsm}}}}
training: {{epochs: 1, device: cpu, threads: 1}}
report: {{formats: [json], plots: false}}
"""


@pytest.mark.parametrize("fmt", ["coco_vid", "mot"])
def test_a_tracking_run_on_annotated_videos_reports_mota_and_idf1(tmp_path, write, fmt):
    if fmt == "coco_vid":  # ten videos, whole ones to each split
        write_coco_vid(tmp_path / "vid", _clips(10, 8))
        dataset = "{type: coco_vid, root: vid, annotations: {train: train.json}, frames: 4}"
    else:
        write_mot(tmp_path / "vid", _clips(3, 40))  # three long sequences, split in time: 4 frames of each to val, 4 to test
        dataset = "{type: mot, root: vid, classes: {1: zero, 2: one, 3: two, 4: three, 5: four, 6: five, 7: six, 8: seven, 9: eight, 10: nine}, frames: 4}"
    (result,) = validate_file(write("v.yaml", RUN.format(name=fmt, dataset=dataset)))
    assert result.ok(), [e.format() for e in result.errors]
    outcome = run_result(result, tmp_path / "runs")
    report = json.loads((outcome.run_dir / "report.json").read_text())
    metrics = report["tasks"]["boxes"]["metrics"]
    assert set(metrics) == {"map", "mota", "idf1", "hota"} and 0 <= metrics["map"] <= 1 and metrics["idf1"] <= 1 and 0 <= metrics["hota"] <= 1
    assert "clips from" in json.dumps(report["data"])


def test_validate_knows_what_annotated_videos_give(write):
    (result,) = validate_file(write("v.yaml", """name: vb
data:
  datasets:
    v: {type: coco_vid, root: vid, annotations: {train: a.json}, frames: 4}
  clip: {length: 6}
tasks:
  way: {type: clip_classification, dataset: v, label: class}
  boxes: {type: frame_detection, dataset: v, head: {type: FCOSHead}}
model: {temporal: {type: pool}}
"""))
    found = {(e.code, e.path) for e in result.errors}
    assert ("label-not-provided", "tasks.way.type") in found or ("label-not-provided", "tasks.way.label") in found, found
    assert any(e.path.startswith("data.clip") and "clips of 4" in e.message for e in result.errors), [e.format() for e in result.errors]


def test_a_mot2coco_file_is_read_as_motchallenge_scores_it(tmp_path):
    """What MMDetection's mot2coco writes beside the tracks: rows flagged 0 (`mot_conf: 0`, left
    out), distractor categories (ignored regions when named in ignore_categories), crowds without a
    track (ignored), low visibility (left out under min_visibility), and categories not kept."""
    path = write_coco_vid(tmp_path, _clips(10, 4))
    data = json.loads(path.read_text())
    data["categories"] += [{"id": 12, "name": "reflection"}]
    first = data["images"][0]["id"]
    extra = [{"bbox": [1, 1, 4, 4], "category_id": 1, "instance_id": 900, "mot_conf": 0},
             {"bbox": [2, 2, 4, 4], "category_id": 12, "instance_id": 901, "mot_conf": 0, "visibility": 0.1},
             {"bbox": [3, 3, 4, 4], "category_id": 3, "iscrowd": 1},
             {"bbox": [4, 4, 4, 4], "category_id": 1, "instance_id": 902, "visibility": 0.1}]
    data["annotations"] += [{"id": 10_000 + n, "image_id": first, **a} for n, a in enumerate(extra)]
    path.write_text(json.dumps(data))
    own = {"train": "train.json", "val": "train.json", "test": "train.json"}  # every split its (same) file: nothing carved
    source = coco_vid_source("v", tmp_path, own, "train", 0, "videos", None, None, [12], 0.5)
    assert source.box_names() == [str(d) for d in range(10)]  # the distractor category is no class
    frame = source.record(0)["frames"][0]
    assert np.array_equal(frame["boxes"][frame["crowd"]], [[2, 2, 6, 6], [3, 3, 7, 7]])
    # the distractor (flagged 0 and barely visible, as mot2coco writes MOT17's) is matched one to one, class-free;
    # the crowd keeps its category ("2", class 2) and swallows what lies inside it
    assert frame["track_ids"][frame["crowd"]].tolist() == [-1, -2] and frame["box_labels"][frame["crowd"]].tolist() == [0, 2]
    assert not any(np.array_equal(b, [1, 1, 5, 5]) or np.array_equal(b, [4, 4, 8, 8]) for b in frame["boxes"])
    only_one = coco_vid_source("v", tmp_path, own, "train", 0, "videos", None, [2], [12], 0.5)
    assert only_one.box_names() == ["1"] and all(set(f["box_labels"].tolist()) <= {0} for i in range(len(only_one)) for f in only_one.record(i)["frames"])
    with pytest.raises(DataError, match="category id 77 is not in the file's categories"):
        coco_vid_source("v", tmp_path, own, "train", 0, "videos", None, [77], [], 0.0)
    data["annotations"] = []
    (tmp_path / "test.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="no annotations"):
        coco_vid_source("v", tmp_path, {"train": "train.json", "val": None, "test": "test.json"}, "test", 0, "videos", None)
