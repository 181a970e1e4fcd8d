"""Descriptions in words of the ten digits, written from their measured shape table
(data/digit_attributes.csv), for zero-shot tasks with `method: text` on multidigits.

Each attribute has a phrase for a low and for a high value; a digit's description names, most
marked first, the attributes at least `MARKED` standard deviations (over the ten digits) from
their mean. So the words say what the table says, no more: a text tower that learns "closed
loops" and "wide" from the seen digits can read an unseen digit's description, as a person reads
"a horse-like animal with stripes". Deterministic and computed, not downloaded.
"""

from __future__ import annotations

import statistics

from mtlspec.data.formats.class_attributes import BUILTIN, read_class_attributes

MARKED = 0.5  # standard deviations from the digits' mean before an attribute is worth a phrase
PHRASES = {  # attribute -> (low, high)
    "loops": ("made of open strokes", "made of closed loops"),
    "loop_top": ("with an open upper half", "with a loop up high"),
    "loop_bottom": ("with an open lower half", "with a loop down low"),
    "ink_top": ("light above", "heavy above"),
    "ink_left": ("leaning right", "leaning left"),
    "symmetry_lr": ("lopsided sideways", "mirror symmetric"),
    "symmetry_tb": ("unbalanced vertically", "balanced vertically"),
    "aspect": ("narrow", "wide"),
    "ink_centre_columns": ("hollow down the middle column", "inked down the middle column"),
    "ink_top_rows": ("with a thin crown", "with a thick crown"),
    "ink_bottom_rows": ("with a thin base", "with a thick base"),
    "ink_middle_rows": ("with a thin waist", "with a thick waist"),
}


def digit_descriptions() -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """(the digits' class names, each one's descriptions: one here)."""
    table = read_class_attributes(BUILTIN["multidigits"])
    columns = list(zip(*table.values))
    stats = [(statistics.fmean(c), statistics.pstdev(c) or 1.0) for c in columns]
    texts = []
    for row in table.values:
        marked = sorted(((abs(z), name, z) for name, value, (mean, spread) in zip(table.attributes, row, stats)
                         for z in [(value - mean) / spread] if abs(z) >= MARKED), reverse=True)
        phrases = [PHRASES[name][z > 0] for _, name, z in marked]
        texts.append((f"a handwritten digit {', '.join(phrases)}",))
    return table.classes, tuple(texts)
