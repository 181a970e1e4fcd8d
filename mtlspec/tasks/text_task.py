"""What task types that read text share: the text as an input, the tokenizer, and their targets
read from a sample's text without decoding its image.

A text task names the dataset's text fields it reads (`input_field`: the caption a retrieval task
embeds, the question a VQA task answers). The tokenizer is one for the whole model, fitted on the
training split's text of every text task (text/attach.py) and kept in model.pt (`saved`), so
prediction and resuming tokenize as training did. The model's text tower (model/text_tower.py)
turns each sample's tokens into TextFeatures; the head receives them beside the image features.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np

from mtlspec.tasks.base import TaskType
from mtlspec.text.tokenizer import WordTokenizer


class TextTask(TaskType):
    reads = "text"
    reads_text = True
    tokenizer: WordTokenizer | None = None
    max_length = 32  # tokens per text: the model's text.max_length (text/attach.py sets both)

    @property
    def image_level(self) -> bool:
        return True  # its targets are in the sample's text, read without the image

    @property
    @abstractmethod
    def input_field(self) -> str:
        """The text field the model reads for this task."""

    @staticmethod
    def text_of(record: dict[str, Any], field: str | None) -> str | None:
        return None if field is None else record.get("text", {}).get(field)

    def text_input(self, record: dict[str, Any]) -> np.ndarray:
        """(max_length,) int64 token ids of the sample's input text; all padding where it has none."""
        text = self.text_of(record, self.input_field)
        if text is None or self.tokenizer is None:  # an empty text, <bos> <eos>: never all padding, which attention cannot normalise
            out = np.zeros(self.max_length, np.int64)
            out[:2] = (2, 3)
            return out
        return self.tokenizer.encode(text, self.max_length)

    def texts(self, source: Any) -> list[str]:
        """Every input text of a training source, for fitting the tokenizer."""
        out = []
        for index in range(len(source)):
            text = source.text(index).get(self.input_field) if hasattr(source, "text") else None
            if text is not None:
                out.append(text)
        return out

    def saved(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer.saved() if self.tokenizer is not None else None, "max_length": self.max_length}

    def restore_text(self, saved: dict[str, Any]) -> "TextTask":
        if saved.get("tokenizer") is not None:
            self.tokenizer = WordTokenizer.restore(saved["tokenizer"])
        self.max_length = int(saved.get("max_length", self.max_length))
        return self
