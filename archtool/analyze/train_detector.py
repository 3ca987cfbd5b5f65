"""Train the learned decision layer of :mod:`archtool.analyze.learned` on degrade corpora.

Usage::

    python -m archtool.analyze.train_detector TRAIN_DIR [TRAIN_DIR ...] --val VAL_DIR [VAL_DIR ...] \\
        -o archtool/checkpoints/analyze_detector.pt [--jobs 2] [--epochs 300] [--seed 7]

Each directory is the output of ``archtool degrade`` (degraded/ + labels.jsonl). The
targets are ``labels["kinds"]`` (present or not). The model is trained on the TRAIN
corpora only; its predictions on the separate VAL corpora (other degrade seeds) choose one
decision threshold per kind (maximising F1) and, per kind, whether the model or the
detector's own rule decides (the better validation F1). With ``--cv-folds K`` the VAL
corpora join the training data instead: K fold models are cross-fitted, their out-of-fold
predictions (every clip predicted by the model that did not see it) make those choices, and
the shipped model averages every fold model's members. Benchmark corpora must not be
among either. Deterministic: fixed torch/numpy seeds, one thread.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from archtool.analyze.learned import FEATURE_VERSION, HIDDEN, write_numpy_mirror
from archtool.kinds import KINDS


def _clip_vector(path: str) -> tuple[np.ndarray, list[str]]:
    from archtool.analyze.analyzer import features_of_file, rule_findings
    from archtool.analyze.learned import feature_vector

    f = features_of_file(path)
    return feature_vector(f, rule_findings(f))


def _noise_snr(label: dict) -> float:
    """The SNR (dB) of the clip's ``noise`` unit as measured by degrade; NaN without one."""
    for u in label.get("units", []):
        if u.get("unit") == "noise":
            v = (u.get("measured") or {}).get("snr_db", u.get("params", {}).get("snr_db"))
            return float(v) if v is not None else float("nan")
    return float("nan")


def _extract_one(corpus: Path, jobs: int):
    items = []
    for line in (corpus / "labels.jsonl").read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            items.append((str(corpus / d["degraded"]), f"{corpus.name}/{d['clip']}", d.get("kinds", {}),
                          _noise_snr(d)))
    Y = np.array([[float(k in kinds) for k in KINDS] for _, _, kinds, _ in items], dtype=np.float32)
    S = np.array([s for *_, s in items], dtype=np.float32)
    ids = [i for _, i, _, _ in items]
    cache = corpus / f"analyze_features_v{FEATURE_VERSION}.npz"
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        if [str(i) for i in z["ids"]] == ids:
            return z["X"], Y, S, ids, [str(n) for n in z["names"]]
    from joblib import Parallel, delayed

    out = Parallel(n_jobs=jobs, batch_size=4)(delayed(_clip_vector)(p) for p, *_ in items)
    names = out[0][1]
    X = np.stack([v for v, _ in out]).astype(np.float32)
    np.savez(cache, X=X, ids=np.array(ids), names=np.array(names))
    return X, Y, S, ids, names


def extract(corpora: list[Path], jobs: int = 1):
    """Feature matrix X (n, d), targets Y (n, kinds), noise-unit SNR S (n,) (NaN where the
    clip has no noise unit), clip ids and feature names.

    Features are cached per corpus in CORPUS/analyze_features_vN.npz (N =
    ``learned.FEATURE_VERSION``; bump it when the features change).
    """
    parts = [_extract_one(c, jobs) for c in corpora]
    # a non-finite feature (none expected; one clip's degenerate noise spectrum once gave a
    # NaN) would turn the standardisation and every weight into NaN
    parts = [(np.nan_to_num(p[0], nan=0.0, posinf=0.0, neginf=0.0), *p[1:]) for p in parts]
    names = parts[0][4]
    if any(p[4] != names for p in parts):
        raise ValueError("cached feature names differ between corpora; delete the analyze_features caches")
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]), [i for p in parts for i in p[3]], names)


def _standardisation(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation (at least 1e-3), float32, as the model stores them."""
    import torch

    xt = torch.from_numpy(X)
    return xt.mean(0).numpy().copy(), xt.std(0).clamp_min(1e-3).numpy().copy()


def _fit(X: np.ndarray, Y: np.ndarray, S: np.ndarray, epochs: int, seed: int = 0, members: int = 1,
         hidden: int = HIDDEN, batch: int = 64, jobs: int = 1, norm: tuple[np.ndarray, np.ndarray] | None = None):
    """Train ``members`` MLPs (seeds ``seed``, ``seed + 1``, ...) on the same data: per-kind
    BCE on the first outputs, and squared error of the noise SNR (standardised,
    ``learned.SNR_CENTRE_DB``/``SNR_SCALE_DB``) on the last, on clips with a noise unit.
    Members train independently (``jobs`` processes, one thread each); each depends only on
    its own seed, so the result does not depend on ``jobs``. ``norm``: the feature
    standardisation (mean, std) to use; by default that of ``X``."""
    import torch

    from archtool.analyze.learned import build_model

    model = build_model(X.shape[1], Y.shape[1] + 1, members, hidden)
    mean, std = _standardisation(X) if norm is None else (np.asarray(norm[0], np.float32), np.asarray(norm[1], np.float32))
    model.mean.copy_(torch.from_numpy(mean))
    model.std.copy_(torch.from_numpy(std))
    args = [(X, Y, S, mean, std, epochs, seed + i, hidden, batch) for i in range(members)]
    if jobs > 1 and members > 1:
        from joblib import Parallel, delayed

        states = Parallel(n_jobs=min(jobs, members))(delayed(_fit_member)(*a) for a in args)
    else:
        states = [_fit_member(*a) for a in args]
    for net, st in zip(model.nets, states):
        net.load_state_dict(st)
    model.eval()
    return model


def _fit_member(X, Y, S, mean, std, epochs: int, seed: int, hidden: int, batch: int) -> dict:
    """One member's weights (a state dict of ``build_model(...).nets[0]``)."""
    import torch

    from archtool.analyze.learned import SNR_CENTRE_DB, SNR_SCALE_DB, build_model

    torch.set_num_threads(1)
    net = build_model(X.shape[1], Y.shape[1] + 1, 1, hidden).nets[0]
    xt, yt = torch.from_numpy(np.array(X)), torch.from_numpy(np.array(Y))  # writable copies
    st = torch.from_numpy(np.nan_to_num((S - SNR_CENTRE_DB) / SNR_SCALE_DB).astype(np.float32))
    has = torch.from_numpy(np.isfinite(S).astype(np.float32))
    pos = yt.mean(0).clamp(0.02, 0.98)
    bce = torch.nn.BCEWithLogitsLoss(pos_weight=(1 - pos) / pos)
    z = (xt - torch.from_numpy(mean)) / torch.from_numpy(std)
    n, k = X.shape[0], Y.shape[1]
    torch.manual_seed(seed)
    for layer in net:
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-2)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(n, generator=g)
        for j in range(0, n, batch):
            idx = perm[j:j + batch]
            opt.zero_grad()
            out = net(z[idx])
            h = has[idx]
            mse = ((out[:, k] - st[idx]) ** 2 * h).sum() / h.sum().clamp_min(1.0)
            loss = bce(out[:, :k], yt[idx]) + SNR_LOSS_WEIGHT * mse
            loss.backward()
            opt.step()
    net.eval()
    return {key: v.detach().clone() for key, v in net.state_dict().items()}


SNR_LOSS_WEIGHT = 0.5


def _cross_fit(X: np.ndarray, Y: np.ndarray, S: np.ndarray, folds: int, epochs: int, seed: int, members: int,
               hidden: int, batch: int, jobs: int):
    """K-fold cross-fitting: ``folds`` models of ``members`` MLPs, model ``k`` trained on all
    clips but fold ``k`` (folds drawn with ``numpy.random.default_rng(seed)``), all with the
    standardisation of the whole of ``X``. Returns the out-of-fold probabilities (n, kinds)
    and SNR estimates (n,), and the ensemble of every member of every fold model (the
    shipped model: each clip's out-of-fold prediction comes from the same kind of model,
    trained on (folds-1)/folds of the data)."""
    import torch

    from archtool.analyze.learned import build_model

    n = X.shape[0]
    fold = np.random.default_rng(seed).permutation(n) % folds
    norm = _standardisation(X)
    P = np.zeros((n, Y.shape[1]), dtype=np.float64)
    snr = np.zeros(n, dtype=np.float64)
    nets = []
    for k in range(folds):
        tr, te = fold != k, fold == k
        m = _fit(X[tr], Y[tr], S[tr], epochs, seed=seed + 1000 * (k + 1), members=members, hidden=hidden,
                 batch=batch, jobs=jobs, norm=norm)
        P[te], snr[te] = _predict(m, X[te])
        nets.extend(m.nets)
        print(f"fold {k + 1}/{folds} trained ({int(tr.sum())} clips)", flush=True)
    model = build_model(X.shape[1], Y.shape[1] + 1, len(nets), hidden)
    model.mean.copy_(torch.from_numpy(norm[0]))
    model.std.copy_(torch.from_numpy(norm[1]))
    for dst, src in zip(model.nets, nets):
        dst.load_state_dict(src.state_dict())
    model.eval()
    return P, snr, model


TREE_PARAMS = {"max_iter": 300, "learning_rate": 0.05, "max_leaf_nodes": 31, "l2_regularization": 1.0,
               "early_stopping": False}


def _fit_trees(X: np.ndarray, y: np.ndarray, seed: int):
    """One kind's gradient-boosted trees (scikit-learn, needed only for training)."""
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise SystemExit("--trees needs scikit-learn for training: pip install scikit-learn") from e
    return HistGradientBoostingClassifier(random_state=seed, **TREE_PARAMS).fit(X, y)


def _cross_fit_trees(X: np.ndarray, Y: np.ndarray, folds: int, seed: int, jobs: int = 1):
    """Out-of-fold tree probabilities (n, kinds) on the same folds as :func:`_cross_fit`, and
    the shipped ensembles: per kind, one model fitted on every clip, flattened to arrays."""
    from joblib import Parallel, delayed

    from archtool.analyze import trees

    n = X.shape[0]
    fold = np.random.default_rng(seed).permutation(n) % folds

    def one_kind(j: int):
        p = np.zeros(n)
        for k in range(folds):
            tr, te = fold != k, fold == k
            p[te] = _fit_trees(X[tr], Y[tr, j], seed).predict_proba(X[te])[:, 1]
        return p, trees.from_sklearn(_fit_trees(X, Y[:, j], seed))

    out = Parallel(n_jobs=jobs)(delayed(one_kind)(j) for j in range(Y.shape[1]))
    return np.stack([p for p, _ in out], axis=1), [e for _, e in out]


COMBINE = ("mlp", "trees", "mean")


def _combined(how: str, p_mlp: np.ndarray, p_tree: np.ndarray) -> np.ndarray:
    return p_mlp if how == "mlp" else p_tree if how == "trees" else 0.5 * (p_mlp + p_tree)


def choose_combination(f1: dict[str, float], prefer_mean_within: float) -> str:
    """Which of ``COMBINE`` decides a kind, from each one's out-of-fold F1: the mean of MLPs and
    trees unless one alone beats it by more than ``prefer_mean_within``, then the best (ties:
    the one listed first). The mean hedges each model's failures off the training
    distribution: trees are step functions, and a case between their training examples can
    land on a bad leaf."""
    best = max(f1.values())
    if f1["mean"] >= best - prefer_mean_within:
        return "mean"
    return max(COMBINE, key=lambda how: (f1[how], -COMBINE.index(how)))


def _predict(model, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-kind probabilities (n, kinds) and the noise SNR estimate (n,) in dB."""
    import torch

    from archtool.analyze.learned import SNR_CENTRE_DB, SNR_SCALE_DB

    with torch.no_grad():
        out = model(torch.from_numpy(X)).numpy()
    return 1.0 / (1.0 + np.exp(-out[:, :-1])), out[:, -1] * SNR_SCALE_DB + SNR_CENTRE_DB


def _f1(y: np.ndarray, pred: np.ndarray) -> float:
    tp = float(np.sum(y * pred))
    fp = float(np.sum((1 - y) * pred))
    fn = float(np.sum(y * (1 - pred)))
    return 2 * tp / max(2 * tp + fp + fn, 1e-9)


def _best_threshold(y: np.ndarray, p: np.ndarray, prefer_high: bool = False) -> tuple[float, float]:
    """The threshold maximising validation F1, or with ``prefer_high`` the highest one
    within ``PRECISION_TOLERANCE`` of that F1 (grid 0.1..0.9 by 0.05, and 0.95 for those)."""
    grid = [float(t) for t in np.arange(0.1, 0.91, 0.05)] + ([0.95] if prefer_high else [])
    scores = [(t, _f1(y, (p >= t).astype(float))) for t in grid]
    best = (0.5, _f1(y, (p >= 0.5).astype(float)))
    for t, f in scores:
        if f > best[1] + 1e-9:
            best = (t, f)
    if prefer_high:
        best = max(((t, f) for t, f in scores if f >= best[1] - PRECISION_TOLERANCE), key=lambda tf: tf[0])
    return round(best[0], 2), round(best[1], 4)


# Kinds whose false alarm costs more than a miss: a reverb finding plans dereverberation,
# which would take the hall out of a clean concert recording. Their threshold is the
# highest within PRECISION_TOLERANCE of the best validation F1.
PRECISION_KINDS = ("reverb",)
PRECISION_TOLERANCE = 0.01


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Train the analyze decision layer on degrade corpora.")
    ap.add_argument("corpora", nargs="+", type=Path, help="training corpora (archtool degrade output)")
    ap.add_argument("--val", nargs="+", type=Path, required=True,
                    help="validation corpora (other seeds): thresholds and rule-vs-model choice; with "
                         "--cv-folds they join the training data and the out-of-fold predictions decide")
    ap.add_argument("--cv-folds", type=int, default=0,
                    help="K > 1: cross-fit K fold models on training + validation corpora; thresholds from "
                         "the out-of-fold predictions; the shipped model is all folds' members averaged")
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7, help="torch seed of the weights and batches")
    ap.add_argument("--members", type=int, default=1, help="MLPs averaged (an ensemble)")
    ap.add_argument("--hidden", type=int, default=HIDDEN, help="units per hidden layer")
    ap.add_argument("--batch", type=int, default=64, help="minibatch size")
    ap.add_argument("--extract-only", action="store_true", help="only compute and cache the features")
    ap.add_argument("--trees", action="store_true",
                    help="also cross-fit gradient-boosted trees (needs scikit-learn and --cv-folds) and, per "
                         "kind, use the MLPs, the trees or their mean, whichever scores best out of fold")
    ap.add_argument("--prefer-mean-within", type=float, default=0.005,
                    help="with --trees: use the mean of MLPs and trees unless one alone beats it by more than "
                         "this out-of-fold F1")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    X, Y, S, ids, names = extract(args.corpora, args.jobs)
    Xv, Yv, Sv, _, names_v = extract(args.val, args.jobs)
    if names_v != names:
        raise ValueError("training and validation features differ; delete the stale caches")
    if args.extract_only:
        print(f"features cached: {X.shape[0]} training clips, {Xv.shape[0]} validation clips, {len(names)} features")
        return
    if args.cv_folds > 1:
        X, Y, S = np.concatenate([X, Xv]), np.concatenate([Y, Yv]), np.concatenate([S, Sv])
        P, snr_pred, model = _cross_fit(X, Y, S, args.cv_folds, args.epochs, args.seed, args.members,
                                        args.hidden, args.batch, args.jobs)
        Xv, Yv, Sv = X, Y, S  # the decisions below read the out-of-fold predictions
        if args.trees:
            P_tree, ensembles = _cross_fit_trees(X, Y, args.cv_folds, args.seed, args.jobs)
    elif args.trees:
        raise SystemExit("--trees needs --cv-folds (the combination is chosen out of fold)")
    else:
        model = _fit(X, Y, S, args.epochs, seed=args.seed, members=args.members, hidden=args.hidden,
                     batch=args.batch, jobs=args.jobs)
        P, snr_pred = _predict(model, Xv)
    hv = np.isfinite(Sv)
    snr_rule = Xv[:, names.index("snr_db")]
    snr_mae = {"learned": round(float(np.mean(np.abs(snr_pred[hv] - Sv[hv]))), 3),
               "detector": round(float(np.mean(np.abs(snr_rule[hv] - Sv[hv]))), 3), "clips": int(hv.sum())}
    thresholds, val, rule_val, rule_kinds, combine, by_model = {}, {}, {}, [], {}, {}
    for j, k in enumerate(KINDS):
        if args.trees:
            scores = {how: _best_threshold(Yv[:, j], _combined(how, P[:, j], P_tree[:, j]),
                                           prefer_high=k in PRECISION_KINDS)[1] for how in COMBINE}
            by_model[k] = scores
            combine[k] = choose_combination(scores, args.prefer_mean_within)
            P[:, j] = _combined(combine[k], P[:, j], P_tree[:, j])
        thresholds[k], val[k] = _best_threshold(Yv[:, j], P[:, j], prefer_high=k in PRECISION_KINDS)
        rule_val[k] = round(_f1(Yv[:, j], Xv[:, names.index(f"rule_{k}")]), 4)
        if rule_val[k] > val[k]:
            rule_kinds.append(k)
    from archtool.models.checkpoint import save_checkpoint

    chosen = {k: max(val[k], rule_val[k]) for k in KINDS}
    n_members = len(model.nets)
    cv = args.cv_folds > 1
    meta = {
        "name": "analyze_detector",
        "model": f"archtool.analyze.learned.build_model (standardise + mean of {n_members} MLPs 2x{args.hidden} "
                 "GELU, one logit per kind)" + (f": {args.members} per fold model of a {args.cv_folds}-fold "
                                                 "cross-fit" if cv else ""),
        "members": n_members, "hidden": args.hidden,
        "kinds": list(KINDS), "feature_names": names, "feature_version": FEATURE_VERSION,
        "thresholds": thresholds,
        "trained_on": {
            "corpora": [str(c) for c in args.corpora] + ([str(c) for c in args.val] if cv else []),
            "recipe": "mixed-archive (archtool degrade), clean clips included as negatives",
            "clips": int(X.shape[0]),
            "sources": "../shared/data speech/ (CMU ARCTIC, VCTK, LibriSpeech, freesound) and music/ "
                       "(librosa/data example recordings: Musopen, Kevin MacLeod, freesound uploads), "
                       "backgrounds ../shared/data/background, RIRs ../shared/data/rir; licences per "
                       "../shared/data/MANIFEST.csv (CC-BY / CC0 / public domain; four music clips CC-BY-NC-3.0)",
        },
        "validated_on": ({"corpora": "out-of-fold predictions over every training clip "
                                     f"({args.cv_folds} folds, fold model k never saw fold k)",
                          "clips": int(Xv.shape[0])} if cv else
                         {"corpora": [str(c) for c in args.val], "clips": int(Xv.shape[0])}),
        "training": {"epochs": args.epochs, "optimizer": f"AdamW lr 3e-3 wd 1e-2, batch {args.batch}, per member",
                     "loss": f"BCE with per-kind positive weighting + {SNR_LOSS_WEIGHT} x squared error of the "
                             "standardised noise-unit SNR (clips with a noise unit)", "seed": args.seed,
                     "thresholds": "per kind, maximising validation F1 ("
                                   + ("out-of-fold predictions" if cv else "validation corpora only") + "); for "
                                   f"{', '.join(PRECISION_KINDS)} the highest within {PRECISION_TOLERANCE} of "
                                   "the best F1 (a false alarm plans destructive processing)"},
        "rule_kinds": rule_kinds,
        "snr_head": snr_mae["learned"] < snr_mae["detector"],
        "validation_snr_mae_db": snr_mae,
        "validation_f1_model": val, "validation_f1_rules": rule_val,
        "validation_f1_chosen": chosen,
        "validation_macro_f1_chosen": round(float(np.mean(list(chosen.values()))), 4),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.trees:
        from archtool.analyze import trees
        from archtool.analyze.learned import _sha256

        tree_file = args.out.with_name(args.out.stem + "_trees.npz")
        trees.save(tree_file, dict(zip(KINDS, ensembles)), names)
        meta["model"] += ("; per kind (trees.combine) its probability is the MLPs', that of gradient-boosted "
                          "trees (archtool.analyze.trees, scikit-learn HistGradientBoostingClassifier fitted "
                          "on every clip, flattened to arrays) or their mean")
        meta["trees"] = {"file": tree_file.name, "sha256": _sha256(tree_file), "combine": combine,
                         "prefer_mean_within": args.prefer_mean_within,
                         "params": TREE_PARAMS, "seed": args.seed,
                         "nodes": {k: e.nodes for k, e in zip(KINDS, ensembles)},
                         "validation_f1_by_model": by_model}
    save_checkpoint(args.out, model.state_dict(), meta)
    write_numpy_mirror(args.out, model)
    print(json.dumps({k: meta[k] for k in ("validation_f1_model", "validation_f1_rules", "rule_kinds",
                                               "validation_macro_f1_chosen", "thresholds",
                                               "validation_snr_mae_db")}, indent=1))


if __name__ == "__main__":
    main()
