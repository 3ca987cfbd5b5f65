"""Run a restore batch: scan, resume from the manifest, process files in parallel, record.

Files are independent: each is processed by :func:`archtool.engine.pipeline.process_file`
in a worker process (joblib/loky), largest first so uneven durations balance; the
parent alone writes the manifest, after each file, so it is always valid.
"""
from __future__ import annotations

import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from archtool.engine.atomic import clean_tmp
from archtool.engine.manifest import Manifest
from archtool.engine.pipeline import Job, process_file
from archtool.engine.scan import Candidate, Skipped, scan
from archtool.engine.settings import RestoreSettings
from archtool.errors import UsageError


@dataclass
class BatchResult:
    results: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r["status"] == "failed"]


def check_paths(input_path: Path, out_dir: Path) -> None:
    """Refuse output locations that could touch the originals (UsageError, exit 2)."""
    if not input_path.exists():
        raise UsageError(f"{input_path}: no such file or folder")
    inp, out = input_path.resolve(), out_dir.resolve()
    if out == inp or (input_path.is_file() and out == inp.parent):
        raise UsageError(f"{out_dir}: the output folder must differ from the input folder "
                         "(outputs never go next to the originals); choose e.g. -o restored")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out_dir}: exists and is not a folder")


def output_stems(candidates: list[Candidate]) -> dict[str, str]:
    """Output path (relative, no extension) per input; inputs sharing a folder and stem
    (``a.wav`` and ``a.mp3``) keep their extension in the name so nothing collides."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for c in candidates:
        p = PurePosixPath(c.relpath)
        groups[(str(p.parent), p.stem.lower())].append(c.relpath)
    stems: dict[str, str] = {}
    for (_, _), rels in groups.items():
        for rel in rels:
            p = PurePosixPath(rel)
            stem = p.stem if len(rels) == 1 else f"{p.stem}_{p.suffix.lstrip('.').lower()}"
            stems[rel] = str(p.with_name(stem))
    return stems


def _worker(job: Job, settings: RestoreSettings, out_dir: Path, dry_run: bool, resume: bool,
            device: str, threads: int) -> dict[str, Any]:
    threads = max(1, threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch when a restorer first imports it
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return process_file(job, settings, out_dir, dry_run=dry_run, resume=resume, device=device)


def run_batch(input_path: str | Path, out_dir: str | Path, settings: RestoreSettings, *,
              jobs: int | None = None, resume: bool = True, dry_run: bool = False, device: str = "cpu",
              on_start: Callable[[list[Job]], None] | None = None,
              on_result: Callable[[dict[str, Any]], None] | None = None) -> BatchResult:
    """Restore every audio file under ``input_path`` into ``out_dir`` (mirroring sub-folders).

    Args:
        jobs: worker processes (default: all cores); torch threads per worker are set so
            ``jobs * threads <= cores``.
        resume: skip files the manifest shows done with the same input and settings.
        dry_run: plan only; no audio is written.
        on_start / on_result: progress callbacks (called in this process).
    """
    input_path, out_dir = Path(input_path), Path(out_dir)
    check_paths(input_path, out_dir)
    candidates, skipped = scan(input_path, exclude=out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_tmp(out_dir)
    manifest = Manifest(out_dir)
    stems = output_stems(candidates)
    job_list = [Job(c.path, c.relpath, stems[c.relpath], manifest.get(c.relpath)) for c in candidates]
    if on_start:
        on_start(job_list)
    cores = os.cpu_count() or 1
    n_jobs = max(1, min(jobs or cores, len(job_list) or 1))
    threads = max(1, cores // n_jobs)
    batch = BatchResult(skipped=skipped)

    def record(res: dict[str, Any]) -> None:
        batch.results.append(res)
        if not dry_run and res["status"] in ("ok", "failed", "done"):
            keep = ("input_sha256", "settings_hash", "output", "output_sha256", "status", "error", "sidecar")
            entry = {k: res.get(k) for k in keep}
            if res["status"] == "done":
                entry["status"] = "ok"
            manifest.record(res["input"], entry)
        if on_result:
            on_result(res)

    try:
        if n_jobs == 1:
            for job in job_list:
                record(_worker(job, settings, out_dir, dry_run, resume, device, threads))
        else:
            from joblib import Parallel, delayed

            parallel = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered")
            for res in parallel(delayed(_worker)(j, settings, out_dir, dry_run, resume, device, threads)
                                for j in job_list):
                record(res)
    finally:
        clean_tmp(out_dir)
    batch.results.sort(key=lambda r: r["input"])
    return batch
