"""Evaluate a folder of estimates against a folder of references (used by `archtool eval`)."""
from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from archtool.audio.io import read_audio
from archtool.engine.scan import scan
from archtool.errors import ArchtoolError, UsageError
from archtool.metrics import all_metrics


def _index(root: Path) -> dict[str, Path]:
    candidates, _ = scan(root)
    if root.is_file():
        return {PurePosixPath(root.name).stem: root}
    return {str(PurePosixPath(c.relpath).with_suffix("")): c.path for c in candidates}


def evaluate_pair(reference: Path, estimate: Path, speech: bool = False) -> dict[str, Any]:
    """Metrics of one estimate; the estimate is resampled to the reference's rate if needed."""
    ref, sr = read_audio(reference)
    est, sr_e = read_audio(estimate)
    if sr_e != sr:
        from scipy.signal import resample_poly
        from math import gcd

        g = gcd(sr, sr_e)
        est = resample_poly(est, sr // g, sr_e // g, axis=1).astype(np.float32)
    if est.shape[0] != ref.shape[0]:
        est = np.repeat(est.mean(axis=0, keepdims=True), ref.shape[0], axis=0)
    return all_metrics(ref, est, sr, speech=speech)


def evaluate_dirs(reference_dir: str | Path, estimate_dir: str | Path, speech: bool = False) -> dict[str, Any]:
    """Per-file metrics and their mean, matching files by relative path without extension."""
    refs, ests = _index(Path(reference_dir)), _index(Path(estimate_dir))
    if not refs:
        raise UsageError(f"{reference_dir}: no audio files found")
    common = sorted(set(refs) & set(ests))
    if not common and len(refs) == 1 and len(ests) == 1:
        common = [next(iter(refs))]
        ests = {common[0]: next(iter(ests.values()))}
    if not common:
        raise UsageError(f"no estimate in {estimate_dir} matches a reference in {reference_dir} by relative path")
    rows = []
    for key in common:
        try:
            rows.append({"file": key, "metrics": evaluate_pair(refs[key], ests[key], speech)})
        except ArchtoolError as exc:
            rows.append({"file": key, "metrics": None, "error": str(exc)})
    keys = sorted({k for r in rows if r.get("metrics") for k in r["metrics"]})
    mean = {}
    for k in keys:
        vals = [r["metrics"][k] for r in rows if r.get("metrics") and r["metrics"].get(k) is not None
                and np.isfinite(r["metrics"][k])]
        mean[k] = float(np.mean(vals)) if vals else None
    return {"files": rows, "mean": mean, "missing_estimates": sorted(set(refs) - set(ests))}
