"""Meta-learning (the spec's `meta` section): episodes of a classification task, the algorithms
that learn an initialisation from them (maml.py: MAML, first-order MAML and ANIL; reptile.py:
Reptile; vectorized.py: the first-order ones over all episodes at once), meta-training as a run (fit.py), few-shot evaluation and `mtlspec adapt` (adapt.py).
Everything runs through torch.func.functional_call on the spec's own compiled model."""

from __future__ import annotations

from typing import Any


def algorithm_for(meta: Any) -> Any:
    """The algorithm object of a `meta` section."""
    from mtlspec.meta.maml import MAML
    from mtlspec.meta.reptile import Reptile

    if getattr(meta, "vectorize", False):  # validate allows it for the first-order algorithms only
        from mtlspec.meta.vectorized import VectorizedFirstOrder

        return VectorizedFirstOrder(meta, meta.algorithm, adapts(meta))
    if meta.algorithm == "reptile":
        return Reptile(meta)
    return MAML(meta, first_order=meta.algorithm == "fomaml", adapt=adapts(meta))


def adapts(meta: Any) -> str | list[str]:
    """What a meta section's inner loop changes (ANIL: the head, whatever `adapt` says)."""
    return "heads" if meta.algorithm == "anil" else meta.adapt
