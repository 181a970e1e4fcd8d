"""Per-sample weights from the spec; they reach every loss through the masked, weighted mean.

- inverse_dataset_size: each dataset weighs the same in total (w = N / (D n_d));
- inverse_frequency: w = 1 / frequency of the sample's class in `task` (multilabel: the mean
  over its positive labels);
- effective_number (Cui et al., CVPR 2019): w_c = (1 - beta) / (1 - beta^n_c);
- column: the values of a column of an attribute table.
Weights are scaled to a mean of 1 over the samples they apply to; other samples weigh 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mtlspec.data.dataset import labels_of
from mtlspec.data.records import DataError


def _class_weights(counts: np.ndarray, spec: Any) -> np.ndarray:
    counts = np.maximum(counts.astype(np.float64), 1.0)
    if spec.type == "effective_number":
        return (1.0 - spec.beta) / (1.0 - spec.beta**counts)
    return 1.0 / counts


def sample_weights(spec: Any, tasks: dict[str, Any], sources: dict[str, Any]) -> dict[str, np.ndarray]:
    """Weights per dataset (arrays aligned with each source's samples); empty for `none`."""
    kind = spec.type
    if kind == "none":
        return {}
    if kind == "inverse_dataset_size":
        total, count = sum(len(s) for s in sources.values()), len(sources)
        return {name: np.full(len(s), total / (count * len(s)), np.float32) for name, s in sources.items()}
    if kind == "column":
        source = sources.get(spec.dataset)
        if source is None or not hasattr(source, "column"):
            raise DataError(f"sample weights read column '{spec.column}' of dataset '{spec.dataset}', which is not an attribute table in use")
        values = source.column(spec.column)
        return {spec.dataset: (values / max(values.mean(), 1e-12)).astype(np.float32)}
    task = tasks[spec.task]
    source = sources[task.dataset]
    labels = [labels_of(source, i).get(task.label) for i in range(len(source))]
    if all(np.ndim(v) == 0 for v in labels if v is not None):  # class indices (else 0/1 vectors, one entry per label)
        known = [int(v) for v in labels if v is not None]
        counts = np.bincount(known, minlength=max(known, default=0) + 1)
        per_class = _class_weights(counts, spec)
        weights = np.array([per_class[int(v)] if v is not None else np.nan for v in labels])
    else:
        vectors = np.array([np.asarray(v, np.float64) for v in labels if v is not None])
        per_class = _class_weights(vectors.sum(axis=0), spec)
        weights = np.array([per_class[np.asarray(v) > 0.5].mean() if v is not None and np.asarray(v).any() else np.nan for v in labels])
    labelled = ~np.isnan(weights)
    weights[labelled] /= weights[labelled].mean()
    weights[~labelled] = 1.0
    return {task.dataset: weights.astype(np.float32)}
