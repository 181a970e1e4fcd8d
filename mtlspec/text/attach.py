"""One tokenizer for a model's text tasks, fitted on their training text (model.text settings).

Every task that reads text shares the model's text tower, so they share its vocabulary: the
tokens of every text task's input field over its dataset's training split, words seen fewer than
`min_count` times cut, at most `vocabulary_size` entries. Called once the task types exist
(build.build_task_types); a restored run gets its tokenizer back from model.pt instead.
"""

from __future__ import annotations

from typing import Any

from mtlspec.data.records import DataError
from mtlspec.text.tokenizer import WordTokenizer


def text_tasks(task_types: dict[str, Any]) -> list[str]:
    """The tasks whose text goes through the model's text tower: each sample's, or each class's description."""
    return [name for name, tt in task_types.items() if getattr(tt, "reads_text", False) or getattr(tt, "reads_class_text", False)]


def attach_tokenizer(spec: Any, task_types: dict[str, Any], sources: dict[str, Any]) -> WordTokenizer | None:
    names = text_tasks(task_types)
    if not names:
        return None
    settings = spec.model.text
    texts: list[str] = []
    for name in names:
        tt = task_types[name]
        found = tt.texts(sources[tt.spec.dataset])
        if not found:
            raise DataError(f"task '{name}': no training sample of dataset '{tt.spec.dataset}' has the text field '{tt.input_field}'",
                            getattr(sources[tt.spec.dataset], "name", tt.spec.dataset))
        texts.extend(found)
    tokenizer = WordTokenizer.fit(texts, settings.min_count, settings.vocabulary_size, settings.lowercase)
    for name in names:
        task_types[name].tokenizer, task_types[name].max_length = tokenizer, settings.max_length
    return tokenizer
