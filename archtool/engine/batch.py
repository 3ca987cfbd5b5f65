"""Run a restore batch: scan, resume from the manifest, process files in parallel, record.

Files are independent: each is processed by :func:`restore_job` (which wraps
:func:`archtool.engine.pipeline.process_file` with the out-of-memory fallback) either in
this process (one worker), in a pool of device workers (:mod:`archtool.engine.workers`:
one process per GPU, ``--jobs`` processes on CPU), or on a Dask cluster
(:mod:`archtool.engine.distributed`). Largest files start first so uneven durations
balance. This process alone writes the manifest, after each file, so it is always
valid; Ctrl-C abandons the files in flight (their temporary files are removed) and the
next run resumes from the manifest.
"""
from __future__ import annotations

import dataclasses
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, Sequence

from archtool.engine.atomic import clean_tmp
from archtool.engine.devices import free_device_memory, is_out_of_memory
from archtool.engine.manifest import Manifest
from archtool.engine.pipeline import Job, process_file
from archtool.engine.scan import Candidate, Skipped, scan
from archtool.engine.settings import RestoreSettings
from archtool.engine.workers import Slot, TaskLost, WorkerEvent, WorkerPool, plan_slots, set_thread_budget
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


# Chunk sizes tried after an out-of-memory error, as fractions of the configured block.
OOM_CHUNK_FRACTIONS = (1 / 4, 1 / 16)
MIN_OOM_CHUNK_S = 0.25


def restore_job(job: Job, settings: RestoreSettings, out_dir: Path, *, dry_run: bool = False,
                resume: bool = True, device: str = "cpu") -> dict[str, Any]:
    """Restore one file on ``device``; a device out-of-memory error is never fatal.

    On ``torch.OutOfMemoryError`` the file is retried with smaller chunks (a quarter, then
    a sixteenth of ``settings.block_s``, not below 0.25 s), then on the CPU at the
    configured size. Block size changes memory, not samples: every restorer works on the file's
    own grid, so the output is the same (to float rounding), except where a step estimates
    the noise from its chunk because the plan gave it no noise spectrum (the Op-GAN fusion's
    internal denoiser: about -40 dB of difference between 3.7 s blocks and one pass).
    Each retry is recorded in the result's ``notes``; ``result["device"]`` says where the
    file was finally processed. When even the CPU runs out, the file fails with that reason.
    """
    attempts = [(device, settings.block_s)]
    for frac in OOM_CHUNK_FRACTIONS:
        smaller = max(MIN_OOM_CHUNK_S, settings.block_s * frac)
        if smaller < attempts[-1][1]:
            attempts.append((device, smaller))
    if device != "cpu":
        attempts.append(("cpu", settings.block_s))
    notes: list[str] = []
    for k, (dev, block_s) in enumerate(attempts):
        run_settings = settings if block_s == settings.block_s else dataclasses.replace(settings, block_s=block_s)
        try:
            result = process_file(job, run_settings, out_dir, dry_run=dry_run, resume=resume, device=dev)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            free_device_memory(dev)
            if k + 1 < len(attempts):
                nxt_dev, nxt_block = attempts[k + 1]
                how = f"with {nxt_block:g} s chunks" if nxt_dev == dev else f"on {nxt_dev}"
                notes.append(f"out of memory on {dev} with {block_s:g} s chunks; retried {how}")
                continue
            notes.append(f"out of memory on {dev} with {block_s:g} s chunks")
            return {"input": job.relpath, "path": str(job.path), "status": "failed", "device": dev,
                    "error": f"{job.path}: out of memory ({'; '.join(notes)})", "notes": notes}
        result["notes"] = notes + list(result.get("notes") or [])
        result["device"] = dev
        return result
    raise AssertionError("unreachable: the attempt list is never empty")


def restore_task(payload: tuple, device: str) -> dict[str, Any]:
    """Worker-pool / cluster entry point: ``payload`` = (job, settings, out_dir, dry_run, resume)."""
    job, settings, out_dir, dry_run, resume = payload
    return restore_job(job, settings, Path(out_dir), dry_run=dry_run, resume=resume, device=device)


def lost_result(job: Job, reason: str) -> dict[str, Any]:
    """The failed result of a file whose worker died (or that the pool could not run)."""
    return {"input": job.relpath, "path": str(job.path), "status": "failed", "error": f"{job.path}: {reason}",
            "notes": []}


@dataclass
class PreparedBatch:
    """A scanned batch: the jobs (largest first), what the scan skipped, and the manifest."""

    jobs: list[Job]
    weights: list[float]
    skipped: list[Skipped]
    manifest: Manifest
    out_dir: Path


def prepare_batch(input_path: str | Path, out_dir: str | Path) -> PreparedBatch:
    """Check paths, scan (largest first), create OUT_DIR, clear stale temporaries, load the manifest."""
    input_path, out_dir = Path(input_path), Path(out_dir)
    check_paths(input_path, out_dir)
    candidates, skipped = scan(input_path, exclude=out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_tmp(out_dir)
    manifest = Manifest(out_dir)
    stems = output_stems(candidates)
    jobs = [Job(c.path, c.relpath, stems[c.relpath], manifest.get(c.relpath)) for c in candidates]
    return PreparedBatch(jobs, [float(c.size) for c in candidates], skipped, manifest, out_dir)


class Recorder:
    """Collects results in the parent and writes the manifest entry of each as it arrives."""

    KEEP = ("input_sha256", "settings_hash", "output", "output_sha256", "status", "error", "sidecar")

    def __init__(self, batch: BatchResult, manifest: Manifest, dry_run: bool,
                 on_result: Callable[[dict[str, Any]], None] | None):
        self.batch, self.manifest, self.dry_run, self.on_result = batch, manifest, dry_run, on_result

    def __call__(self, res: dict[str, Any]) -> None:
        self.batch.results.append(res)
        if not self.dry_run and res["status"] in ("ok", "failed", "done"):
            entry = {k: res.get(k) for k in self.KEEP}
            if res["status"] == "done":
                entry["status"] = "ok"
            self.manifest.record(res["input"], entry)
        if self.on_result:
            self.on_result(res)


def batch_slots(devices: Sequence[str], jobs: int | None, n_files: int, cores: int | None = None) -> list[Slot]:
    """Worker slots for a batch of ``n_files``: never more workers than files, threads re-shared."""
    cores = max(1, cores or os.cpu_count() or 1)
    slots = plan_slots(devices, jobs, cores)[: max(1, n_files)]
    threads = max(1, cores // len(slots))
    return [Slot(s.device, threads) for s in slots]


def _run_local(prep: PreparedBatch, settings: RestoreSettings, slots: list[Slot], dry_run: bool, resume: bool,
               on_event: Callable[[WorkerEvent], None] | None) -> Iterator[dict[str, Any]]:
    """Results of every job, in completion order, from this process or a worker pool."""
    payloads = [(job, settings, prep.out_dir, dry_run, resume) for job in prep.jobs]
    if len(slots) == 1:  # one worker: run here (no process start-up, same code path)
        slot = slots[0]
        set_thread_budget(slot.threads)
        for index, payload in enumerate(payloads):
            if on_event:
                on_event(WorkerEvent("start", 0, slot.device, os.getpid(), index))
            res = restore_task(payload, slot.device)
            if on_event:
                on_event(WorkerEvent("done", 0, slot.device, os.getpid(), index, result=res))
            yield res
        return
    with WorkerPool(slots, restore_task) as pool:
        for index, res in pool.map_unordered(payloads, prep.weights, on_event):
            yield lost_result(prep.jobs[index], str(res)) if isinstance(res, TaskLost) else res


def run_batch(input_path: str | Path, out_dir: str | Path, settings: RestoreSettings, *,
              jobs: int | None = None, resume: bool = True, dry_run: bool = False,
              devices: Sequence[str] | str | None = None, device: str | None = None,
              scheduler: str | None = None, transfer: str = "auto", ship_limit_mb: float = 1024.0,
              on_start: Callable[[list[Job]], None] | None = None,
              on_result: Callable[[dict[str, Any]], None] | None = None,
              on_event: Callable[[WorkerEvent], None] | None = None) -> BatchResult:
    """Restore every audio file under ``input_path`` into ``out_dir`` (mirroring sub-folders).

    Args:
        jobs: CPU worker processes (default: all cores); torch threads per worker are set
            so ``workers * threads <= cores``.
        devices: resolved device names (``["cpu"]``, ``["cuda:0", "cuda:1"]``): one worker
            per GPU, ``jobs`` workers for ``cpu``. ``device`` is the one-device shorthand.
        scheduler: ``tcp://HOST:PORT`` of a Dask scheduler: run the files on that cluster.
        transfer / ship_limit_mb: how cluster workers reach the files (``auto`` | ``shared``
            | ``ship``) and the largest input sent through the cluster; see
            :mod:`archtool.engine.distributed`.
        resume: skip files the manifest shows done with the same input and settings.
        dry_run: plan only; no audio is written.
        on_start / on_result / on_event: progress callbacks, called in this process
            (``on_event`` gets per-worker :class:`WorkerEvent` s: which file runs where).
    """
    if isinstance(devices, str):
        devices = [d.strip() for d in devices.split(",") if d.strip()]
    devices = list(devices or ([device] if device else ["cpu"]))
    prep = prepare_batch(input_path, out_dir)
    if on_start:
        on_start(prep.jobs)
    batch = BatchResult(skipped=prep.skipped)
    record = Recorder(batch, prep.manifest, dry_run, on_result)
    results: Any = iter(())
    try:
        if scheduler:
            from archtool.engine.distributed import run_on_cluster

            results = run_on_cluster(scheduler, prep, settings, dry_run=dry_run, resume=resume,
                                     devices=devices, on_event=on_event, transfer=transfer,
                                     ship_limit_mb=ship_limit_mb)
        else:
            results = _run_local(prep, settings, batch_slots(devices, jobs, len(prep.jobs)), dry_run, resume, on_event)
        try:
            for res in results:
                record(res)
        finally:
            results.close()  # stop workers still busy (e.g. after Ctrl-C) before clearing their temporaries
    finally:
        clean_tmp(prep.out_dir)
    batch.results.sort(key=lambda r: r["input"])
    return batch
