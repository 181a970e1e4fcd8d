"""Image + text (issue 17): the tokenizer, text that stays with its image, retrieval's recall and
InfoNCE against hand computations, VQA's per-type accuracy and question-only baseline, the text
file format, validate's diagnostics, and runs with each fusion."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mtlspec.data.formats.text_file import read_text_file
from mtlspec.data.records import DataError
from mtlspec.language import validate_file
from mtlspec.tasks.image_text_retrieval import info_nce, recalls, same_text
from mtlspec.tasks.vqa import VQAMetric
from mtlspec.text.flip import swap_sides
from mtlspec.text.tokenizer import WordTokenizer
from tests.conftest import dataset_of, run_result, tiny_spec


# --- text --------------------------------------------------------------------------------------

def test_tokenizer_round_trips_and_is_the_same_whatever_the_order_of_the_text():
    texts = ["a big 3 and a 7", "Is there a 5?", "a 3 on the left"]
    tok = WordTokenizer.fit(texts)
    assert WordTokenizer.fit(list(reversed(texts))).vocabulary == tok.vocabulary
    ids = tok.encode("Is there a 5?", 12)
    assert ids[0] == 2 and tok.decode(ids) == "is there a 5 ?" and (ids[ids.tolist().index(3) + 1:] == 0).all()
    assert tok.decode(tok.encode("a 9 on the right", 12)) == "a <unk> on the <unk>"
    assert tok.unknown_share(["a 9"]) == 0.5
    cut = tok.encode("a big 3 and a 7 and a 7", 5)
    assert cut.tolist()[-1] == 3 and len(cut) == 5  # cut to the length, <eos> kept
    again = WordTokenizer.restore(json.loads(json.dumps(tok.saved())))
    assert again.vocabulary == tok.vocabulary and (again.encode(texts[0], 10) == tok.encode(texts[0], 10)).all()
    assert WordTokenizer.fit(["a a a b"], min_count=2).vocabulary[4:] == ["a"]


def test_a_flip_swaps_left_and_right_and_nothing_else():
    assert swap_sides("a 3 on the Left, from left to right; the leftmost") == "a 3 on the right, from right to left; the rightmost".replace("the right,", "the Right,")
    assert swap_sides("bright lefty") == "bright lefty"


def test_multidigits_text_agrees_with_its_labels():
    from mtlspec.data.multidigits_text import caption

    spec = _spec()
    data = dataset_of(spec, "train")
    source = data.sources["digits"]
    for index in range(len(source)):
        record = source.record(index)
        digits, boxes, text = record["labels"]["digits"] if "digits" in record["labels"] else None, record["boxes"], record["text"]
        order = np.argsort((boxes[:, 0] + boxes[:, 2]) / 2, kind="stable")
        labels = np.asarray(record["box_labels"])
        assert text["caption"] == caption(labels, boxes, 32)
        assert [int(w) for w in text["caption"].replace(",", " ").split() if w.isdigit()] == [int(labels[i]) for i in order]
        kind, answer = text["question_type"], text["answer"]
        if kind == "count":
            assert answer == str(len(labels))
        elif kind == "largest":
            assert answer == str(int(labels.max()))
        elif kind == "order":
            assert answer == str(int(labels[order[0]]))
        else:
            asked = int(text["question"].split()[-1].rstrip("?"))
            assert answer == ("yes" if asked in labels.tolist() else "no")


def test_the_text_stays_with_its_image_through_flips_and_bootstrap_sampling():
    spec = _spec(data_extra="  hflip: 1.0\n")
    data = dataset_of(spec, "train", train=True)
    tok = data.task_types["retrieval"].tokenizer
    for i in range(len(data)):
        sample = data[i]
        _, local = data.locate(i)
        caption = data.sources["digits"].text(local)["caption"]
        flipped = swap_sides(caption).lower().replace(",", " ,").replace(":", " :")
        assert tok.decode(sample["text"]["retrieval"]) == flipped
        assert (sample["targets"]["retrieval"] == sample["text"]["retrieval"]).all()
    bagged = dataset_of(_spec(rest="ensemble: {strategy: {type: bagging, n_members: 2}}\n"), "train", train=True)
    source = bagged.sources["digits"]
    for i in range(len(bagged)):
        assert tok.decode(bagged[i]["text"]["vqa"]) == tok.decode(tok.encode(source.text(i)["question"], 24))


# --- retrieval ----------------------------------------------------------------------------------

def test_recall_at_k_on_a_hand_built_similarity_matrix():
    sim = torch.tensor([[0.9, 0.1, 0.0, 0.2],
                        [0.8, 0.3, 0.25, 0.1],  # its own text (1) is second
                        [0.0, 0.1, 0.2, 0.5],  # its own (2) third, but text 3 shares its group
                        [0.3, 0.2, 0.1, 0.0]])  # its own (3) last
    groups = torch.tensor([0, 1, 2, 2])
    assert recalls(sim, groups, (1, 2, 3)) == {1: 0.5, 2: 0.75, 3: 1.0}  # hits at ranks 1, 2, 1 (text 3), 3
    assert recalls(sim.t(), groups, (1, 2)) == {1: 0.75, 2: 1.0}  # text 2's own image is second (after image 1)


def test_info_nce_against_a_hand_computation_with_shared_captions_and_an_unlabelled_sample():
    g = torch.Generator().manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(4, 3, generator=g), dim=1)
    text = torch.nn.functional.normalize(torch.randn(4, 3, generator=g), dim=1)
    tokens = torch.tensor([[2, 5, 3], [2, 6, 3], [2, 5, 3], [2, 7, 3]])
    has = torch.tensor([True, True, True, False])
    scale = torch.tensor(10.0)
    got = info_nce(image, text, scale, same_text(tokens), has)
    labelled = [0, 1, 2]
    positives = {0: [0, 2], 1: [1], 2: [0, 2]}
    expected = []
    for i in labelled:
        i2t = [math.exp(scale * float(image[i] @ text[j])) for j in labelled]
        t2i = [math.exp(scale * float(image[j] @ text[i])) for j in labelled]
        a = -sum(math.log(i2t[labelled.index(j)] / sum(i2t)) for j in positives[i]) / len(positives[i])
        b = -sum(math.log(t2i[labelled.index(j)] / sum(t2i)) for j in positives[i]) / len(positives[i])
        expected.append((a + b) / 2)
    assert torch.allclose(got[:3], torch.tensor(expected), atol=1e-5) and got[3] == 0


# --- vqa ----------------------------------------------------------------------------------------

def test_vqa_accuracy_per_question_type_and_an_answer_never_seen_in_training():
    metric = VQAMetric(["yes", "no", "2"], ["count", "exists"])
    probs = torch.eye(3)[[0, 1, 2, 2, 0]]
    target = torch.tensor([[0, 1], [0, 1], [2, 0], [-1, 0], [0, 1]])
    metric.update(probs, target, torch.tensor([True, True, True, True, False]))
    scores = metric.compute()
    assert scores == {"accuracy": 0.5, "type_accuracy": 0.5}  # exists 1/2, count 1/2 (the unseen answer is wrong)
    assert metric.details()["per_question_type"] == {"count": {"accuracy": 0.5, "questions": 2}, "exists": {"accuracy": 0.5, "questions": 2}}


def test_vqa_trivial_baseline_is_each_question_types_most_common_training_answer():
    from mtlspec.tasks.vqa import VQA

    spec = _spec()
    tt = dataset_of(spec, "train").task_types["vqa"]
    assert isinstance(tt, VQA)
    train = [np.array([0, 0]), np.array([1, 0]), np.array([1, 0]), np.array([2, 1])]
    probs = tt.trivial_for_batch(train, torch.tensor([[0, 1], [0, 0], [0, 5]]), 3, 32)
    assert probs.argmax(1).tolist() == [2, 1, 1]  # type 1 -> 2, type 0 -> 1, an unknown type -> the overall majority (1)


# --- files and validate -------------------------------------------------------------------------

def test_a_text_file_names_the_bad_line(tmp_path):
    path = tmp_path / "text.jsonl"
    path.write_text('{"image": "a.png", "caption": "x"}\n{"image": "b.png", "caption": 3}\n')
    with pytest.raises(DataError, match="line 2: field 'caption' is not a string"):
        read_text_file(path)
    path.write_text('{"image": "a.png"}\nnot json\n')
    with pytest.raises(DataError, match="line 2 is not JSON"):
        read_text_file(path)


def test_validate_points_text_tasks_at_their_lines(write):
    tasks = ("pics_vqa: {type: vqa, dataset: pics}\n"
             "ret: {type: image_text_retrieval, dataset: digits, text: captoin}\n")
    text = tiny_spec("t", tasks, "").replace("    digits: {type: multidigits", "    pics: {type: image_folder, root: pics}\n    digits: {type: multidigits")
    (result,) = validate_file(write("spec.yaml", text))
    lines = text.splitlines()
    at = {key: next(n for n, line in enumerate(lines, 1) if line.strip().startswith(key)) for key in ("pics_vqa:", "ret:")}
    found = sorted((e.path, e.line) for e in result.errors)
    assert found == [("tasks.pics_vqa.type", at["pics_vqa:"]), ("tasks.ret.text", at["ret:"])], [e.format() for e in result.errors]
    assert "did you mean 'caption'" in next(e.message for e in result.errors if e.path == "tasks.ret.text")


def test_an_image_folder_with_a_text_file_trains_a_vqa_task(write, tmp_path):
    from PIL import Image

    lines = []
    for c, colour in enumerate([(255, 0, 0), (0, 0, 255)]):
        for k in range(6):
            name = f"{'red' if c == 0 else 'blue'}/{k}.png"
            (tmp_path / "pics" / name).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16, 16), colour).save(tmp_path / "pics" / name)
            lines.append(json.dumps({"image": name, "question": "what colour is it?", "answer": "red" if c == 0 else "blue"}))
    write("text.jsonl", "\n".join(lines) + "\n")
    text = (tiny_spec("folder", "q: {type: vqa, dataset: pics, question_type: null}\n",
                      "training: {epochs: 1, device: cpu, threads: 1}\nreport: {formats: [json], plots: false}\n")
            .replace("    digits: {type: multidigits, canvas: 32, objects: {max: 2}, splits: {train: 16, val: 8, test: 8}}",
                     "    pics: {type: image_folder, root: pics, text: text.jsonl}"))
    (result,) = validate_file(write("spec.yaml", text))
    assert result.ok(), [e.format() for e in result.errors]
    outcome = run_result(result, tmp_path / "runs")
    report = json.loads((outcome.run_dir / "report.json").read_text())
    assert set(report["tasks"]["q"]["metrics"]) == {"accuracy", "type_accuracy"}


# --- runs ---------------------------------------------------------------------------------------

def _spec(fusion: str = "late", text: str = "transformer", data_extra: str = "", rest: str = ""):
    from mtlspec.language.root import Spec
    import yaml

    raw = yaml.safe_load(_spec_text(fusion, text, rest))
    if data_extra:
        raw["data"].update(yaml.safe_load(data_extra))
    return Spec.model_validate(raw)


def _spec_text(fusion: str = "late", text: str = "transformer", rest: str = "") -> str:
    return tiny_spec("mm", "retrieval: {type: image_text_retrieval, dataset: digits}\nvqa: {type: vqa, dataset: digits}\n"
                           "largest: {type: classification, dataset: digits, label: largest_digit}\n",
                     "training: {epochs: 1, device: cpu, threads: 1}\nreport: {formats: [json], plots: false}\n" + rest).replace(
        "neck: {type: FPN, out_channels: 8}}",
        f"neck: {{type: FPN, out_channels: 8}}, text: {{type: {text}, width: 16, layers: 1, heads: 2, max_length: 24}}, fusion: {{type: {fusion}, hidden: 16, layers: 1}}}}")


@pytest.mark.parametrize("fusion,tower", [("late", "gru"), ("film", "transformer"), ("cross_attention", "transformer")])
def test_a_run_with_each_fusion_scores_retrieval_and_vqa_and_restores_its_tokenizer(tmp_path, write, fusion, tower):
    from mtlspec.errors import UsageError
    from mtlspec.inference.model_file import load_run
    from mtlspec.inference.predict import predict

    (result,) = validate_file(write("spec.yaml", _spec_text(fusion, tower)))
    assert result.ok(), [e.format() for e in result.errors]
    outcome = run_result(result, tmp_path / "runs")
    report = json.loads((outcome.run_dir / "report.json").read_text())
    assert set(report["tasks"]["retrieval"]["metrics"]) == {"i2t_r1", "i2t_r5", "t2i_r1", "t2i_r5", "rsum"}
    assert all(0 <= v <= 1 for k, v in report["tasks"]["retrieval"]["metrics"].items() if k != "rsum")
    assert "per_question_type" in report["tasks"]["vqa"]["details"]
    loaded = load_run(outcome.run_dir)
    tok = loaded.task_types["vqa"].tokenizer
    assert tok.vocabulary == loaded.task_types["retrieval"].tokenizer.vocabulary and "digit" in tok.index
    ids = torch.from_numpy(np.stack([tok.encode("is there a 5?", 24)] * 2))
    with torch.no_grad():
        out = loaded.model(torch.zeros(2, 3, 32, 32), {"retrieval": ids, "vqa": ids})
    assert out["vqa"].shape == (2, loaded.task_types["vqa"].num_classes)
    with pytest.raises(UsageError, match="read a text with each image"):
        predict(outcome.run_dir, ["val"], tmp_path / "pred")


def test_an_ensemble_refuses_retrieval_at_its_line(write):
    text = _spec_text(rest="ensemble: {members: {type: seeds, seeds: [0, 1]}, strategy: {type: mean}}\n")
    (result,) = validate_file(write("spec.yaml", text))
    assert any("retrieval" in e.path or "retrieval" in e.message for e in result.errors), [e.format() for e in result.errors]
