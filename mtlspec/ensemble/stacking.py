"""Stacking (Wolpert, "Stacked generalization", Neural Networks 1992): a second-level model over
the members' outputs, fitted on out-of-fold predictions, so it never sees a prediction a member
made for a sample it was trained on.

The meta-models and their inputs follow scikit-learn's StackingClassifier / StackingRegressor:
- classification, K > 2 classes: softmax regression over the concatenated member probabilities;
  K = 2: logistic regression over each member's probability of class 1; like scikit-learn, the
  meta-model is over the classes its training targets hold (logistic when two are), the others
  get probability 0;
- multilabel: one logistic regression per label over the members' probabilities of that label;
- regression: ridge regression over the members' values.
Every meta-model has an unpenalised intercept and the L2 penalty alpha/2 * |W|^2 (ridge: alpha * |w|^2)
beside the summed loss: LogisticRegression(C=1/alpha) and Ridge(alpha). The logistic models are
fitted to convergence with L-BFGS in float64 (the problems are strictly convex: one solution).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit, logsumexp

from mtlspec.tasks.base import Form


def features(form: Form, predictions: list[np.ndarray], label: int | None = None) -> np.ndarray:
    """The meta-model's input from the members' predictions (one array per member)."""
    if form is Form.CLASS_PROBABILITIES:
        if predictions[0].shape[1] == 2:
            return np.stack([p[:, 1] for p in predictions], axis=1)
        return np.concatenate(predictions, axis=1)
    if form is Form.LABEL_PROBABILITIES:
        return np.stack([p[:, label] for p in predictions], axis=1)
    return np.stack(predictions, axis=1)


def _softmax_objective(theta: np.ndarray, X: np.ndarray, Y: np.ndarray, alpha: float) -> tuple[float, np.ndarray]:
    d, k = X.shape[1], Y.shape[1]
    W, b = theta[: d * k].reshape(d, k), theta[d * k :]
    Z = X @ W + b
    log_p = Z - logsumexp(Z, axis=1, keepdims=True)
    loss = -(Y * log_p).sum() + 0.5 * alpha * (W * W).sum()
    R = np.exp(log_p) - Y
    return loss, np.concatenate([(X.T @ R + alpha * W).ravel(), R.sum(axis=0)])


def _logistic_objective(theta: np.ndarray, X: np.ndarray, y: np.ndarray, alpha: float) -> tuple[float, np.ndarray]:
    w, b = theta[:-1], theta[-1]
    z = X @ w + b
    loss = -(y * log_expit(z) + (1 - y) * log_expit(-z)).sum() + 0.5 * alpha * w @ w
    r = expit(z) - y
    return loss, np.concatenate([X.T @ r + alpha * w, [r.sum()]])


def _minimize(objective, size: int, *args) -> np.ndarray:
    found = minimize(objective, np.zeros(size), args=args, jac=True, method="L-BFGS-B",
                     options={"maxiter": 20000, "gtol": 1e-10, "ftol": 1e-15})
    return found.x


@dataclass
class Softmax:
    W: np.ndarray
    b: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, num_classes: int, alpha: float) -> "Softmax":
        Y = np.eye(num_classes)[y]
        theta = _minimize(_softmax_objective, X.shape[1] * num_classes + num_classes, X, Y, alpha)
        return cls(theta[: X.shape[1] * num_classes].reshape(X.shape[1], num_classes), theta[X.shape[1] * num_classes :])

    def predict(self, X: np.ndarray) -> np.ndarray:
        Z = X @ self.W + self.b
        return np.exp(Z - logsumexp(Z, axis=1, keepdims=True))


@dataclass
class Logistic:
    w: np.ndarray
    b: float

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, alpha: float) -> "Logistic":
        theta = _minimize(_logistic_objective, X.shape[1] + 1, X, y.astype(np.float64), alpha)
        return cls(theta[:-1], float(theta[-1]))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return expit(X @ self.w + self.b)


@dataclass
class Ridge:
    w: np.ndarray
    b: float

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, alpha: float) -> "Ridge":
        mean_x, mean_y = X.mean(axis=0), y.mean()
        Xc = X - mean_x
        w = np.linalg.solve(Xc.T @ Xc + alpha * np.eye(X.shape[1]), Xc.T @ (y - mean_y))
        return cls(w, float(mean_y - mean_x @ w))

    def predict(self, X: np.ndarray) -> np.ndarray:
        return X @ self.w + self.b


class Constant:
    """The meta-model when the targets hold a single class."""

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.ones((len(X), 1))


class Stacker:
    """The meta-model of one task: fit on out-of-fold predictions, then combine new predictions."""

    def __init__(self, form: Form, alpha: float = 1.0):
        self.form, self.alpha = form, alpha
        self.models: list = []

    def fit(self, predictions: list[np.ndarray], target: np.ndarray, labelled: np.ndarray) -> "Stacker":
        """predictions: each member's out-of-fold predictions on the training split (probabilities
        (N, K) / (N, L), or values (N,)); only labelled samples are used."""
        rows = [np.asarray(p, np.float64)[labelled] for p in predictions]
        target = np.asarray(target)[labelled]
        if self.form is Form.CLASS_PROBABILITIES:
            # as scikit-learn: the meta-model knows the classes the targets hold; the others get probability 0
            self.num_classes, self.classes = rows[0].shape[1], np.unique(target.astype(int))
            X, y = features(self.form, rows), np.searchsorted(self.classes, target.astype(int))
            if len(self.classes) == 1:
                self.models = [Constant()]
            elif len(self.classes) == 2:
                self.models = [Logistic.fit(X, y == 1, self.alpha)]
            else:
                self.models = [Softmax.fit(X, y, len(self.classes), self.alpha)]
        elif self.form is Form.LABEL_PROBABILITIES:
            self.models = [Logistic.fit(features(self.form, rows, j), target[:, j] > 0.5, self.alpha) for j in range(rows[0].shape[1])]
        else:
            self.models = [Ridge.fit(features(self.form, rows), target.astype(np.float64), self.alpha)]
        return self

    def predict(self, predictions: list[np.ndarray]) -> np.ndarray:
        """The ensemble's prediction, in the form the task's metric reads (probabilities or values)."""
        rows = [np.asarray(p, np.float64) for p in predictions]
        if self.form is Form.CLASS_PROBABILITIES:
            model = self.models[0]
            out = model.predict(features(self.form, rows))
            present = np.stack([1 - out, out], axis=1) if isinstance(model, Logistic) else out
            probs = np.zeros((len(present), self.num_classes))
            probs[:, self.classes] = present
            return probs
        if self.form is Form.LABEL_PROBABILITIES:
            return np.stack([m.predict(features(self.form, rows, j)) for j, m in enumerate(self.models)], axis=1)
        return self.models[0].predict(features(self.form, rows))
