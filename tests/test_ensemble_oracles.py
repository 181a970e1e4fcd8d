"""Boosting and stacking against scikit-learn (a test-only oracle), fed the same members and folds.

Our drivers (mtlspec.ensemble.boosting / stacking) are what the ensemble runner uses for networks;
here the members are scikit-learn trees and linear models, so scikit-learn's own ensembles can be
run on exactly the same problem and must agree.
"""

import inspect

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import AdaBoostClassifier, GradientBoostingRegressor, StackingClassifier, StackingRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import PredefinedSplit
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsRegressor
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from mtlspec.data.build import fold_ids
from mtlspec.ensemble.boosting import ResidualBoost, Samme
from mtlspec.ensemble.stacking import Stacker
from mtlspec.tasks.base import Form


def _problem(n: int, classes: int, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    score = X[:, 0] + 0.7 * X[:, 1] * X[:, 2] + 0.5 * rng.normal(size=n)
    y = np.digitize(score, np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1]))
    return X[: n * 2 // 3], y[: n * 2 // 3], X[n * 2 // 3 :], y[n * 2 // 3 :]


@pytest.mark.parametrize("classes,learning_rate", [(3, 1.0), (4, 0.5), (2, 1.0)])
def test_samme_matches_adaboost_classifier(classes, learning_rate):
    X, y, Xt, _ = _problem(450, classes, classes)
    members = 8
    samme = Samme(np.ones(len(y), bool), classes, learning_rate)
    test_labels = []
    for m in range(members):
        stump = DecisionTreeClassifier(max_depth=1, random_state=m).fit(X, y, sample_weight=samme.sample_weights())
        samme.add(stump.predict(X), y, last=m == members - 1)
        test_labels.append(stump.predict(Xt))
    # SAMME is the only algorithm in recent releases; releases before 1.6 defaulted to SAMME.R
    samme_only = {"algorithm": "SAMME"} if "algorithm" in inspect.signature(AdaBoostClassifier).parameters else {}
    reference = AdaBoostClassifier(DecisionTreeClassifier(max_depth=1), n_estimators=members,
                                   learning_rate=learning_rate, random_state=0, **samme_only).fit(X, y)
    assert samme.stopped is None and len(reference.estimators_) == members
    assert np.allclose(samme.alphas, reference.estimator_weights_, rtol=1e-10)
    assert np.allclose(samme.errors, reference.estimator_errors_, rtol=1e-10)
    ours = samme.decision(test_labels)
    assert np.array_equal(ours.argmax(axis=1), reference.predict(Xt))
    if classes > 2:  # scikit-learn codes votes as 1 / -1/(K-1): an affine map of our normalised tally
        assert np.allclose(ours * classes / (classes - 1) - 1 / (classes - 1), reference.decision_function(Xt))


def test_samme_stops_on_a_perfect_member_and_ignores_unlabelled_samples():
    y = np.array([0, 1, 2, 0, 1, 2])
    labelled = np.array([True, True, True, True, False, False])
    samme = Samme(labelled, 3)
    assert np.allclose(samme.sample_weights(), 1.0)
    samme.add(np.array([0, 1, 2, 1, 0, 0]), y)  # one error out of four labelled: err 1/4
    assert samme.errors == [0.25] and np.isclose(samme.alphas[0], np.log(3) + np.log(2))
    weights = samme.sample_weights()
    assert weights[3] > weights[0] and np.isclose(weights[:4].mean(), 1.0) and np.allclose(weights[4:], 1.0)
    samme.add(y.copy(), y)
    assert samme.stopped and samme.alphas[-1] == 1.0
    samme.add(np.zeros(6, int), y)
    assert samme.alphas[-1] == 0.0  # stopped: later members carry no weight


@pytest.mark.parametrize("learning_rate", [1.0, 0.3])
def test_residual_boosting_matches_gradient_boosting_regressor(learning_rate):
    rng = np.random.default_rng(5)
    X, Xt = rng.normal(size=(300, 4)), rng.normal(size=(100, 4))
    y = np.sin(X[:, 0]) * 2 + X[:, 1] ** 2 + 0.1 * rng.normal(size=300)
    boost = ResidualBoost(y, np.ones(300, bool), learning_rate)
    test_predictions = []
    shared = np.random.RandomState(0)  # as scikit-learn hands one RandomState to every tree: same tie-breaking
    for m in range(6):
        tree = DecisionTreeRegressor(max_depth=3, random_state=shared).fit(X, boost.residuals())
        boost.add(tree.predict(X))
        test_predictions.append(tree.predict(Xt))
    # our trees split on squared error, as scikit-learn 1.9's do; earlier releases default to friedman_mse,
    # which picks the same splits in exact arithmetic but rounds near-ties differently
    same_trees = {"criterion": "squared_error"} if GradientBoostingRegressor().criterion != "deprecated" else {}
    reference = GradientBoostingRegressor(n_estimators=6, learning_rate=learning_rate, max_depth=3, random_state=0, **same_trees).fit(X, y)
    assert np.allclose(boost.predict(test_predictions), reference.predict(Xt), atol=1e-9)
    assert np.allclose(boost.current, reference.predict(X), atol=1e-9)


def _out_of_fold(estimators, X, y, folds, method):
    """Each member trained once per fold without it and asked about that fold; and once on everything."""
    out = []
    for est in estimators:
        oof = None
        for k in np.unique(folds):
            fitted = clone(est).fit(X[folds != k], y[folds != k])
            pred = getattr(fitted, method)(X[folds == k])
            oof = np.zeros((len(y),) + pred.shape[1:]) if oof is None else oof
            oof[folds == k] = pred
        out.append(oof)
    return out


@pytest.mark.parametrize("classes", [3, 2])
def test_stacking_matches_stacking_classifier(classes):
    X, y, Xt, _ = _problem(600, classes, 11)
    folds, alpha = fold_ids(len(y), 4), 2.0
    estimators = [("lr", LogisticRegression(C=0.05)), ("nb", GaussianNB()), ("tree", DecisionTreeClassifier(max_depth=3, random_state=0))]
    oof = _out_of_fold([e for _, e in estimators], X, y, folds, "predict_proba")
    full = [clone(e).fit(X, y).predict_proba(Xt) for _, e in estimators]
    ours = Stacker(Form.CLASS_PROBABILITIES, alpha).fit(oof, y, np.ones(len(y), bool)).predict(full)
    reference = StackingClassifier(estimators, final_estimator=LogisticRegression(C=1 / alpha, tol=1e-12, max_iter=100000),
                                   cv=PredefinedSplit(folds), stack_method="predict_proba").fit(X, y)
    assert np.allclose(ours, reference.predict_proba(Xt), atol=2e-5)
    assert np.array_equal(ours.argmax(axis=1), reference.predict(Xt))


def test_stacking_multilabel_fits_one_logistic_regression_per_label():
    rng = np.random.default_rng(3)
    target = (rng.random((400, 3)) < 0.4).astype(np.float32)
    members = [np.clip(target + rng.normal(0, s, target.shape), 0.01, 0.99) for s in (0.3, 0.5, 0.8)]
    labelled = rng.random(400) < 0.9
    stacker = Stacker(Form.LABEL_PROBABILITIES, 0.5).fit(members, target, labelled)
    new = [np.clip(m[::-1] + 0.05, 0, 1) for m in members]
    ours = stacker.predict(new)
    for j in range(3):
        reference = LogisticRegression(C=2.0, tol=1e-12, max_iter=100000).fit(np.stack([m[labelled, j] for m in members], 1), target[labelled, j])
        assert np.allclose(ours[:, j], reference.predict_proba(np.stack([m[:, j] for m in new], 1))[:, 1], atol=2e-5)


def test_stacking_matches_stacking_regressor_with_ridge():
    rng = np.random.default_rng(8)
    X, Xt = rng.normal(size=(300, 4)), rng.normal(size=(80, 4))
    y = X[:, 0] * 3 - X[:, 1] + np.abs(X[:, 2]) + 0.2 * rng.normal(size=300)
    folds = fold_ids(300, 5)
    estimators = [("lin", LinearRegression()), ("tree", DecisionTreeRegressor(max_depth=4, random_state=0)), ("knn", KNeighborsRegressor(7))]
    oof = _out_of_fold([e for _, e in estimators], X, y, folds, "predict")
    full = [clone(e).fit(X, y).predict(Xt) for _, e in estimators]
    ours = Stacker(Form.VALUES, 3.0).fit(oof, y, np.ones(300, bool)).predict(full)
    reference = StackingRegressor(estimators, final_estimator=Ridge(alpha=3.0), cv=PredefinedSplit(folds)).fit(X, y)
    assert np.allclose(ours, reference.predict(Xt), atol=1e-9)


def test_folds_are_near_equal_fixed_and_cover_every_sample():
    ids = fold_ids(103, 5)
    assert sorted(np.bincount(ids).tolist()) == [20, 20, 21, 21, 21]
    assert np.array_equal(ids, fold_ids(103, 5)) and not np.array_equal(ids, np.arange(103) % 5)
