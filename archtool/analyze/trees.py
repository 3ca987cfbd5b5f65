"""Gradient-boosted tree ensembles stored as plain arrays, evaluated in numpy.

The decision layer's tree models are trained with scikit-learn's
``HistGradientBoostingClassifier`` (:mod:`archtool.analyze.train_detector`, only at training
time) and shipped as an ``.npz`` of flat node arrays, so analysis needs neither scikit-learn
nor unpickling. Each kind's ensemble is stored as arrays over all its nodes (child indices
are global, so one vectorised walk serves every tree at once) plus the root of each tree
and the baseline log-odds:

    raw(x) = baseline + sum over trees of the value of the leaf x reaches

where a node sends ``x`` left when ``x[feature] <= threshold`` (or, for a missing value,
when ``missing_left``), exactly as scikit-learn's predictor does.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class TreeEnsemble:
    """One binary classifier: flat node arrays (global child indices) and tree roots."""

    feature: np.ndarray  # int32 (nodes,)
    threshold: np.ndarray  # float64 (nodes,)
    left: np.ndarray  # int32 (nodes,)
    right: np.ndarray  # int32 (nodes,)
    missing_left: np.ndarray  # bool (nodes,)
    leaf: np.ndarray  # bool (nodes,)
    value: np.ndarray  # float64 (nodes,): leaf values (0 on split nodes)
    roots: np.ndarray  # int32 (trees,)
    baseline: float

    def raw(self, X: np.ndarray) -> np.ndarray:
        """Log-odds for each row of ``X`` (n, features)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        idx = np.broadcast_to(self.roots, (X.shape[0], self.roots.size)).copy()
        rows = np.arange(X.shape[0])[:, None]
        while True:
            inner = ~self.leaf[idx]
            if not inner.any():
                break
            x = X[rows, self.feature[idx]]
            go_left = np.where(np.isnan(x), self.missing_left[idx], x <= self.threshold[idx])
            idx = np.where(inner, np.where(go_left, self.left[idx], self.right[idx]), idx)
        return self.baseline + self.value[idx].sum(axis=1)

    def proba(self, X: np.ndarray) -> np.ndarray:
        """P(positive) for each row of ``X``."""
        return 1.0 / (1.0 + np.exp(-self.raw(X)))

    @property
    def nodes(self) -> int:
        return int(self.feature.size)


def from_sklearn(clf) -> TreeEnsemble:
    """Flatten a fitted binary ``HistGradientBoostingClassifier`` (numeric features only)."""
    parts, roots, offset = [], [], 0
    for trees in clf._predictors:
        (tree,) = trees  # binary classification: one tree per iteration
        nodes = tree.nodes
        if np.any(nodes["is_categorical"]):
            raise ValueError("categorical splits are not supported")
        parts.append((nodes, offset))
        roots.append(offset)
        offset += len(nodes)
    cat = lambda field, dtype: np.concatenate([n[field].astype(dtype) for n, _ in parts])  # noqa: E731
    shift = np.concatenate([np.full(len(n), o, dtype=np.int64) for n, o in parts])
    leaf = cat("is_leaf", bool)
    left = np.where(leaf, 0, cat("left", np.int64) + shift).astype(np.int32)
    right = np.where(leaf, 0, cat("right", np.int64) + shift).astype(np.int32)
    return TreeEnsemble(feature=cat("feature_idx", np.int32), threshold=cat("num_threshold", np.float64),
                        left=left, right=right, missing_left=cat("missing_go_to_left", bool), leaf=leaf,
                        value=np.where(leaf, cat("value", np.float64), 0.0), roots=np.array(roots, np.int32),
                        baseline=float(np.ravel(clf._baseline_prediction)[0]))


_FIELDS = ("feature", "threshold", "left", "right", "missing_left", "leaf", "value", "roots")


def save(path: Path, ensembles: dict[str, TreeEnsemble], feature_names: list[str]) -> None:
    """Write ``{name: ensemble}`` and the feature names to a compressed ``.npz`` (no pickles)."""
    arrays = {"feature_names": np.array(feature_names)}
    for name, e in ensembles.items():
        for f in _FIELDS:
            arrays[f"{name}/{f}"] = getattr(e, f)
        arrays[f"{name}/baseline"] = np.array(e.baseline)
    np.savez_compressed(path, **arrays)


def load(path: Path) -> tuple[dict[str, TreeEnsemble], list[str]]:
    """Read what :func:`save` wrote: ``({name: ensemble}, feature names)``."""
    z = np.load(path, allow_pickle=False)
    names = sorted({k.split("/")[0] for k in z.files if "/" in k})
    ens = {n: TreeEnsemble(**{f: z[f"{n}/{f}"] for f in _FIELDS}, baseline=float(z[f"{n}/baseline"]))
           for n in names}
    return ens, [str(s) for s in z["feature_names"]]
