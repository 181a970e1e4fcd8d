"""Zero-shot classification from class descriptions in words (`method: text`): text-embedding
matching, the way CLIP classifies without examples (Radford et al., ICML 2021), here with a text
tower trained with the rest on the seen classes' descriptions (no registry package ships
pretrained image-text weights), as Reed et al. ("Learning Deep Representations of Fine-Grained
Visual Descriptions", CVPR 2016) train theirs.

The head (tasks/zero_shot_text_head.py) scores each class by the cosine of the image's embedding
with its descriptions'; the loss is the cross-entropy over the seen classes; predictions,
calibration and metrics are the attribute methods' (tasks/zero_shot.py). The descriptions, the
tokenizer and the class names travel in model.pt (`saved`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from mtlspec.data.formats.class_attributes import TableProblem
from mtlspec.data.formats.class_descriptions import ClassDescriptions, descriptions_path, load_class_descriptions
from mtlspec.data.records import DataError
from mtlspec.tasks.base import ImageLabelTask, masked_mean
from mtlspec.tasks.zero_shot import ZeroShot
from mtlspec.text.tokenizer import WordTokenizer


class ZeroShotText(ZeroShot):
    reads_class_text = True
    tokenizer: WordTokenizer | None = None
    max_length = 32  # the model's text.max_length (text/attach.py sets both)
    input_field = "descriptions"  # what text/attach.py names when there is no text to fit the tokenizer on

    def __init__(self, task_name: str, num_classes: int, spec: Any, descriptions: ClassDescriptions | None = None,
                 class_names: list[str] | None = None):
        ImageLabelTask.__init__(self, task_name, num_classes, spec)
        if descriptions is None:
            raise ValueError("a text zero-shot task type is built from its class descriptions (ZeroShotText.create or .restore)")
        self.descriptions = descriptions
        self.split_classes(class_names)
        self.class_texts = descriptions.for_classes(self.names)  # in the dataset's class order

    @classmethod
    def create(cls, task_name, spec, source, data_root):
        count = cls.classes(spec, source)
        names = cls.class_names(spec, source) or [str(k) for k in range(count)]
        path = descriptions_path(spec.descriptions, Path(data_root))
        file = str(path) if path is not None else spec.descriptions
        try:
            descriptions = load_class_descriptions(spec.descriptions, Path(data_root))
            descriptions.for_classes(names)
        except TableProblem as exc:
            raise DataError(f"task '{task_name}': class descriptions: {exc}", file, f"line {exc.line}" if exc.line else None) from None
        cls.check_unseen(task_name, spec, names, file)
        return cls(task_name, count, spec, descriptions, names)

    def texts(self, source: Any) -> list[str]:
        """Every class's descriptions, seen and unseen, for fitting the tokenizer: an unseen class's
        words that no seen class uses stay untrained, but are not `<unk>`."""
        return [text for texts in self.class_texts for text in texts]

    def saved(self):
        return {"class_descriptions": self.descriptions.to_json(), "class_names": list(self.names),
                "tokenizer": self.tokenizer.saved() if self.tokenizer is not None else None, "max_length": self.max_length}

    @classmethod
    def restore(cls, task_name, spec, saved):
        out = cls(task_name, int(saved["num_classes"]), spec, ClassDescriptions.from_json(saved["class_descriptions"]), saved["class_names"])
        if saved.get("tokenizer") is not None:
            out.tokenizer = WordTokenizer.restore(saved["tokenizer"])
        out.max_length = int(saved.get("max_length", out.max_length))
        return out

    def description_ids(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids of every description (M, L) and the class of each (M,)."""
        rows, owner = [], []
        for k, texts in enumerate(self.class_texts):
            for text in texts:
                if self.tokenizer is None:  # before a tokenizer is fitted (a shape check): <bos> <eos>
                    ids = np.zeros(self.max_length, np.int64)
                    ids[:2] = (2, 3)
                else:
                    ids = self.tokenizer.encode(text, self.max_length)
                rows.append(ids)
                owner.append(k)
        return torch.from_numpy(np.stack(rows)), torch.tensor(owner, dtype=torch.int64)

    def build_head(self, vector_channels, pyramid_channels, strides, image_size):
        from mtlspec.tasks.zero_shot_text_head import TextMatchHead

        ids, owner = self.description_ids()
        return TextMatchHead(vector_channels, self.spec.hidden, self.model_section.text.width, self.spec.embedding, ids, owner,
                             self.seen, self.spec.temperature, self.spec.word_dropout, self.spec.centre)

    def output_problem(self, output, batch, image_size, strides):
        if not (isinstance(output, (tuple, list)) and len(output) == 2 and torch.is_tensor(output[0])):
            return "the head outputs no (logits, penalty) pair"
        expected = (batch, self.num_classes)
        return None if tuple(output[0].shape) == expected else f"the head's class scores are {tuple(output[0].shape)}, expected {expected}"

    def describe(self):
        seen = int(self.seen.sum())
        count = sum(len(t) for t in self.class_texts)
        return f"zero_shot (text: {count} descriptions, {seen} seen + {self.num_classes - seen} unseen classes)"

    def scores(self, z: torch.Tensor) -> torch.Tensor:
        return z  # the head's scaled cosines already

    def loss(self, output, target, has, weight):
        logits, _ = output
        seen = self.seen.to(target.device)
        labelled = has & seen[target]
        safe = torch.where(labelled, target, torch.zeros_like(target))
        column = torch.where(labelled, self.seen_index.to(target.device)[safe], torch.zeros_like(safe))
        per_sample = F.cross_entropy(logits[:, seen], column, reduction="none")
        return masked_mean(per_sample, labelled, weight)
