"""Clip classification: a class per clip, from its frames' features pooled over time (the model's
clip_features), through the classification task's head, loss and metrics."""

from __future__ import annotations

from mtlspec.tasks.classification import Classification


class ClipClassification(Classification):
    name = "clip_classification"
    level = "clip"
    episodic = False  # few-shot episodes are drawn from images (meta/episodes.py)
