"""Boosted trees as plain arrays (archtool.analyze.trees): the numpy walk, the .npz round
trip, and (where scikit-learn is installed) equality with scikit-learn's own predictions."""
from __future__ import annotations

import numpy as np
import pytest

from archtool.analyze import trees


def _stump_pair() -> trees.TreeEnsemble:
    """Tree 0: x0 <= 1 ? -1 : (x1 <= 0 ? 0.5 : 2), NaN in x0 goes right.
    Tree 1: x1 <= 3 ? 0.25 : -0.25, NaN goes left."""
    #            0     1     2     3     4     5     6     7
    feature = [0, 0, 1, 0, 0, 1, 0, 0]
    threshold = [1.0, 0, 0.0, 0, 0, 3.0, 0, 0]
    left = [1, 0, 3, 0, 0, 6, 0, 0]
    right = [2, 0, 4, 0, 0, 7, 0, 0]
    missing_left = [False, False, False, False, False, True, False, False]
    leaf = [False, True, False, True, True, False, True, True]
    value = [0, -1.0, 0, 0.5, 2.0, 0, 0.25, -0.25]
    return trees.TreeEnsemble(np.array(feature, np.int32), np.array(threshold), np.array(left, np.int32),
                              np.array(right, np.int32), np.array(missing_left), np.array(leaf),
                              np.array(value), np.array([0, 5], np.int32), baseline=0.1)


def test_walk_follows_thresholds_and_missing_values():
    e = _stump_pair()
    X = np.array([[0.0, 0.0],       # -1 + 0.25
                  [1.0, 5.0],       # x0 <= 1 (ties go left): -1 - 0.25
                  [2.0, -1.0],      # 0.5 + 0.25
                  [2.0, 1.0],       # 2 + 0.25
                  [np.nan, np.nan]])  # x0 missing -> right, x1 missing -> 2 (tree 0); left in tree 1
    want = 0.1 + np.array([-0.75, -1.25, 0.75, 2.25, 2.25])
    np.testing.assert_allclose(e.raw(X), want)
    np.testing.assert_allclose(e.proba(X), 1 / (1 + np.exp(-want)))
    np.testing.assert_allclose(e.raw(X[2]), want[2:3])  # one row as a vector


def test_save_and_load_round_trip_without_pickles(tmp_path):
    e = _stump_pair()
    path = tmp_path / "t.npz"
    trees.save(path, {"noise": e, "hum": e}, ["a", "b"])
    got, names = trees.load(path)
    assert names == ["a", "b"] and sorted(got) == ["hum", "noise"]
    X = np.random.default_rng(0).normal(size=(50, 2)) * 3
    np.testing.assert_array_equal(got["noise"].raw(X), e.raw(X))
    np.load(path, allow_pickle=False)  # loads with pickles refused


def test_flattened_sklearn_model_predicts_exactly_what_sklearn_does():
    ensemble = pytest.importorskip("sklearn.ensemble")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1500, 8))
    y = (X[:, 0] + X[:, 1] ** 2 - 0.5 * X[:, 2] + 0.5 * rng.normal(size=1500) > 1).astype(int)
    X[::40, 3] = np.nan
    clf = ensemble.HistGradientBoostingClassifier(max_iter=40, random_state=0, early_stopping=False).fit(X, y)
    e = trees.from_sklearn(clf)
    Xt = rng.normal(size=(400, 8)) * 2
    Xt[::9, 3] = np.nan
    np.testing.assert_allclose(e.proba(Xt), clf.predict_proba(Xt)[:, 1], rtol=0, atol=1e-12)


def test_combination_rule_prefers_the_mean_unless_one_model_is_clearly_better():
    from archtool.analyze.train_detector import choose_combination

    assert choose_combination({"mlp": 0.90, "trees": 0.904, "mean": 0.90}, 0.005) == "mean"
    assert choose_combination({"mlp": 0.80, "trees": 0.86, "mean": 0.85}, 0.005) == "trees"
    assert choose_combination({"mlp": 0.86, "trees": 0.80, "mean": 0.85}, 0.005) == "mlp"
    assert choose_combination({"mlp": 0.86, "trees": 0.86, "mean": 0.80}, 0.005) == "mlp"  # tie: listed first
    assert choose_combination({"mlp": 0.80, "trees": 0.86, "mean": 0.85}, 0.0) == "trees"


def test_shipped_combination_follows_the_rule_from_its_recorded_scores():
    import json

    from archtool.analyze import learned
    from archtool.analyze.train_detector import choose_combination

    meta = json.loads(learned.CHECKPOINT.with_suffix(".json").read_text())
    t = meta["trees"]
    assert {k: choose_combination(f1, t["prefer_mean_within"]) for k, f1 in t["validation_f1_by_model"].items()} \
        == t["combine"]


def test_tree_cross_fit_predicts_each_fold_with_a_model_that_never_saw_it():
    ensemble = pytest.importorskip("sklearn.ensemble")
    from archtool.analyze import train_detector as td

    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 5)).astype(np.float32)
    Y = np.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0.5], axis=1).astype(np.float32)
    folds, seed = 3, 4
    P, shipped = td._cross_fit_trees(X, Y, folds, seed, jobs=1)
    fold = np.random.default_rng(seed).permutation(len(X)) % folds
    for j in range(Y.shape[1]):
        for k in range(folds):
            unseen = ensemble.HistGradientBoostingClassifier(random_state=seed, **td.TREE_PARAMS).fit(
                X[fold != k], Y[fold != k, j])
            np.testing.assert_allclose(P[fold == k, j], unseen.predict_proba(X[fold == k])[:, 1], atol=1e-12)
        full = ensemble.HistGradientBoostingClassifier(random_state=seed, **td.TREE_PARAMS).fit(X, Y[:, j])
        np.testing.assert_allclose(shipped[j].proba(X), full.predict_proba(X)[:, 1], atol=1e-12)
        # the targets are learned: out-of-fold predictions far better than chance
        assert td._f1(Y[:, j], (P[:, j] >= 0.5).astype(float)) > 0.8
