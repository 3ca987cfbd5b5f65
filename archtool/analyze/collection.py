"""Analyse a collection: parallel over files, one result per file, and the analysis.json /
analysis.csv writers and collection summary of the ``archtool analyze`` contract.

analysis.json (DESIGN.md)::

    {"version": 1, "files": [{"path": "...", "duration_s": ..., "rate": ..., "channels": ...,
      "loudness_lufs": ..., "true_peak_dbtp": ..., "dc_offset": ..., "restoration_need": ...,
      "warnings": ["..."], "findings": [{"kind": "hum", "detected": true, "severity": 0.4, "confidence": 0.9,
                    "measures": {...}}, ...]}],
     "failed": [{"path": "...", "error": "..."}], "summary": {...}}

analysis.csv has one row per file (failed files too, with their error): the global
measures and warnings (joined by "; "), then for each kind ``<kind>_detected``, ``<kind>_severity``,
``<kind>_confidence`` and its scalar measures as ``<kind>_<measure>``.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from archtool.analyze.analyzer import analyze_file, restoration_need
from archtool.analyze.profile import Profile
from archtool.errors import ArchtoolError
from archtool.kinds import KINDS

ANALYSIS_VERSION = 1
THUMBNAIL_SECONDS = 30.0


@dataclass
class FileResult:
    """The outcome of analysing one file: a profile, or the one-line reason it failed."""

    path: str
    profile: Profile | None = None
    error: str | None = None
    thumbnail_png: bytes | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.profile is not None

    @property
    def need(self) -> float:
        return restoration_need(self.profile) if self.profile else 0.0


def _one(path: str, thumbnails: bool) -> FileResult:
    import time

    t0 = time.perf_counter()
    try:
        prof = analyze_file(path)
    except ArchtoolError as exc:
        return FileResult(path, error=str(exc), seconds=time.perf_counter() - t0)
    except (OSError, ValueError, MemoryError) as exc:  # unexpected decoder/OS trouble, reported per file
        return FileResult(path, error=f"{path}: {type(exc).__name__}: {exc}", seconds=time.perf_counter() - t0)
    png = None
    if thumbnails:
        try:
            from archtool.audio.io import read_audio
            from archtool.report.plots import spectrogram_png

            audio, sr = read_audio(path, duration_s=THUMBNAIL_SECONDS)
            png = spectrogram_png(audio, sr, width_px=360, height_px=110)
        except ArchtoolError:
            png = None
    return FileResult(path, profile=prof, thumbnail_png=png, seconds=time.perf_counter() - t0)


def analyze_paths(paths: Sequence[str | Path], *, jobs: int = 1, thumbnails: bool = False,
                  on_result: Callable[[FileResult], None] | None = None) -> list[FileResult]:
    """Analyse ``paths`` over ``jobs`` worker processes (joblib); results in input order.

    A file that cannot be read becomes a FileResult with ``error`` set; the others go on.
    """
    paths = [str(p) for p in paths]
    results: list[FileResult] = []
    if jobs <= 1 or len(paths) <= 1:
        for p in paths:
            res = _one(p, thumbnails)
            results.append(res)
            if on_result:
                on_result(res)
        return results
    from joblib import Parallel, delayed

    par = Parallel(n_jobs=jobs, return_as="generator", batch_size=1)
    for res in par(delayed(_one)(p, thumbnails) for p in paths):
        results.append(res)
        if on_result:
            on_result(res)
    return results


def file_record(res: FileResult) -> dict[str, Any]:
    """The analysis.json entry of one analysed file."""
    p = res.profile
    assert p is not None
    d = p.to_dict()
    return {
        "path": res.path, "duration_s": d["duration_s"], "rate": d["sample_rate"], "channels": d["channels"],
        "loudness_lufs": d["loudness_lufs"], "true_peak_dbtp": d["true_peak_dbtp"], "dc_offset": d["dc_offset"],
        "restoration_need": round(res.need, 4), "profile_version": d["version"], "warnings": d["warnings"],
        "findings": d["findings"],
    }


def summary(results: Sequence[FileResult]) -> dict[str, Any]:
    """Counts per kind, failures, and files ranked by restoration need (highest first)."""
    ok = [r for r in results if r.ok]
    counts = {k: sum(1 for r in ok if r.profile.detected(k)) for k in KINDS}
    ranked = sorted(ok, key=lambda r: -r.need)
    return {
        "files": len(results), "analysed": len(ok), "failed": len(results) - len(ok),
        "audio_hours": round(sum(r.profile.duration_s for r in ok) / 3600.0, 4),
        "counts": counts,
        "ranking": [{"path": r.path, "restoration_need": round(r.need, 4),
                     "detected": [f.kind for f in r.profile.findings if f.detected]} for r in ranked],
    }


def analysis_json(results: Sequence[FileResult]) -> dict[str, Any]:
    return {
        "version": ANALYSIS_VERSION,
        "files": [file_record(r) for r in results if r.ok],
        "failed": [{"path": r.path, "error": r.error} for r in results if not r.ok],
        "summary": summary(results),
    }


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (int, float, str, bool))


def csv_columns(results: Iterable[FileResult]) -> list[str]:
    cols = ["path", "status", "error", "duration_s", "rate", "channels", "loudness_lufs", "true_peak_dbtp",
            "dc_offset", "restoration_need", "warnings"]
    extra: dict[str, list[str]] = {k: [] for k in KINDS}
    for r in results:
        if not r.ok:
            continue
        for f in r.profile.findings:
            for m, v in f.measures.items():
                if _scalar(v) and m not in extra[f.kind]:
                    extra[f.kind].append(m)
    for k in KINDS:
        cols += [f"{k}_detected", f"{k}_severity", f"{k}_confidence"] + [f"{k}_{m}" for m in extra[k]]
    return cols


def analysis_csv(results: Sequence[FileResult]) -> str:
    cols = csv_columns(results)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in results:
        row: dict[str, Any] = {"path": r.path, "status": "ok" if r.ok else "failed", "error": r.error or ""}
        if r.ok:
            p = r.profile
            row.update(duration_s=p.duration_s, rate=p.sample_rate, channels=p.channels,
                       loudness_lufs=p.loudness_lufs, true_peak_dbtp=p.true_peak_dbtp, dc_offset=p.dc_offset,
                       restoration_need=round(r.need, 4), warnings="; ".join(p.warnings))
            for f in p.findings:
                row[f"{f.kind}_detected"] = int(f.detected)
                row[f"{f.kind}_severity"] = round(f.severity, 4)
                row[f"{f.kind}_confidence"] = round(f.confidence, 4)
                for m, v in f.measures.items():
                    if _scalar(v):
                        row[f"{f.kind}_{m}"] = v
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def write_outputs(results: Sequence[FileResult], report_dir: str | Path) -> dict[str, Path]:
    """Write analysis.json, analysis.csv and report.html into ``report_dir`` (atomically)."""
    from archtool.report.analysis_html import render_html

    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "analysis.json": json.dumps(analysis_json(results), indent=1, allow_nan=False),
        "analysis.csv": analysis_csv(results),
        "report.html": render_html(results),
    }
    written = {}
    for name, text in files.items():
        tmp = out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out / name)
        written[name] = out / name
    return written
