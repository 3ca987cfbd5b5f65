"""Cross-fitting of the analyze decision layer (archtool.analyze.train_detector._cross_fit):
each clip's out-of-fold prediction comes from the fold model that never saw it, and the shipped
model averages every fold model's members."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def _data(n: int = 240, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6)).astype(np.float32)
    Y = np.stack([(X[:, 0] + 0.3 * X[:, 1] > 0), (X[:, 2] - X[:, 3] > 0.5)], axis=1).astype(np.float32)
    S = np.where(rng.random(n) < 0.5, 20 + 5 * X[:, 4], np.nan).astype(np.float32)
    return X, Y, S


def test_out_of_fold_predictions_come_from_the_unseen_fold_model():
    from archtool.analyze.learned import build_model
    from archtool.analyze.train_detector import _cross_fit, _f1, _predict

    torch.set_num_threads(1)
    X, Y, S = _data()
    folds, members = 3, 1
    P, snr, model = _cross_fit(X, Y, S, folds, epochs=40, seed=3, members=members, hidden=16, batch=32, jobs=1)
    assert len(model.nets) == folds * members
    fold = np.random.default_rng(3).permutation(X.shape[0]) % folds
    for k in range(folds):
        sub = build_model(X.shape[1], Y.shape[1] + 1, members, 16)
        sub.mean.copy_(model.mean)
        sub.std.copy_(model.std)
        sub.nets[0].load_state_dict(model.nets[k].state_dict())
        sub.eval()
        pk, sk = _predict(sub, X[fold == k])
        np.testing.assert_allclose(P[fold == k], pk, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(snr[fold == k], sk, rtol=1e-5, atol=1e-4)
    # the targets are learnable: held-out predictions are far better than chance
    for j in range(Y.shape[1]):
        assert _f1(Y[:, j], (P[:, j] >= 0.5).astype(float)) > 0.75
    # deterministic
    P2, _, _ = _cross_fit(X, Y, S, folds, epochs=40, seed=3, members=members, hidden=16, batch=32, jobs=1)
    np.testing.assert_array_equal(P, P2)
