"""The library facade: everything the CLI does, callable from Python.

    from archtool.api import restore_batch, restore_file, restore_audio
    batch = restore_batch("transfers", "restored")
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from archtool.engine.atomic import clean_tmp, write_text_atomic
from archtool.engine.batch import BatchResult, run_batch
from archtool.engine.devices import resolve_devices
from archtool.engine.settings import RestoreSettings
from archtool.report.writers import report_csv, report_json


def restore_batch(input_path: str | Path, out_dir: str | Path, settings: RestoreSettings | None = None, *,
                  jobs: int | None = None, resume: bool = True, dry_run: bool = False, devices: str = "auto",
                  scheduler: str | None = None, transfer: str = "auto", ship_limit_mb: float = 1024.0,
                  on_start: Callable | None = None,
                  on_result: Callable | None = None, on_event: Callable | None = None) -> BatchResult:
    """Restore a folder (or one file) into ``out_dir`` and write report.json / report.csv there.

    ``devices`` (auto | cpu | cuda:0,cuda:1) and ``jobs`` choose the local workers;
    ``scheduler`` (tcp://HOST:PORT) runs the files on a Dask cluster instead, each worker
    resolving ``devices`` on its own machine. ``transfer`` says how its workers reach the
    files: ``shared`` (a filesystem mounted at the same path everywhere), ``ship`` (each
    input's bytes sent through the cluster, outputs sent back; inputs over ``ship_limit_mb``
    fail with a message) or ``auto`` (``shared`` when every worker sees the files, else ``ship``).
    Returns the per-file results; never raises for a bad file (see ``result["status"]``).
    Raises UsageError for unusable paths (e.g. ``out_dir`` equal to the input folder).
    """
    settings = settings or RestoreSettings()
    resolved = [devices] if scheduler else resolve_devices(devices)
    batch = run_batch(input_path, out_dir, settings, jobs=jobs, resume=resume, dry_run=dry_run,
                      devices=resolved, scheduler=scheduler, transfer=transfer, ship_limit_mb=ship_limit_mb,
                      on_start=on_start, on_result=on_result,
                      on_event=on_event)
    out_dir = Path(out_dir)
    if not dry_run:
        write_text_atomic(out_dir / "report.json", report_json(batch.results, batch.skipped, settings.to_dict()), out_dir)
        write_text_atomic(out_dir / "report.csv", report_csv(batch.results), out_dir)
        clean_tmp(out_dir)
    return batch


def restore_file(path: str | Path, out_dir: str | Path, settings: RestoreSettings | None = None) -> dict[str, Any]:
    """Restore one file into ``out_dir``; returns its result dict (``status``, ``output``, loudness...)."""
    batch = restore_batch(path, out_dir, settings, jobs=1)
    return batch.results[0]


def restore_audio(audio: np.ndarray, sample_rate: int, steps: list | None = None, *,
                  normalize: bool = True, target_lufs: float = -23.0, true_peak_dbtp: float = -1.0,
                  device: str = "cpu", seed: int = 0) -> np.ndarray:
    """Restore in memory: apply ``steps`` (a list of Step) then loudness normalisation.

    ``audio`` is float32 ``(channels, samples)``; returns the same shape.
    """
    from archtool.audio.loudness import normalize_loudness
    from archtool.restore.chain import run_steps

    x = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    y = run_steps(x, sample_rate, steps or [], device, seed)
    if normalize:
        y, _, _ = normalize_loudness(y, sample_rate, target_lufs, true_peak_dbtp)
    return y
