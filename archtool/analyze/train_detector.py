"""Train the learned decision layer of :mod:`archtool.analyze.learned` on degrade corpora.

Usage::

    python -m archtool.analyze.train_detector CORPUS_DIR [CORPUS_DIR ...] \\
        -o archtool/checkpoints/analyze_detector.pt [--jobs 2] [--epochs 600]

Each CORPUS_DIR is the output of ``archtool degrade`` (degraded/ + labels.jsonl). The
targets are ``labels["kinds"]`` (present or not). Out-of-fold predictions of a 5-fold
cross-validation (folds by clip-id hash) choose one decision threshold per kind (maximising
F1) and, per kind, whether the model or the detector's own rule decides (the better
out-of-fold F1); the final weights are then trained on all clips. Deterministic:
fixed torch/numpy seeds, one thread.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from archtool.kinds import KINDS


def _clip_vector(path: str) -> tuple[np.ndarray, list[str]]:
    from archtool.analyze.analyzer import features_of_file, rule_findings
    from archtool.analyze.learned import feature_vector

    f = features_of_file(path)
    return feature_vector(f, rule_findings(f))


def _extract_one(corpus: Path, jobs: int):
    cache = corpus / "analyze_features.npz"
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        return z["X"], z["Y"], [str(i) for i in z["ids"]], [str(n) for n in z["names"]]
    items = []
    for line in (corpus / "labels.jsonl").read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            items.append((str(corpus / d["degraded"]), f"{corpus.name}/{d['clip']}", d.get("kinds", {})))
    from joblib import Parallel, delayed

    out = Parallel(n_jobs=jobs, batch_size=4)(delayed(_clip_vector)(p) for p, _, _ in items)
    names = out[0][1]
    X = np.stack([v for v, _ in out]).astype(np.float32)
    Y = np.array([[float(k in kinds) for k in KINDS] for _, _, kinds in items], dtype=np.float32)
    ids = [i for _, i, _ in items]
    np.savez(cache, X=X, Y=Y, ids=np.array(ids), names=np.array(names))
    return X, Y, ids, names


def extract(corpora: list[Path], jobs: int = 1):
    """Feature matrix X (n, d), targets Y (n, kinds), clip ids and feature names.

    Features are cached per corpus in CORPUS/analyze_features.npz (delete it after
    changing the features).
    """
    parts = [_extract_one(c, jobs) for c in corpora]
    names = parts[0][3]
    if any(p[3] != names for p in parts):
        raise ValueError("cached feature names differ between corpora; delete the analyze_features.npz caches")
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            [i for p in parts for i in p[2]], names)


def _fit(X: np.ndarray, Y: np.ndarray, epochs: int, seed: int = 0):
    import torch

    from archtool.analyze.learned import build_model

    torch.manual_seed(seed)
    model = build_model(X.shape[1], Y.shape[1])
    xt, yt = torch.from_numpy(X), torch.from_numpy(Y)
    model.mean.copy_(xt.mean(0))
    model.std.copy_(xt.std(0).clamp_min(1e-3))
    pos = yt.mean(0).clamp(0.02, 0.98)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=(1 - pos) / pos)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-2)
    g = torch.Generator().manual_seed(seed)
    n = X.shape[0]
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    model.eval()
    return model


def _predict(model, X: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return torch.sigmoid(model(torch.from_numpy(X))).numpy()


def _f1(y: np.ndarray, pred: np.ndarray) -> float:
    tp = float(np.sum(y * pred))
    fp = float(np.sum((1 - y) * pred))
    fn = float(np.sum(y * (1 - pred)))
    return 2 * tp / max(2 * tp + fp + fn, 1e-9)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Train the analyze decision layer on degrade corpora.")
    ap.add_argument("corpora", nargs="+", type=Path)
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=300)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    X, Y, ids, names = extract(args.corpora, args.jobs)
    folds = np.array([int(hashlib.sha256(i.encode()).hexdigest(), 16) % 5 for i in ids])
    P = np.zeros_like(Y)
    for k in range(5):
        m = _fit(X[folds != k], Y[folds != k], args.epochs)
        P[folds == k] = _predict(m, X[folds == k])
    thresholds, val, rule_val, rule_kinds = {}, {}, {}, []
    for j, k in enumerate(KINDS):
        best = (0.5, _f1(Y[:, j], (P[:, j] >= 0.5).astype(float)))
        for t in np.arange(0.2, 0.81, 0.05):
            f = _f1(Y[:, j], (P[:, j] >= t).astype(float))
            if f > best[1] + 1e-9:
                best = (float(t), f)
        thresholds[k] = round(best[0], 2)
        val[k] = round(best[1], 4)
        rule_val[k] = round(_f1(Y[:, j], X[:, names.index(f"rule_{k}")]), 4)
        if rule_val[k] > val[k]:
            rule_kinds.append(k)
    final = _fit(X, Y, args.epochs)
    from archtool.models.checkpoint import save_checkpoint

    meta = {
        "name": "analyze_detector",
        "model": "archtool.analyze.learned.build_model (standardise + MLP 2x96 GELU, one logit per kind)",
        "kinds": list(KINDS), "feature_names": names, "thresholds": thresholds,
        "trained_on": {
            "corpora": [str(c) for c in args.corpora],
            "recipe": "mixed-archive (archtool degrade)",
            "clips": int(X.shape[0]),
            "sources": "../shared/data speech/ and music/ (CMU ARCTIC, VCTK, LibriSpeech, freesound; librosa "
                       "example music), backgrounds ../shared/data/background, RIRs ../shared/data/rir; "
                       "licences per ../shared/data/MANIFEST.csv (CC-BY / CC0 / public domain; four music clips "
                       "CC-BY-NC-3.0)",
        },
        "training": {"epochs": args.epochs, "optimizer": "AdamW lr 3e-3 wd 1e-2, batch 64",
                     "loss": "BCE with per-kind positive weighting", "seed": 0,
                     "thresholds": "per kind, maximising out-of-fold F1; final weights trained on all clips"},
        "rule_kinds": rule_kinds,
        "validation": "5-fold cross-validation by clip-id hash (out-of-fold predictions)",
        "validation_f1_model": val, "validation_f1_rules": rule_val,
        "validation_f1_chosen": {k: max(val[k], rule_val[k]) for k in KINDS},
        "validation_macro_f1_chosen": round(float(np.mean([max(val[k], rule_val[k]) for k in KINDS])), 4),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(args.out, final.state_dict(), meta)
    print(json.dumps({k: meta[k] for k in ("validation_f1_model", "validation_f1_rules", "rule_kinds",
                                               "validation_macro_f1_chosen", "thresholds")}, indent=1))


if __name__ == "__main__":
    main()
