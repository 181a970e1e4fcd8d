"""The text of a multidigits canvas: a templated caption, and one question with its answer and type.

Both are functions of the canvas's stored digits and boxes and of (seed, split, index), so they
need nothing beyond the cached arrays and are the same on every machine. The caption names the
digits from left to right with their size ("two digits, from left to right: a big 3 and a 7");
a lone digit is placed ("a small 5 on the left"). The question is one of four types, chosen per
canvas: `count` ("how many digits are there?"), `exists` ("is there a 4?", a digit on the canvas
half of the time), `largest` ("what is the largest digit?") and `order` ("which digit is
furthest to the left?"). Left and right are the only words a horizontal flip changes
(text/flip.py: data.transforms.hflip swaps them), so a flipped canvas keeps a true caption and question.
"""

from __future__ import annotations

import numpy as np

TEXT_VERSION = 1
QUESTION_TYPES = ("count", "exists", "largest", "order")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
BIG, SMALL = 0.34, 0.24  # the longer side of a digit's ink box, as a share of the canvas side


def _size_word(box: np.ndarray, canvas: int) -> str:
    side = max(box[2] - box[0], box[3] - box[1]) / canvas
    return "big " if side >= BIG else "small " if side < SMALL else ""


def caption(digits: np.ndarray, boxes: np.ndarray, canvas: int) -> str:
    order = np.argsort((boxes[:, 0] + boxes[:, 2]) / 2, kind="stable")
    named = [f"a {_size_word(boxes[i], canvas)}{int(digits[i])}" for i in order]
    if len(named) == 1:
        centre = (boxes[0, 0] + boxes[0, 2]) / 2 / canvas
        where = "on the left" if centre < 1 / 3 else "on the right" if centre > 2 / 3 else "in the middle"
        return f"{named[0]} {where}"
    listed = ", ".join(named[:-1]) + " and " + named[-1]
    return f"{NUMBER_WORDS[min(len(named), 10)]} digits, from left to right: {listed}"


def question(digits: np.ndarray, boxes: np.ndarray, rng: np.random.Generator) -> tuple[str, str, str]:
    """(question, answer, question type) for one canvas."""
    kind = QUESTION_TYPES[int(rng.integers(len(QUESTION_TYPES)))]
    if kind == "count":
        return "how many digits are there?", str(len(digits)), kind
    if kind == "exists":
        present = sorted({int(d) for d in digits})
        absent = [d for d in range(10) if d not in present]
        asked = int(rng.choice(present)) if rng.random() < 0.5 or not absent else int(rng.choice(absent))
        return f"is there a {asked}?", "yes" if asked in present else "no", kind
    if kind == "largest":
        return "what is the largest digit?", str(int(digits.max())), kind
    leftmost = int(digits[int(np.argmin((boxes[:, 0] + boxes[:, 2]) / 2))])
    return "which digit is furthest to the left?", str(leftmost), kind


def canvas_text(digits: np.ndarray, boxes: np.ndarray, canvas: int, seed: int, split: int, index: int) -> dict[str, str]:
    q, a, kind = question(digits, boxes, np.random.default_rng([seed, split, index, 4099]))
    return {"caption": caption(digits, boxes, canvas), "question": q, "answer": a, "question_type": kind}

