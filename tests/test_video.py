"""Video (issue 16): moving_digits' labels against its own frames, the window of frames, the
temporal shift against its definition, which frames see which, the localization loss and
ActivityNet's mAP by hand, validate's rules on clips, and a run of the three video tasks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mtlspec.data.clips import ClipWindow, window_events, window_start
from mtlspec.data.moving_digits import DIRECTIONS, MovingDigitsParams, MovingDigitsSource
from mtlspec.language import validate_file
from tests.conftest import run_result


@pytest.fixture(scope="module")
def clips():
    return MovingDigitsSource("clips", MovingDigitsParams(canvas=64, frames=8, max_objects=3, size=40, seed=3))


# --- the dataset -----------------------------------------------------------------------------

def test_every_box_holds_its_digits_pixels_and_every_track_keeps_its_digit(clips):
    for index in range(len(clips)):
        record = clips.record(index)
        digit_of_track: dict[int, int] = {}
        frames_of_track: dict[int, list[int]] = {}
        for t, frame in enumerate(record["frames"]):
            assert frame["image"].shape == (64, 64, 3) and frame["image"].dtype == np.uint8
            assert len(frame["boxes"]) == len(frame["box_labels"]) == len(frame["track_ids"]) == len(set(frame["track_ids"].tolist()))
            for (x0, y0, x1, y1), digit, track in zip(frame["boxes"].astype(int), frame["box_labels"], frame["track_ids"]):
                inside = frame["mask"][y0:y1, x0:x1] == digit + 1
                assert inside.any()  # the digit's pixels are in its box, touching each edge (a tight box)
                assert inside[0].any() or inside[:, 0].any() or inside[-1].any() or inside[:, -1].any()
                assert digit_of_track.setdefault(int(track), int(digit)) == digit  # a track is one digit throughout
                frames_of_track.setdefault(int(track), []).append(t)
        labels = record["labels"]
        assert frames_of_track[0] == list(range(8)) and digit_of_track[0] == labels["actor"]  # the actor is in every frame
        assert labels["action"] == labels["actor"] * 4 + labels["direction"]
        spans = sorted((digit_of_track[k], v[0], v[-1] + 1) for k, v in frames_of_track.items())
        assert sorted(map(tuple, labels["events"])) == spans  # an event is exactly the frames its digit is on screen
        visitors = sorted((0, v[0], v[-1] + 1) for k, v in frames_of_track.items() if k != 0)
        assert sorted(map(tuple, labels["visits"])) == visitors  # a visit: a digit other than the actor on screen
        assert all(v == list(range(v[0], v[-1] + 1)) for v in frames_of_track.values())  # a digit comes once and leaves once


def test_the_direction_label_is_the_way_the_actor_moves(clips):
    for index in range(len(clips)):
        record = clips.record(index)
        centres = np.array([(f["boxes"][0, :2] + f["boxes"][0, 2:]) / 2 for f in record["frames"]])  # track 0 sorts first
        dx, dy = centres[-1] - centres[0]
        moved = {"left": -dx, "right": dx, "up": -dy, "down": dy}
        assert max(moved, key=moved.get) == DIRECTIONS[record["labels"]["direction"]]


def test_a_clip_is_a_function_of_its_seed_split_and_index(clips):
    again = MovingDigitsSource("clips", MovingDigitsParams(canvas=64, frames=8, max_objects=3, size=40, seed=3))
    a, b = clips.record(5), again.record(5)
    assert all(np.array_equal(x["image"], y["image"]) for x, y in zip(a["frames"], b["frames"]))
    assert a["labels"] == b["labels"] == again.labels(5)
    assert not np.array_equal(clips.record(6)["frames"][0]["image"], a["frames"][0]["image"])
    val = MovingDigitsSource("clips", MovingDigitsParams(canvas=64, frames=8, max_objects=3, size=40, seed=3, split="val"))
    assert not np.array_equal(val.record(5)["frames"][0]["image"], a["frames"][0]["image"])


def test_a_window_moves_events_into_its_own_frames(clips):
    assert window_start(8, 8, 1) == 0 and window_start(12, 4, 2) == 2
    assert window_events([[3, 0, 8], [5, 3, 5], [1, 0, 2]], start=2, length=4, stride=2) == [[3, 0, 3], [5, 1, 2]]
    window = ClipWindow(clips, 4, 2)
    record = window.record(0)
    full = clips.record(0)
    assert [f["meta"]["frame"] for f in record["frames"]] == [0, 2, 4, 6]
    assert np.array_equal(record["frames"][1]["image"], full["frames"][2]["image"])
    assert record["labels"] == window.labels(0)
    assert record["labels"]["visits"] == window_events(full["labels"]["visits"], 0, 4, 2)
    from mtlspec.data.records import DataError

    with pytest.raises(DataError, match="needs 9 frames"):
        ClipWindow(clips, 5, 2)


# --- the temporal models ---------------------------------------------------------------------

def test_the_temporal_shift_is_its_definition():
    from mtlspec.model.temporal import temporal_shift

    n, t, c = 2, 4, 8
    x = torch.arange(n * t * c * 2 * 2, dtype=torch.float32).reshape(n * t, c, 2, 2)
    out = temporal_shift(x, frames=t, fold_div=4).reshape(n, t, c, 2, 2)
    x5 = x.reshape(n, t, c, 2, 2)
    for clip in range(n):
        for frame in range(t):
            for channel in range(c):
                if channel < 2:  # the first c/4 channels: the next frame's
                    expected = x5[clip, frame + 1, channel] if frame + 1 < t else torch.zeros(2, 2)
                elif channel < 4:  # the next c/4: the previous frame's
                    expected = x5[clip, frame - 1, channel] if frame > 0 else torch.zeros(2, 2)
                else:
                    expected = x5[clip, frame, channel]
                assert torch.equal(out[clip, frame, channel], expected), (clip, frame, channel)


def _frames_reached(backbone, frames: int, changed: int) -> list[int]:
    """Which frames' last feature maps change when one frame of the clip changes."""
    backbone.eval()
    x = torch.randn(frames, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[changed] += 1.0
    with torch.no_grad():
        a, b = backbone(x)[-1], backbone(y)[-1]
    return [t for t in range(frames) if not torch.allclose(a[t], b[t])]


@pytest.mark.parametrize("kind, reached", [("pool", [3]), ("tsm", [1, 2, 3, 4, 5]), ("r2plus1d", [2, 3, 4])])
def test_each_temporal_model_lets_a_frame_see_the_neighbours_it_should(kind, reached):
    from mtlspec.language.model import Conv2Plus1D, SmallCNN, TemporalPool, TemporalShift
    from mtlspec.model.backbones import build_backbone
    from mtlspec.model.temporal import make_temporal

    spec = {"pool": TemporalPool(type="pool"), "tsm": TemporalShift(type="tsm"), "r2plus1d": Conv2Plus1D(type="r2plus1d")}[kind]
    torch.manual_seed(0)
    plain = build_backbone(SmallCNN(type="SmallCNN", channels=[8, 16]))
    before = sum(p.numel() for p in plain.parameters())
    backbone = make_temporal(plain, spec, frames=7)
    added = sum(p.numel() for p in backbone.parameters()) - before
    assert (added == 0) == (kind != "r2plus1d")  # TSM adds no parameters
    # SmallCNN: a shift at the input of each of its 2 stages reaches 2 frames each way; one (2+1)D block reaches 1
    assert _frames_reached(backbone, 7, 3) == reached


def test_tsm_shifts_inside_each_residual_block_of_a_resnet():
    from mtlspec.language.model import ResNet, TemporalShift
    from mtlspec.model.backbones import build_backbone
    from mtlspec.model.temporal import Shifted, make_temporal

    backbone = make_temporal(build_backbone(ResNet(type="ResNet", depth=18, base_channels=8)), TemporalShift(type="tsm", fold_div=8), frames=4)
    blocks = [m for m in backbone.modules() if hasattr(m, "conv1") and hasattr(m, "downsample")]
    assert len(blocks) == 8 and all(isinstance(b.conv1, Shifted) and b.conv1.shift.fold_div == 8 for b in blocks)


# --- temporal localization -------------------------------------------------------------------

def test_activitynet_map_by_hand():
    from mtlspec.tasks.temporal_localization_metric import localization_map

    truth = [np.array([[0, 0, 4]], float)]
    def one(*segments):
        return [{"segments": np.array([s for s, _ in segments], float), "scores": np.array([p for _, p in segments]), "labels": np.zeros(len(segments), int)}]

    assert localization_map(truth, one(([0, 4], 0.9), ([4, 8], 0.8)), 1)[0.5][0] == 1.0  # the false positive ranks below
    assert localization_map(truth, one(([4, 8], 0.9), ([0, 4], 0.8)), 1)[0.5][0] == 0.5  # above: precision 1/2 at recall 1
    found = localization_map(truth, one(([0, 3], 0.9),), 1)  # tIoU 0.75: a hit at 0.50 .. 0.75, a miss above
    assert [found[t][0] for t in sorted(found)] == [1.0] * 6 + [0.0] * 4
    duplicate = localization_map(truth, one(([0, 4], 0.9), ([0, 4], 0.8)), 1)  # one truth matches once
    assert duplicate[0.5][0] == 1.0 and duplicate[0.5][1] == [1.0]
    two_classes = localization_map([np.array([[0, 0, 4], [1, 2, 6]], float)],
                                   [{"segments": np.array([[0, 4], [0, 4]], float), "scores": np.array([0.9, 0.8]), "labels": np.array([0, 1])}], 3)
    mean, per_class = two_classes[0.5]  # class 1's segment overlaps by 2/6; class 2 has no truth and is left out
    assert per_class[:2] == [1.0, 0.0] and np.isnan(per_class[2]) and mean == 0.5


def test_the_focal_loss_is_mmdetections_and_the_boundary_loss_is_one_minus_giou():
    from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss

    from mtlspec.tasks.temporal_localization import focal_loss, frame_targets, generalized_tiou_loss

    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    labels = torch.zeros(6, 3)
    labels[torch.arange(6), torch.tensor([0, 2, 1, 0, 1, 2])] = 1
    reference = py_sigmoid_focal_loss(logits, labels, gamma=2.0, alpha=0.25, reduction="none")
    assert torch.allclose(focal_loss(logits, labels), reference, atol=1e-6)
    loss = generalized_tiou_loss(torch.tensor([[0.0, 4.0], [0.0, 2.0], [0.0, 1.0]]), torch.tensor([[0.0, 4.0], [1.0, 3.0], [2.0, 3.0]]))
    assert torch.allclose(loss, torch.tensor([0.0, 1 - 1 / 3, 1 - 0 + 1 / 3]))  # equal; overlap 1 of 3; apart by 1 in a hull of 3
    cls, inside, bounds = frame_targets(torch.tensor([[1.0, 2.0, 6.0], [0.0, 4.0, 5.0]]), frames=8, classes=2)
    assert inside.tolist() == [False, False, True, True, True, True, False, False]
    assert cls[:, 1].tolist() == [0, 0, 1, 1, 1, 1, 0, 0] and cls[:, 0].tolist() == [0, 0, 0, 0, 1, 0, 0, 0]
    assert bounds[4].tolist() == [4.0, 5.0] and bounds[3].tolist() == [2.0, 6.0]  # the shortest event where two overlap


def test_segments_are_decoded_at_every_frame_and_suppressed_per_class():
    from mtlspec.language.tasks import TemporalLocalization as Section
    from mtlspec.tasks.temporal_localization import TemporalLocalization

    task = TemporalLocalization("loc", 2, Section(type="temporal_localization", dataset="clips", nms_tiou=0.5, max_segments=3))
    scores = np.zeros((4, 2))
    scores[:, 0] = [0.9, 0.8, 0.1, 0.7]
    distances = np.full((4, 2), 0.5)
    distances[1] = [1.5, 0.5]  # frame 1 reaches back to 0: [0, 2) overlaps frame 0's [0, 1) by 1/2, not more
    out = task.segments(scores, distances)
    assert out["labels"].tolist() == [0, 0, 0] and out["scores"].tolist() == pytest.approx([0.9, 0.8, 0.7])
    assert out["segments"].tolist() == [[0.0, 1.0], [0.0, 2.0], [3.0, 4.0]]


# --- validate --------------------------------------------------------------------------------

def _spec(tasks: str = "", data: str = "", model: str = "  temporal: {type: tsm}\n", datasets: str = "") -> str:
    return ("name: v\ndata:\n  datasets:\n    clips: {type: moving_digits, frames: 6, splits: {train: 8, val: 4, test: 4}}\n" + datasets + data
            + "tasks:\n  dir: {type: clip_classification, dataset: clips, label: direction}\n" + tasks
            + "model:\n  backbone: {type: SmallCNN, channels: [8, 16]}\n" + model)


@pytest.mark.parametrize("text, code, path, words", [
    (_spec(model=""), "incompatible", "tasks.dir.type", "model.temporal"),
    (_spec(data="  clip: {length: 4, stride: 2}\n"), "incompatible", "data.clip.length", "spans 7 frames"),
    (_spec(data="  hflip: 0.5\n"), "incompatible", "data.hflip", "directions"),
    (_spec(tasks="  boxes: {type: detection, dataset: clips, head: {type: FCOSHead}}\n"), "label-not-provided", "tasks.boxes.type", "frame_detection"),
    (_spec(tasks="  big: {type: classification, dataset: digits, label: largest_digit}\n", datasets="    digits: {type: multidigits}\n"),
     "incompatible", "data.datasets.digits", "one model reads one or the other"),
    (_spec(tasks="  act: {type: clip_classification, dataset: clips, label: motion}\n"), "label-not-provided", "tasks.act.label", "direction"),
])
def test_validate_names_what_does_not_fit_clips_at_its_line(write, text, code, path, words):
    (result,) = validate_file(write("v.yaml", text))
    found = [(e.code, e.path) for e in result.errors]
    assert (code, path) in found, [e.format() for e in result.errors]
    error = result.errors[found.index((code, path))]
    assert words in error.message and error.line > 0


def test_validate_refuses_a_temporal_model_without_clips(write):
    text = ("name: v\ndata:\n  datasets:\n    digits: {type: multidigits}\ntasks:\n  big: {type: classification, dataset: digits, label: largest_digit}\n"
            "model:\n  temporal: {type: pool}\n")
    (result,) = validate_file(write("v.yaml", text))
    assert [(e.code, e.path) for e in result.errors] == [("incompatible", "model.temporal")]


# --- a run -----------------------------------------------------------------------------------

VIDEO = """name: video
data:
  datasets:
    clips: {type: moving_digits, canvas: 32, frames: 6, objects: {max: 2}, splits: {train: 16, val: 4, test: 8}}
  clip: {length: 4, stride: 1}
  batch_size: 4
  image_size: 32
tasks:
  dir: {type: clip_classification, dataset: clips, label: direction}
  loc: {type: temporal_localization, dataset: clips, hidden: 16}
  boxes: {type: frame_detection, dataset: clips, head: {type: FCOSHead, stacked_convs: 1, feat_channels: 8, norm_cfg: {type: GN, num_groups: 4}}}
  seg: {type: frame_segmentation, dataset: clips}
model: {backbone: {type: SmallCNN, channels: [8, 16]}, neck: {type: FPN, out_channels: 8}, temporal: {type: TEMPORAL}}
training: {epochs: 1, device: cpu, threads: 1}
report: {formats: [json], plots: false}
"""


@pytest.mark.parametrize("temporal", ["tsm", "r2plus1d"])
def test_a_run_of_the_video_tasks_scores_each_and_refuses_image_inference(tmp_path, write, cli, temporal):
    (result,) = validate_file(write("v.yaml", VIDEO.replace("TEMPORAL", temporal)))
    assert result.ok(), [e.format() for e in result.errors]
    outcome = run_result(result, tmp_path / "runs")
    report = json.loads((outcome.run_dir / "report.json").read_text())
    tasks = report["tasks"]
    assert set(tasks["dir"]["metrics"]) == {"accuracy", "macro_f1"} and set(tasks["loc"]["metrics"]) == {"map", "map50", "map75"}
    assert set(tasks["boxes"]["metrics"]) == {"map", "map50", "map75"} and set(tasks["seg"]["metrics"]) == {"miou", "pixel_accuracy"}
    assert all(0 <= v <= 1 for t in tasks.values() for v in t["metrics"].values())
    assert tasks["boxes"]["baseline"]["map"] == 0.0 and 0 <= tasks["loc"]["baseline"]["map"] < 1
    from mtlspec.inference.model_file import load_run

    loaded = load_run(outcome.run_dir)
    assert loaded.model.frames == 4 and loaded.task_types["boxes"].frames == 4 and loaded.task_types["loc"].frames == 4
    with torch.no_grad():
        outputs = loaded.model(torch.zeros(2, 4, 3, 32, 32))
    assert outputs["loc"]["logits"].shape == (2, 4, 10) and outputs["dir"].shape == (2, 4)
    assert len(loaded.task_types["boxes"].predict(outputs["boxes"], 32)) == 8  # a prediction per frame
    refused = cli("predict", str(outcome.run_dir), "test", "--out", str(tmp_path / "p"))
    assert refused.exit_code == 2 and "reads clips" in refused.output


def test_an_ensemble_of_seeds_combines_clip_classes_and_fuses_each_frames_boxes(tmp_path, write):
    from tests.conftest import ensemble_of

    text = VIDEO.replace("TEMPORAL", "tsm").replace("  loc: {type: temporal_localization, dataset: clips, hidden: 16}\n", "").replace(
        "  seg: {type: frame_segmentation, dataset: clips}\n", "")
    text += "ensemble:\n  members: {type: seeds, seeds: [0, 1]}\n  strategy: {type: mean}\n  per_task:\n    boxes: {type: box_fusion, method: wbf}\n"
    (result,) = validate_file(write("e.yaml", text))
    assert result.ok(), [e.format() for e in result.errors]
    _, report = ensemble_of(result, tmp_path / "runs")
    assert len(report["members"]) == 2
    assert report["tasks"]["dir"]["strategy"] == "mean" and report["tasks"]["boxes"]["strategy"] == "box_fusion"
    assert set(report["tasks"]["dir"]["metrics"]) == {"accuracy", "macro_f1"} and len(report["tasks"]["boxes"]["members"]) == 2
    assert all(0 <= v <= 1 for task in report["tasks"].values() for v in task["metrics"].values())


def test_validate_refuses_an_ensemble_of_a_localization_task(write):
    text = VIDEO.replace("TEMPORAL", "tsm") + "ensemble:\n  members: {type: seeds, seeds: [0, 1]}\n  strategy: {type: mean}\n"
    (result,) = validate_file(write("e.yaml", text))
    assert any(e.path.startswith("ensemble") and "loc" in e.message for e in result.errors), [e.format() for e in result.errors]


# --- every topology and weighting method on clips ---------------------------------------------

CLIP_SHARING = {
    "separate": "{type: separate}", "hps": "{type: hps, branch_at: 1}", "cross_stitch": "{type: cross_stitch}",
    "mtan": "{type: mtan}", "mmoe": "{type: mmoe, num_experts: 2}", "cgc": "{type: cgc, num_shared_experts: 1, num_task_experts: 1}",
    "ple": "{type: ple, num_levels: 2, num_shared_experts: 1, num_task_experts: 1}", "soft": "{type: soft}",
}


def _clip_step(write, sharing: str, weighting: str, temporal: str = "tsm") -> None:
    """One training step of a clip task and a per-frame detection task: the losses are finite and
    every parameter of each task's path that the step reaches moves."""
    import contextlib

    from mtlspec.data.dataset import collate
    from mtlspec.train.loop import seeded_build, train_step

    text = VIDEO.replace("TEMPORAL", temporal).replace("  loc: {type: temporal_localization, dataset: clips, hidden: 16}\n", "").replace(
        "  seg: {type: frame_segmentation, dataset: clips}\n", "").replace(
        "neck: {type: FPN, out_channels: 8},", f"neck: {{type: FPN, out_channels: 8}}, sharing: {sharing},") + f"weighting: {{type: {weighting}}}\n"
    path = write("s.yaml", text)
    (result,) = validate_file(path)
    assert result.ok(), [e.format() for e in result.errors]
    built = seeded_build(result.spec, path.parent)
    data = built.dataset("train")
    batch = collate([data[i] for i in range(4)], built.task_types)
    before = {n: p.detach().clone() for n, p in built.model.named_parameters()}
    optimizer = torch.optim.SGD([*built.model.parameters(), *built.weighting.parameters()], lr=0.1)
    losses, _ = train_step(built.model, built.task_types, built.weighting, optimizer, batch, contextlib.nullcontext)
    assert all(torch.isfinite(v).all() for v in losses.values())
    moved = [n for n, p in built.model.named_parameters() if not torch.equal(p, before[n])]
    assert any("dir" in n for n in moved) and any("boxes" in n for n in moved), moved[:10]
    assert len(moved) > len(before) // 2, (len(moved), len(before))


@pytest.mark.parametrize("sharing", sorted(CLIP_SHARING))
def test_every_sharing_topology_trains_on_clips(write, sharing):
    _clip_step(write, CLIP_SHARING[sharing], "ew")


@pytest.mark.parametrize("weighting", ["uw", "dwa", "pcgrad", "cagrad", "upgrad", "famo"])
def test_loss_and_gradient_weightings_train_on_clips(write, weighting):
    _clip_step(write, CLIP_SHARING["hps"], weighting, temporal="r2plus1d")
