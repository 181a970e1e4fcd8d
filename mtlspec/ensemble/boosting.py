"""Boosting, one task at a time: what the next member trains on and how the members combine.

- Classification: AdaBoost SAMME (Zhu, Zou, Rosset and Hastie, "Multi-class AdaBoost",
  Statistics and Its Interface 2009). A member's weighted training error err gives it the weight
  alpha = learning_rate * (log((1 - err) / err) + log(K - 1)); the samples it got wrong are
  re-weighted by exp(alpha) for the next member; the ensemble predicts argmax_k sum_m alpha_m [h_m = k].
- Regression: gradient boosting with the squared loss (Friedman, "Greedy function approximation:
  a gradient boosting machine", Annals of Statistics 2001): F_0 is the mean target, each member
  fits the residuals y - F_{m-1}, and F_m = F_{m-1} + learning_rate * f_m.

The semantics (stopping rules included) are scikit-learn's AdaBoostClassifier(algorithm="SAMME")
and GradientBoostingRegressor(loss="squared_error"); the tests drive both classes with
scikit-learn trees as members and compare with those estimators. Everything here is numpy over
the samples of one task's training split; `labelled` masks the samples that carry its label.
"""

from __future__ import annotations

import math

import numpy as np


class Samme:
    """AdaBoost SAMME for one classification task."""

    def __init__(self, labelled: np.ndarray, num_classes: int, learning_rate: float = 1.0):
        self.labelled, self.num_classes, self.learning_rate = labelled.astype(bool), num_classes, learning_rate
        self.weights = np.where(self.labelled, 1.0, 0.0) / max(int(self.labelled.sum()), 1)
        self.alphas: list[float] = []
        self.errors: list[float] = []
        self.stopped: str | None = None  # why boosting stopped for this task, once it has
        if not self.labelled.any():
            self.stopped = "no training sample carries this task's label"

    def _clip(self) -> None:
        """As scikit-learn does before each member: no weight below machine epsilon, zeros stay zero."""
        self.weights = np.where(self.weights > 0, np.maximum(self.weights, np.finfo(np.float64).eps), 0.0)

    def sample_weights(self) -> np.ndarray:
        """The next member's per-sample weights, scaled to a mean of 1 over the labelled samples."""
        self._clip()
        scale = self.labelled.sum() / max(self.weights.sum(), 1e-300)
        return np.where(self.labelled, self.weights * scale, 1.0)

    def add(self, predicted: np.ndarray, target: np.ndarray, last: bool = False) -> None:
        """Take the next member's predicted labels on the training samples."""
        if self.stopped is not None:
            self.alphas.append(0.0)
            return
        self._clip()
        incorrect = (predicted != target) & self.labelled
        error = float(np.sum(self.weights * incorrect) / np.sum(self.weights))
        self.errors.append(error)
        if error <= 0:  # a perfect member: it decides alone from here on (scikit-learn keeps it with weight 1)
            self.alphas.append(1.0)
            self.stopped = "a member made no error on the training split"
            return
        if error >= 1.0 - 1.0 / self.num_classes:  # no better than chance: dropped, and boosting stops
            self.alphas.append(0.0)
            self.stopped = f"a member's weighted error {error:.3f} was no better than chance"
            return
        alpha = self.learning_rate * (math.log((1.0 - error) / error) + math.log(self.num_classes - 1.0))
        self.alphas.append(alpha)
        if not last:
            self.weights = np.exp(np.log(np.maximum(self.weights, 1e-300)) + alpha * incorrect) * (self.weights > 0)
            self.weights /= self.weights.sum()

    def decision(self, labels: list[np.ndarray]) -> np.ndarray:
        """(N, K) the members' weighted votes, normalised to sum to 1 per sample (one-hot votes of
        the first member if no member earned a weight)."""
        alphas = self.alphas[: len(labels)] if any(self.alphas[: len(labels)]) else [1.0] + [0.0] * (len(labels) - 1)
        tally = np.zeros((len(labels[0]), self.num_classes))
        for alpha, lab in zip(alphas, labels):
            tally[np.arange(len(lab)), lab] += alpha
        return tally / tally.sum(axis=1, keepdims=True)


class ResidualBoost:
    """Gradient boosting with the squared loss for one regression task."""

    def __init__(self, target: np.ndarray, labelled: np.ndarray, learning_rate: float = 1.0):
        self.labelled, self.learning_rate = labelled.astype(bool), learning_rate
        self.target = np.asarray(target, np.float64)
        self.init = float(self.target[self.labelled].mean()) if self.labelled.any() else 0.0
        self.current = np.full(len(self.target), self.init)  # F_{m-1} on the training samples
        self.members = 0
        self.stopped: str | None = None

    def residuals(self) -> np.ndarray:
        """What the next member fits: y - F_{m-1} (0 where the sample has no label)."""
        return np.where(self.labelled, self.target - self.current, 0.0)

    def add(self, predicted: np.ndarray) -> None:
        """Take the next member's predictions (of residuals) on the training samples."""
        self.current = self.current + self.learning_rate * np.asarray(predicted, np.float64)
        self.members += 1

    def predict(self, predictions: list[np.ndarray]) -> np.ndarray:
        """F_M on new samples from the members' predictions."""
        return self.init + self.learning_rate * np.sum([np.asarray(p, np.float64) for p in predictions], axis=0)
