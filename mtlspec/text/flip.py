"""What a horizontal flip does to a text about its image: `left` and `right` trade places.

The flip augmentation (data.transforms.hflip) mirrors the image; a caption or question that says
where something is stays true only if its sides are mirrored too (the practice of referring-
expression training, e.g. MDETR and ALBEF's RefCOCO+ fine-tuning). Only the whole words `left` and
`right` change (`leftmost` too, and its `rightmost`); a text that names sides otherwise should not
be trained with data.hflip.
"""

from __future__ import annotations

import re

_SIDES = re.compile(r"\b(left|right)(most)?\b", re.IGNORECASE)
_OTHER = {"left": "right", "right": "left"}


def swap_sides(text: str) -> str:
    def other(match: re.Match) -> str:
        word = match.group(1)
        swapped = _OTHER[word.lower()]
        if word[0].isupper():
            swapped = swapped.capitalize()
        if word.isupper():
            swapped = swapped.upper()
        return swapped + (match.group(2) or "")

    return _SIDES.sub(other, text)
