"""Zero-shot from class descriptions in words (`method: text`): the descriptions file and its
errors, the shipped digit descriptions against their table, the head's class embedding and scores
by hand, the loss over the seen classes only, validate's rules, and a run end to end (alone and
sharing the text tower with a retrieval task), predicting from model.pt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from mtlspec.data.formats.class_attributes import TableProblem, read_class_attributes, BUILTIN
from mtlspec.data.formats.class_descriptions import ClassDescriptions, read_class_descriptions
from mtlspec.language import validate_file
from tests.conftest import run_result, tiny_spec


def _spec(extra: str = "", descriptions: str = "multidigits", tasks: str = "", rest: str = "") -> str:
    zs = f"zs: {{type: zero_shot, dataset: digits, label: largest_digit, method: text, descriptions: {descriptions}, unseen: [3, 7]{extra}}}\n"
    text = tiny_spec("zst", zs + tasks, "training: {epochs: 2, device: cpu, threads: 1}\nreport: {formats: [json], plots: false}\n" + rest)
    return text.replace("objects: {max: 2}", "objects: {min: 1, max: 1}")


# --- the descriptions ------------------------------------------------------------------------

def test_a_descriptions_file_keeps_every_description_of_a_class_in_order(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"class": "cat", "text": "small and furry"}\n\n{"class": 3, "text": "three"}\n{"class": "cat", "text": "it purrs"}\n')
    found = read_class_descriptions(path)
    assert found.classes == ("cat", "3") and found.texts == (("small and furry", "it purrs"), ("three",))
    assert ClassDescriptions.from_json(json.loads(json.dumps(found.to_json()))) == found
    with pytest.raises(TableProblem, match="'dog'"):
        found.for_classes(["cat", "dog"])


@pytest.mark.parametrize("text, line, words", [
    ('{"class": "a", "text": "x"}\n{"class": "b", "text": "y"\n', 2, "not JSON"),
    ('{"class": "a", "text": "x"}\n["b", "y"]\n', 2, "object with a `class`"),
    ('{"class": "a", "text": "x"}\n{"class": "b", "text": "  "}\n', 2, "no `text`"),
    ('{"class": "a", "text": "x"}\n{"class": "a", "text": "y"}\n', 2, "fewer than two classes"),
])
def test_a_bad_descriptions_file_names_its_line(tmp_path, text, line, words):
    path = tmp_path / "d.jsonl"
    path.write_text(text)
    with pytest.raises(TableProblem, match=words) as caught:
        read_class_descriptions(path)
    assert caught.value.line == line


def test_the_digit_descriptions_say_what_the_measured_table_says():
    from mtlspec.data.digit_descriptions import MARKED, PHRASES, digit_descriptions

    described = ClassDescriptions(*digit_descriptions())
    table = read_class_attributes(BUILTIN["multidigits"])
    assert described.classes == table.classes and len({t for (t,) in described.texts}) == 10
    columns = list(zip(*table.values))
    for k, (text,) in enumerate(described.texts):
        assert text.startswith("a handwritten digit ")
        phrases = set(text[len("a handwritten digit "):].split(", "))
        for j, name in enumerate(table.attributes):
            mean = sum(columns[j]) / 10
            spread = (sum((v - mean) ** 2 for v in columns[j]) / 10) ** 0.5
            z = (table.values[k][j] - mean) / spread
            low, high = PHRASES[name]
            assert (high in phrases) == (z >= MARKED) and (low in phrases) == (z <= -MARKED), (k, name, z)
    assert "made of closed loops" in described.texts[8][0] and "narrow" in described.texts[1][0]


# --- the head and the loss -------------------------------------------------------------------

class _FakeTower(torch.nn.Module):
    """A text tower whose vector is a fixed row per description (its first token id picks it)."""

    def __init__(self, rows):
        super().__init__()
        self.rows = torch.nn.Parameter(torch.tensor(rows, dtype=torch.float32))

    def forward(self, ids):
        from mtlspec.model.text_tower import TextFeatures

        return TextFeatures(None, ids != 0, self.rows[ids[:, 0] - 4])


def test_a_class_embedding_is_the_centred_mean_of_its_descriptions_and_scores_are_scaled_cosines():
    from mtlspec.tasks.zero_shot_text_head import TextMatchHead

    ids = torch.tensor([[4, 0], [5, 0], [6, 0], [7, 0]])  # descriptions 0, 1 of class 0; 2 of class 1; 3 of class 2
    owner = torch.tensor([0, 0, 1, 2])
    seen = torch.tensor([True, True, False])
    rows = [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -2.0]]
    for centre in (False, True):
        head = TextMatchHead(3, 4, 2, 2, ids, owner, seen, temperature=0.5, centre=centre)
        with torch.no_grad():
            head.text.weight.copy_(torch.eye(2))
            head.text.bias.zero_()
        tower = _FakeTower(rows)
        classes = F.normalize(torch.tensor([[0.5 ** 0.5, 0.5 ** 0.5], [-1.0, 0.0], [0.0, -1.0]]), dim=1)  # mean of unit rows
        if centre:  # minus the seen classes' mean (classes 0 and 1)
            classes = F.normalize(classes - classes[:2].mean(dim=0), dim=1)
        assert torch.allclose(head.class_embeddings(tower), classes, atol=1e-6)
        features = {"vector": torch.randn(5, 3)}
        logits, penalty = head(features, tower)
        image = F.normalize(head.image(features["vector"]), dim=1)
        assert torch.allclose(logits, 2.0 * image @ classes.t(), atol=1e-5) and float(penalty) == 0.0


def test_word_dropout_drops_only_words_and_keeps_the_text_one_run():
    from mtlspec.tasks.zero_shot_text_head import drop_words

    ids = torch.tensor([[2, 10, 11, 12, 13, 3, 0, 0]] * 200)
    torch.manual_seed(0)
    dropped = drop_words(ids, 0.5)
    for row in dropped.tolist():
        kept = [t for t in row if t]
        assert kept[0] == 2 and kept[-1] == 3 and row[: len(kept)] == kept  # <bos> ... <eos>, then padding
        assert [t for t in kept[1:-1]] == sorted(kept[1:-1])  # the words left keep their order
    share = float((dropped > 3).sum()) / (200 * 4)
    assert 0.4 < share < 0.6  # 800 Bernoulli(0.5) draws: 5 standard deviations is 0.09


def test_the_loss_is_cross_entropy_over_the_seen_classes_and_unseen_samples_train_nothing(write):
    from mtlspec.build import build_task_types
    from mtlspec.data.build import build_sources

    (result,) = validate_file(write("spec.yaml", _spec()))
    assert result.ok(), [e.format() for e in result.errors]
    spec = result.spec
    task = build_task_types(spec, build_sources(spec, "train", Path(".")))["zs"]
    logits = torch.randn(4, 10, requires_grad=True)
    target = torch.tensor([1, 3, 9, 7])  # 3 and 7 are unseen
    has, weight = torch.ones(4, dtype=torch.bool), torch.ones(4)
    loss = task.loss((logits, torch.zeros(())), target, has, weight)
    seen = [d for d in range(10) if d not in (3, 7)]
    expected = F.cross_entropy(logits[[0, 2]][:, seen], torch.tensor([seen.index(1), seen.index(9)]))
    assert torch.allclose(loss, expected)
    loss.backward()
    assert logits.grad[[1, 3]].abs().sum() == 0 and logits.grad[:, [3, 7]].abs().sum() == 0


# --- validate --------------------------------------------------------------------------------

def test_validate_asks_each_method_for_the_table_it_reads(write):
    (result,) = validate_file(write("a.yaml", _spec().replace(", descriptions: multidigits", "")))
    assert [(e.code, e.path) for e in result.errors] == [("missing-key", "tasks.zs")] and "descriptions" in result.errors[0].message
    (result,) = validate_file(write("b.yaml", _spec().replace("method: text, descriptions: multidigits", "method: ale")))
    assert [(e.code, e.path) for e in result.errors] == [("missing-key", "tasks.zs")] and "attributes" in result.errors[0].message


def test_validate_points_a_bad_descriptions_file_and_an_undescribed_class_at_their_lines(write):
    write("d.jsonl", "".join(f'{{"class": "{d}", "text": "digit {d}"}}\n' for d in range(10)) + "{oops\n")
    (result,) = validate_file(write("a.yaml", _spec(descriptions="d.jsonl")))
    (error,) = result.errors
    assert error.code == "bad-table" and error.path == "tasks.zs.descriptions" and "d.jsonl:11" in error.message
    write("e.jsonl", "".join(f'{{"class": "{d}", "text": "digit {d}"}}\n' for d in range(10) if d != 7))
    (result,) = validate_file(write("b.yaml", _spec(descriptions="e.jsonl")))
    assert {(e.code, e.path) for e in result.errors} == {("undescribed-class", "tasks.zs.unseen.1"), ("undescribed-class", "tasks.zs.descriptions")}


# --- a run -----------------------------------------------------------------------------------

@pytest.mark.parametrize("tower", ["transformer", "bag"])
def test_a_text_zero_shot_run_scores_and_predicts_from_its_model_file_alone(tmp_path, write, tower):
    from mtlspec.inference.model_file import load_run

    (result,) = validate_file(write("spec.yaml", _spec(rest=f"model: {{backbone: {{type: SmallCNN, channels: [8, 16]}}, neck: {{type: FPN, out_channels: 8}}, text: {{type: {tower}, width: 16, layers: 1}}}}\n").replace(
        "model: {backbone: {type: SmallCNN, channels: [8, 16]}, neck: {type: FPN, out_channels: 8}}\n", "", 1)))
    assert result.ok(), [e.format() for e in result.errors]
    outcome = run_result(result, tmp_path / "runs")
    report = json.loads((outcome.run_dir / "report.json").read_text())
    metrics = report["tasks"]["zs"]["metrics"]
    assert set(metrics) == {"zsl_top1", "gzsl_u", "gzsl_s", "gzsl_h", "ausuc"} and all(0 <= v <= 1 for v in metrics.values())
    loaded = load_run(outcome.run_dir)  # descriptions and tokenizer come from model.pt
    task = loaded.task_types["zs"]
    assert task.tokenizer is not None and task.class_texts[8][0].startswith("a handwritten digit")
    assert loaded.model.class_text_tasks == ["zs"] and not loaded.model.text_tasks
    with torch.no_grad():
        probs = task.predict(loaded.model(torch.zeros(2, 3, 32, 32))["zs"], 32)  # no per-image text needed
    assert probs.shape == (2, 10) and torch.allclose(probs.sum(dim=1), torch.ones(2))


def test_a_text_zero_shot_task_shares_the_text_tower_and_vocabulary_with_a_retrieval_task(tmp_path, write):
    from mtlspec.inference.model_file import load_run

    text = _spec(tasks="ret: {type: image_text_retrieval, dataset: digits}\n").replace("objects: {min: 1, max: 1}", "objects: {min: 1, max: 2}")
    text = text.replace("unseen: [3, 7]", "unseen: [3, 7], hold_out_images: true")
    (result,) = validate_file(write("spec.yaml", text))
    assert result.ok(), [e.format() for e in result.errors]
    outcome = run_result(result, tmp_path / "runs")
    loaded = load_run(outcome.run_dir)
    zs, ret = loaded.task_types["zs"], loaded.task_types["ret"]
    assert zs.tokenizer.vocabulary == ret.tokenizer.vocabulary
    assert "handwritten" in zs.tokenizer.vocabulary  # the descriptions' words are in it beside the captions'
    shared = {id(p) for p in loaded.model.shared_parameters()}
    assert all(id(p) in shared for p in loaded.model.text.parameters())
    assert not any(id(p) in shared for p in loaded.model.heads["zs"].parameters())
