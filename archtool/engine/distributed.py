"""Run a batch's per-file jobs on a Dask distributed cluster (``--scheduler tcp://HOST:PORT``).

The jobs are the same as a local run's (:func:`archtool.engine.batch.restore_task`), so
the outputs are the same bytes: per-file seeds come from the relative path, never from
the worker. Every Dask worker process keeps its restorer instances (models loaded
once per worker, through the registry's per-process cache) and resolves the device
spec on its own machine (``auto``: its first visible GPU, else the CPU; start one
worker per GPU with ``CUDA_VISIBLE_DEVICES``). Larger files get higher priority, so
they start first.

The client (this process) gathers the results and writes the manifest, exactly as a
local run does, so ``--resume`` works the same. A worker lost mid-file (crash,
SIGKILL, machine gone) has its file rescheduled elsewhere by the Dask scheduler;
outputs are written atomically, so the lost attempt leaves nothing behind.

Inputs and OUT_DIR are reached through a shared filesystem, at the same absolute path
on every machine; the client checks this on every worker before submitting anything.
Shipping audio bytes through the cluster (for machines without a shared filesystem)
is not implemented.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from archtool.engine.settings import RestoreSettings
from archtool.engine.workers import WorkerEvent
from archtool.errors import UsageError

_WORKER_DEVICE: dict[str, str] = {}


def worker_device(spec: str) -> str:
    """The device this worker process uses for ``spec`` (resolved once per process)."""
    if spec not in _WORKER_DEVICE:
        from archtool.engine.devices import resolve_devices

        _WORKER_DEVICE[spec] = resolve_devices(spec)[0]
    return _WORKER_DEVICE[spec]


def cluster_task(payload: tuple, device_spec: str) -> dict[str, Any]:
    """What a Dask worker runs for one file: the local engine's task on this worker's device."""
    from archtool.engine.batch import restore_task

    result = restore_task(payload, worker_device(device_spec))
    try:
        from distributed import get_worker

        result["worker"] = get_worker().address
    except (ImportError, ValueError):
        pass
    return result


def _check_shared_paths(client: Any, paths: Sequence[str]) -> None:
    """UsageError unless every worker sees every path in ``paths`` (the shared filesystem)."""
    missing = client.run(lambda ps: [p for p in ps if not os.path.exists(p)], list(paths))
    bad = {addr: miss for addr, miss in missing.items() if miss}
    if bad:
        addr, miss = next(iter(bad.items()))
        raise UsageError(f"Dask worker {addr} cannot see {miss[0]}: inputs and the output folder must be on a "
                         "filesystem shared by every worker, at the same path")


def connect(address: str, timeout_s: float = 20.0) -> Any:
    """A dask.distributed Client for ``address``; UsageError when it cannot connect."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise UsageError("--scheduler needs dask.distributed: pip install 'archtool[cluster]'") from exc
    try:
        return Client(address, timeout=f"{timeout_s}s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"--scheduler {address}: cannot connect to a Dask scheduler ({exc})") from exc


def run_on_cluster(address: str | Any, prep: Any, settings: RestoreSettings, *, dry_run: bool = False,
                   resume: bool = True, devices: Sequence[str] = ("auto",),
                   on_event: Callable[[WorkerEvent], None] | None = None) -> Iterator[dict[str, Any]]:
    """Results of every job of ``prep`` (a :class:`~archtool.engine.batch.PreparedBatch`), as
    they complete on the cluster at ``address`` (or through an existing Client).

    A file whose worker died more often than the scheduler allows
    (``distributed.scheduler.allowed-failures``) comes back failed with that reason.
    Closing the generator (Ctrl-C) cancels every file not yet finished.
    """
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    from archtool.engine.batch import lost_result

    own_client = isinstance(address, str)
    client = connect(address) if own_client else address
    futures: list[Any] = []
    try:
        out_dir = str(Path(prep.out_dir).resolve())
        jobs = [dataclasses.replace(j, path=Path(j.path).resolve()) for j in prep.jobs]
        if jobs:
            _check_shared_paths(client, [out_dir, str(jobs[0].path)])
        spec = ",".join(devices) if devices else "auto"
        if "," in spec:
            spec = spec.split(",")[0]  # a Dask worker uses one device: start one worker per GPU
        order = sorted(range(len(jobs)), key=lambda k: (-prep.weights[k], k))
        rank = {k: len(jobs) - r for r, k in enumerate(order)}
        index_of: dict[str, int] = {}
        for k in order:
            fut = client.submit(cluster_task, (jobs[k], settings, out_dir, dry_run, resume), spec, pure=False,
                                priority=rank[k], key=f"archtool-{jobs[k].relpath}-{os.urandom(6).hex()}")
            futures.append(fut)
            index_of[fut.key] = k
        for fut in as_completed(futures, loop=client.loop):
            k = index_of[fut.key]
            try:
                res = fut.result()
            except KilledWorker as exc:
                res = lost_result(jobs[k], f"every Dask worker that ran it died ({exc})")
            except Exception as exc:  # the task itself should not raise; keep the batch going
                res = lost_result(jobs[k], f"cluster error ({type(exc).__name__}: {exc})")
            res["path"] = str(prep.jobs[k].path)
            if on_event is not None:
                on_event(WorkerEvent("done", 0, res.get("worker", "cluster"), None, k, result=res))
            yield res
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
        if own_client:
            client.close()
