"""Clips from folders of frames and from encoded video files (video_folder): what is read and in
which order, the window over clips of different lengths, bad clips named by file and frame, and
runs on such folders. The video files are real ones, written here with PyAV: FFV1 in Matroska
(lossless: the frames read back bit for bit) and MPEG-4 Part 2 in MP4 (lossy, as users' files are)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtlspec.data.clips import ClipWindow
from mtlspec.data.formats.video_folder import VideoFolderSource
from mtlspec.data.records import DataError
from mtlspec.language import validate_file
from tests.conftest import run_result


def _square(t: int, direction: int, size: int = 24) -> np.ndarray:
    """A bright square moving left (0) or right (1) by 3 px a frame on a dark frame."""
    image = np.full((size, size, 3), 20, np.uint8)
    x = 2 + 3 * t if direction else size - 8 - 3 * t
    image[8:14, x : x + 6] = 230
    return image


def _folder(root: Path, clips_per_class: int = 5, frames: int = 6, long_every: int = 0) -> Path:
    for c, name in enumerate(["left", "right"]):
        for k in range(clips_per_class):
            clip = root / name / f"clip{k:02d}"
            clip.mkdir(parents=True)
            count = frames + (2 if long_every and k % long_every == 0 else 0)
            for t in range(count):
                Image.fromarray(_square(t, c)).save(clip / f"{t:05d}.png")
    return root


def write_video(path: Path, frames: list[np.ndarray], codec: str = "ffv1") -> Path:
    """An encoded video file of the frames, 10 frames a second."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "bgr0" if codec == "ffv1" else "yuv420p"  # bgr0: FFV1 keeps RGB exactly
        if codec == "mpeg4":
            stream.bit_rate = 2_000_000
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _video_folder(root: Path, suffix: str = ".mkv", codec: str = "ffv1", clips_per_class: int = 5, frames: int = 6, long_every: int = 0) -> Path:
    for c, name in enumerate(["left", "right"]):
        for k in range(clips_per_class):
            count = frames + (2 if long_every and k % long_every == 0 else 0)
            write_video(root / name / f"clip{k:02d}{suffix}", [_square(t, c) for t in range(count)], codec)
    return root


def test_clips_are_read_in_name_order_by_class_and_a_window_takes_their_middle(tmp_path):
    root = _folder(tmp_path / "videos", long_every=2)
    train = VideoFolderSource("v", root, "train", seed=0)
    test = VideoFolderSource("v", root, "test", seed=0)
    assert train.classes == ["left", "right"] and len(train) + len(test) + len(VideoFolderSource("v", root, "val", seed=0)) == 10
    assert not {c for c, _ in train.items} & {c for c, _ in test.items}  # the seeded carve-out: no clip in two splits
    window = ClipWindow(train, 4, 1)
    for index in range(len(train)):
        record = window.record(index)
        count = train.frame_count(index)
        start = (count - 4) // 2
        assert [f["meta"]["frame"] for f in record["frames"]] == list(range(start, start + 4))
        direction = train.labels(index)["class"]
        assert np.array_equal(record["frames"][0]["image"], _square(start, direction))
        assert record["labels"] == {"class": direction} == window.labels(index)


@pytest.mark.parametrize("damage, words, sample", [
    ("missing", "frame file is missing", "frame 00003.png"),
    ("garbage", "unreadable image", "frame 00003.png"),
    ("size", "the clip's first is 24 x 24", "frame 00003.png"),
])
def test_a_bad_frame_is_named_by_its_file_and_frame(tmp_path, damage, words, sample):
    root = _folder(tmp_path / "videos")
    source = VideoFolderSource("v", root, "train", seed=0)
    path = source.frames[0][3]
    if damage == "missing":
        path.unlink()
    elif damage == "garbage":
        path.write_bytes(b"not a png")
    else:
        Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(path)
    with pytest.raises(DataError) as caught:
        source.check(0)
        ClipWindow(source, 6, 1).record(0)
    assert words in str(caught.value) and str(path) in str(caught.value) and sample in str(caught.value)


def test_video_files_read_back_their_frames_and_a_window_decodes_its_middle(tmp_path):
    root = _video_folder(tmp_path / "videos", long_every=2)
    write_video(root / "left" / "zz-as-frames" / "unused.mkv", [_square(0, 0)])  # a folder of frames beside the files
    for t in range(7):
        Image.fromarray(_square(t, 0)).save(root / "left" / "zz-as-frames" / f"{t:05d}.png")
    (root / "right" / "notes.txt").write_text("not a clip")
    train = VideoFolderSource("v", root, "train", seed=0)
    every = [VideoFolderSource("v", root, s, seed=0) for s in ("train", "val", "test")]
    assert sum(len(s) for s in every) == 11 and train.classes == ["left", "right"]
    window = ClipWindow(train, 4, 1)
    for index in range(len(train)):
        clip = train.items[index][0]
        count = train.frame_count(index)
        assert count == (7 if clip.is_dir() else 8 if int(clip.stem[-2:]) % 2 == 0 else 6)
        record = window.record(index)
        start = (count - 4) // 2
        direction = train.labels(index)["class"]
        assert [f["meta"]["frame"] for f in record["frames"]] == list(range(start, start + 4))
        for t, frame in zip(range(start, start + 4), record["frames"]):
            assert np.array_equal(frame["image"], _square(t, direction)), (clip, t)  # FFV1 is lossless


def test_an_mp4_file_reads_back_close_to_what_was_encoded(tmp_path):
    frames = [_square(t, 1, size=32) for t in range(6)]
    path = write_video(tmp_path / "videos" / "right" / "clip.mp4", frames, codec="mpeg4")
    write_video(tmp_path / "videos" / "left" / "clip.mp4", frames, codec="mpeg4")
    source = VideoFolderSource("v", tmp_path / "videos", "train", seed=0)
    index = [i for i, (clip, _) in enumerate(source.items) if clip == path][0]
    record = source.record(index)
    assert source.frame_count(index) == 6 and len(record["frames"]) == 6
    for image, frame in zip(frames, record["frames"]):
        error = np.abs(frame["image"].astype(int) - image.astype(int))
        assert frame["image"].shape == (32, 32, 3) and error.mean() < 6, error.mean()  # lossy, yet the same picture


def test_a_bad_video_file_is_named_with_the_file_and_frame(tmp_path):
    root = tmp_path / "videos"
    for split in ("train", "val", "test"):  # split folders: the training clips are all of train/
        _video_folder(root / split, clips_per_class=2)
    broken = root / "train" / "left" / "clip01.mkv"
    broken.write_bytes(b"this is not a video at all" * 40)
    with pytest.raises(DataError, match="unreadable video") as caught:
        VideoFolderSource("v", root, "train", seed=0)
    assert str(broken) in str(caught.value)
    write_video(broken, [_square(t, 0) for t in range(6)])
    source = VideoFolderSource("v", root, "train", seed=0)
    index = [clip for clip, _ in source.items].index(broken)
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) * 2 // 3])  # cut short after the folder was read: the last frames are gone
    with pytest.raises(DataError) as caught:
        source.record(index)
    assert str(broken) in str(caught.value) and "frame" in str(caught.value), str(caught.value)
    broken.unlink()
    with pytest.raises(DataError, match="video file is missing"):
        source.check(index)


def test_a_window_longer_than_the_shortest_clip_names_it(tmp_path):
    root = _folder(tmp_path / "videos", long_every=2)
    source = VideoFolderSource("v", root, "train", seed=0)
    with pytest.raises(DataError, match="the shortest clip has 6") as caught:
        ClipWindow(source, 7, 1)
    assert source.shortest_clip() in str(caught.value)
    (root / "left" / "empty").mkdir()
    with pytest.raises(DataError, match="no frames"):
        VideoFolderSource("v", root, "train", seed=0)


@pytest.mark.parametrize("clips", ["frame folders", "mp4 files"])
def test_a_run_on_a_video_folder_trains_and_scores_its_classes(tmp_path, write, clips):
    if clips == "frame folders":
        _folder(tmp_path / "videos", clips_per_class=12)
    else:
        _video_folder(tmp_path / "videos", suffix=".mp4", codec="mpeg4", clips_per_class=12)
    spec = write("v.yaml", """name: vf
data:
  datasets:
    v: {type: video_folder, root: videos}
  clip: {length: 4}
  batch_size: 4
  image_size: 24
tasks:
  way: {type: clip_classification, dataset: v, label: class}
model: {backbone: {type: SmallCNN, channels: [8, 16]}, neck: {type: FPN, out_channels: 8}, temporal: {type: tsm}}
training: {epochs: 1, device: cpu, threads: 1}
report: {formats: [json], plots: false}
""")
    (result,) = validate_file(spec)
    assert result.ok(), [e.format() for e in result.errors]
    outcome = run_result(result, tmp_path / "runs")
    report = json.loads((outcome.run_dir / "report.json").read_text())
    assert set(report["tasks"]["way"]["metrics"]) == {"accuracy", "macro_f1"}
    assert all(0 <= v <= 1 for v in report["tasks"]["way"]["metrics"].values())
    assert "videos" in json.dumps(report["data"])  # the report says where the clips came from


def test_validate_knows_what_a_video_folder_gives(write):
    (result,) = validate_file(write("v.yaml", """name: vf
data:
  datasets:
    v: {type: video_folder, root: videos}
tasks:
  boxes: {type: frame_detection, dataset: v, head: {type: FCOSHead}}
model: {temporal: {type: pool}}
"""))
    (error,) = result.errors  # the folder itself is read by `validate --deep` and `run`, as an image folder is
    assert (error.code, error.path) == ("label-not-provided", "tasks.boxes.type") and "clip_classification" in error.message


def test_a_phone_video_is_read_upright_by_its_display_matrix(tmp_path):
    """A portrait phone video is stored landscape with a display matrix that turns it 90 degrees
    clockwise (FFprobe: "rotation of -90"); frames come out as a player shows them. The matrix is
    written into the MP4's track header by hand, as a phone writes it."""
    import struct

    landscape = np.zeros((16, 32, 3), np.uint8)
    landscape[:4, :8] = 255  # a bright block at the stored frame's top left
    path = write_video(tmp_path / "videos" / "up" / "phone.mp4", [landscape] * 3, codec="mpeg4")
    data = bytearray(path.read_bytes())
    at = data.index(b"tkhd") + 4 + 40  # version/flags, times, track id, duration, layer ... then the 3 x 3 matrix
    assert struct.unpack(">9i", data[at : at + 36]) == (1 << 16, 0, 0, 0, 1 << 16, 0, 0, 0, 1 << 30)  # identity, as written
    data[at : at + 36] = struct.pack(">9i", 0, 1 << 16, 0, -(1 << 16), 0, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))
    write_video(tmp_path / "videos" / "down" / "plain.mp4", [landscape] * 3, codec="mpeg4")
    source = VideoFolderSource("v", tmp_path / "videos", "train", seed=0)
    (index,) = [i for i, (clip, _) in enumerate(source.items) if clip == path]
    image = source.record(index)["frames"][0]["image"]
    assert image.shape == (32, 16, 3)  # portrait
    assert image[:8, 12:].mean() > 180 and image[:8, :4].mean() < 60  # turned clockwise: the block at the top right


def test_a_clip_both_as_a_video_and_as_its_frames_is_refused(tmp_path):
    root = _video_folder(tmp_path / "videos", clips_per_class=2)
    (root / "left" / "clip00").mkdir()
    Image.fromarray(_square(0, 0)).save(root / "left" / "clip00" / "00000.png")
    with pytest.raises(DataError, match="here twice") as caught:
        VideoFolderSource("v", root, "train", seed=0)
    assert str(root / "left" / "clip00.mkv") in str(caught.value)
