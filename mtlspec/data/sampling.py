"""Which dataset each training sample comes from: round_robin, proportional, or temperature (p ∝ n^(1/t))."""

from __future__ import annotations

import numpy as np


def dataset_probabilities(sizes: list[int], policy: str, t: float = 2.0) -> np.ndarray:
    n = np.asarray(sizes, np.float64)
    if policy == "proportional":
        p = n
    elif policy == "temperature":  # n^(1/t) in log space: no overflow for small t
        logits = np.log(np.maximum(n, 1.0)) / t
        p = np.exp(logits - logits.max())
    elif policy == "round_robin":
        p = np.ones_like(n)
    else:
        raise ValueError(f"unknown sampling policy {policy!r}")
    return p / p.sum()


def epoch_order(sizes: list[int], policy: str, seed: int, epoch: int, t: float = 2.0) -> np.ndarray:
    """Global sample indices (datasets concatenated in order) for one epoch.

    An epoch has as many samples as all datasets together. Each dataset's samples are drawn
    without replacement from a fresh permutation, starting another once exhausted; which
    dataset each position draws from follows the policy. Deterministic in (seed, epoch).
    """
    rng = np.random.default_rng([seed, epoch, 104729])
    total = int(sum(sizes))
    offsets = np.cumsum([0] + list(sizes))[:-1]
    live = [i for i, s in enumerate(sizes) if s > 0]
    if policy == "proportional":
        return rng.permutation(total)
    if policy == "round_robin":
        choice = np.array([live[i % len(live)] for i in range(total)])
    else:
        p = dataset_probabilities([sizes[i] for i in live], policy, t)
        choice = np.asarray(live)[rng.choice(len(live), size=total, p=p)]
    streams: dict[int, list[int]] = {i: [] for i in live}
    out = np.empty(total, np.int64)
    for position, d in enumerate(choice):
        if not streams[d]:
            streams[d] = list(rng.permutation(sizes[d]))
        out[position] = offsets[d] + streams[d].pop()
    return out
