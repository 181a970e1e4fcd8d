"""A word-level tokenizer fitted on the training split's own text: nothing to download.

Text is lower-cased (when asked), split into words and punctuation marks (a run of letters or
digits is a word; each other visible character is a token of its own), and each token mapped to
its index in a vocabulary of the training text's tokens, most frequent first (ties by the token,
so the same text gives the same vocabulary on every machine). Words seen fewer than `min_count`
times, and words beyond `max_size`, become `<unk>`. A sequence is `<bos> tokens <eos>`, cut to
`length` and padded with `<pad>` (index 0, which the text tower masks out). Standard library and
numpy only: `validate` and data loading use it without torch.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterable

import numpy as np

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)
_TOKEN = re.compile(r"[^\W_]+|[^\w\s]|_", re.UNICODE)


def words(text: str, lowercase: bool = True) -> list[str]:
    """The tokens of a text: words (runs of letters and digits) and single punctuation marks."""
    return _TOKEN.findall(text.lower() if lowercase else text)


class WordTokenizer:
    """Text <-> index sequences over a vocabulary whose first four entries are the special tokens."""

    def __init__(self, vocabulary: list[str], lowercase: bool = True):
        if list(vocabulary[: len(SPECIALS)]) != list(SPECIALS):
            raise ValueError(f"a vocabulary starts with {', '.join(SPECIALS)}")
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError("a vocabulary lists each token once")
        self.vocabulary, self.lowercase = list(vocabulary), lowercase
        self.index = {token: i for i, token in enumerate(self.vocabulary)}

    @classmethod
    def fit(cls, texts: Iterable[str], min_count: int = 1, max_size: int = 10_000, lowercase: bool = True) -> "WordTokenizer":
        counts = Counter(token for text in texts for token in words(text, lowercase))
        kept = sorted((t for t, n in counts.items() if n >= min_count and t not in SPECIALS), key=lambda t: (-counts[t], t))
        return cls([*SPECIALS, *kept[: max(0, max_size - len(SPECIALS))]], lowercase)

    def __len__(self) -> int:
        return len(self.vocabulary)

    def encode(self, text: str, length: int) -> np.ndarray:
        """(length,) int64: <bos> tokens <eos>, cut to `length` (the <eos> kept) and padded with 0."""
        ids = [self.index[BOS], *(self.index.get(t, self.index[UNK]) for t in words(text, self.lowercase))][: length - 1]
        ids.append(self.index[EOS])
        out = np.zeros(length, np.int64)
        out[: len(ids)] = ids
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """The tokens between <bos> and <eos> (or the padding), joined by spaces."""
        out = []
        for i in ids:
            token = self.vocabulary[int(i)]
            if token == EOS or token == PAD:
                break
            if token != BOS:
                out.append(token)
        return " ".join(out)

    def unknown_share(self, texts: Iterable[str]) -> float:
        """The share of tokens in `texts` the vocabulary does not know (0 when there are none)."""
        total = unknown = 0
        for text in texts:
            for token in words(text, self.lowercase):
                total += 1
                unknown += token not in self.index
        return unknown / total if total else 0.0

    def saved(self) -> dict[str, Any]:
        return {"vocabulary": list(self.vocabulary), "lowercase": self.lowercase}

    @classmethod
    def restore(cls, saved: dict[str, Any]) -> "WordTokenizer":
        return cls(list(saved["vocabulary"]), bool(saved.get("lowercase", True)))
