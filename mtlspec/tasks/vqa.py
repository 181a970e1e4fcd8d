"""Visual question answering as answer classification (Antol et al., "VQA: Visual Question
Answering", ICCV 2015): the image and the question meet in the model's fusion (model/fusion/:
late, FiLM, cross-attention) and a linear layer picks one of the answers seen in training.

Targets are (answer index, question type index) per sample; an answer never seen in training
(possible in validation) is -1: no loss, and always counted wrong. Metrics: accuracy, and the mean
of the per-question-type accuracies (`type_accuracy`), which a model that learns only the frequent
types cannot inflate; the report lists each type. The trivial baseline is the question-only prior
Antol et al. report: the most common training answer of the question's type (it reads the
question's type, never the image).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mtlspec.data.records import DataError
from mtlspec.model.fusion import build_fusion
from mtlspec.tasks.base import Form, Metric, masked_mean
from mtlspec.tasks.text_task import TextTask

ONE_TYPE = "all"  # the type of every question when the task names no question_type field


class VQAHead(nn.Module):
    def __init__(self, fusion: nn.Module, hidden: int, answers: int):
        super().__init__()
        self.fusion = fusion
        self.classify = nn.Linear(hidden, answers)

    def forward(self, features: dict[str, Any], text: Any) -> torch.Tensor:
        return self.classify(self.fusion(features, text))


class VQA(TextTask):
    name = "vqa"
    form = Form.CLASS_PROBABILITIES

    def __init__(self, task_name: str, num_classes: int, spec: Any, answers: list[str] | None = None,
                 types: list[str] | None = None):
        super().__init__(task_name, num_classes, spec)
        self.answers = list(answers or [])
        self.types = list(types or [ONE_TYPE])
        self.answer_index = {a: i for i, a in enumerate(self.answers)}
        self.type_index = {t: i for i, t in enumerate(self.types)}

    @property
    def input_field(self):
        return self.spec.question

    @classmethod
    def create(cls, task_name, spec, source, data_root):
        answers: Counter = Counter()
        types: set[str] = set()
        for index in range(len(source)):
            text = source.text(index) if hasattr(source, "text") else {}
            if spec.question in text and spec.answer in text:
                answers[cls.normal(text[spec.answer])] += 1
                types.add(text.get(spec.question_type, ONE_TYPE) if spec.question_type else ONE_TYPE)
        if len(answers) < 2:
            raise DataError(f"task '{task_name}': the training split has {len(answers)} distinct answer(s) in field '{spec.answer}'; "
                            f"answer classification needs two or more", getattr(source, "name", spec.dataset))
        ordered = sorted(answers, key=lambda a: (-answers[a], a))  # most frequent first; the same order on every machine
        return cls(task_name, len(ordered), spec, ordered, sorted(types))

    @staticmethod
    def normal(answer: str) -> str:
        """The answer as it is compared: lower case, outer spaces and a final full stop removed."""
        return answer.strip().lower().rstrip(".").strip()

    @classmethod
    def class_names(cls, spec, source):
        return None  # the answers travel in `saved` (they are the training split's, not the dataset's classes)

    def saved(self):
        return {**super().saved(), "answers": self.answers, "question_types": self.types}

    @classmethod
    def restore(cls, task_name, spec, saved):
        return cls(task_name, int(saved["num_classes"]), spec, saved["answers"], saved["question_types"]).restore_text(saved)

    def target(self, record):
        question, answer = self.text_of(record, self.spec.question), self.text_of(record, self.spec.answer)
        if question is None or answer is None:
            return None, False
        kind = self.text_of(record, self.spec.question_type) if self.spec.question_type else ONE_TYPE
        return np.array([self.answer_index.get(self.normal(answer), -1), self.type_index.get(kind, -1)], np.int64), True

    def placeholder(self, image_size):
        return np.zeros(2, np.int64)

    def build_head(self, vector_channels, pyramid_channels, strides, image_size):
        model = self.model_section
        fusion = build_fusion(model.fusion, vector_channels, pyramid_channels, strides, image_size, model.text.width)
        return VQAHead(fusion, model.fusion.hidden, self.num_classes)

    def describe(self):
        return f"vqa ({self.model_section.fusion.type} fusion, {self.num_classes} answers)" if hasattr(self, "model_section") else "vqa"

    def loss(self, output, target, has, weight):
        answer = target[:, 0]
        known = has & (answer >= 0)
        per_sample = F.cross_entropy(output.float(), answer.clamp(min=0), reduction="none")
        return masked_mean(per_sample, known, weight)

    def predict(self, output, image_size):
        return output.float().softmax(dim=1)

    def metric(self):
        return VQAMetric(self.answers, self.types)

    def trivial_prediction(self, train_targets, count, image_size):
        return self.trivial_for_batch(train_targets, torch.full((count, 2), -1, dtype=torch.int64), count, image_size)

    def trivial_for_batch(self, train_targets, batch_targets, count, image_size):
        """Per question type, its most common training answer (the overall one for a type not seen)."""
        by_type, default = self._prior(train_targets)
        probs = torch.zeros((count, self.num_classes))
        for row, kind in enumerate(torch.as_tensor(batch_targets)[:, 1].tolist()):
            probs[row, by_type.get(int(kind), default)] = 1.0
        return probs

    def _prior(self, train_targets: list[Any]) -> tuple[dict[int, int], int]:
        """({question type: its most common answer}, the most common answer), counted once per
        list of training targets rather than for every evaluation batch."""
        cached = getattr(self, "_prior_of", None)
        if cached is not None and cached[0] is train_targets:
            return cached[1]
        overall, counts = Counter(), {}
        for t in train_targets:
            if t[0] >= 0:
                overall[int(t[0])] += 1
                counts.setdefault(int(t[1]), Counter())[int(t[0])] += 1
        found = ({kind: c.most_common(1)[0][0] for kind, c in counts.items()}, overall.most_common(1)[0][0] if overall else 0)
        self._prior_of = (train_targets, found)
        return found


class VQAMetric(Metric):
    def __init__(self, answers: list[str], types: list[str]):
        self.answers, self.types = answers, types
        self.correct: list[torch.Tensor] = []
        self.kinds: list[torch.Tensor] = []

    def update(self, prediction, target, has):
        target = torch.as_tensor(target)[has]
        self.correct.append((prediction[has].argmax(dim=1).cpu() == target[:, 0].cpu()) & (target[:, 0].cpu() >= 0))
        self.kinds.append(target[:, 1].cpu())

    def compute(self):
        correct, kinds = torch.cat(self.correct), torch.cat(self.kinds)
        if len(correct) == 0:
            return {}
        self.per_type = {}
        for index, name in enumerate(self.types):
            chosen = kinds == index
            if chosen.any():
                self.per_type[name] = {"accuracy": float(correct[chosen].float().mean()), "questions": int(chosen.sum())}
        unseen = int((kinds < 0).sum())
        if unseen:
            self.per_type["(a type not seen in training)"] = {"accuracy": float(correct[kinds < 0].float().mean()), "questions": unseen}
        return {"accuracy": float(correct.float().mean()),
                "type_accuracy": sum(v["accuracy"] for v in self.per_type.values()) / len(self.per_type)}

    def details(self):
        per_type = getattr(self, "per_type", None)
        return None if per_type is None else {"per_question_type": per_type}
