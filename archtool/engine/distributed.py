"""Run a batch's per-file jobs on a Dask distributed cluster (``--scheduler tcp://HOST:PORT``).

The jobs are the same as a local run's (:func:`archtool.engine.batch.restore_job`), so
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

How inputs and outputs are reached (``transfer``):

* ``shared``: through a filesystem every worker mounts at the same path as the client.
  The worker reads the input and writes the output atomically into OUT_DIR itself.
* ``ship``: no shared filesystem. The client reads each input's bytes and sends them
  inside the file's task; the worker writes them to a private temporary folder (in its
  Dask local directory), checks their sha256, restores there, and sends back the output
  (and residual) bytes, the sidecar and the result; the client checks the output's
  sha256 and writes everything atomically into OUT_DIR. The client decides ``--resume``
  itself (input sha256, settings hash, output present) before sending anything. A
  preset file and a gap list are sent along (the gap list reduced to the file's own
  intervals), so plans, and so outputs, are the same bytes as a local run.
* ``auto`` (default): ``shared`` when every connected worker reads a marker file the
  client just wrote into OUT_DIR and sees every input at the same path and size,
  otherwise ``ship``.

Memory when shipping: a file is sent whole, as one message; inputs larger than
``ship_limit_mb`` (default 1024 MB) are refused with a message naming the file and the
limit (raise the limit, or use a shared filesystem), never split. The client keeps at
most one file per worker thread plus one per worker in flight, and at most twice the
limit in bytes (always at least one file), so the client and the scheduler hold a
bounded amount of audio whatever the size of the collection. The output comes back
whole too: its size follows the output format (e.g. a FLAC input restored to 24-bit WAV
comes back two to three times larger).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import uuid
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, Sequence

from archtool.engine.settings import RestoreSettings
from archtool.engine.workers import WorkerEvent
from archtool.errors import ArchtoolError, UsageError

TRANSFERS = ("auto", "shared", "ship")
DEFAULT_SHIP_LIMIT_MB = 1024.0

_WORKER_DEVICE: dict[str, str] = {}


def worker_device(spec: str) -> str:
    """The device this worker process uses for ``spec`` (resolved once per process)."""
    if spec not in _WORKER_DEVICE:
        from archtool.engine.devices import resolve_devices

        _WORKER_DEVICE[spec] = resolve_devices(spec)[0]
    return _WORKER_DEVICE[spec]


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None


def cluster_task(payload: tuple, device_spec: str) -> dict[str, Any]:
    """What a Dask worker runs for one file on a shared filesystem: the local engine's task
    on this worker's device."""
    from archtool.engine.batch import restore_task

    result = restore_task(payload, worker_device(device_spec))
    address = _worker_address()
    if address:
        result["worker"] = address
    return result


# -- shipping bytes -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shipment:
    """One file's job with its bytes, for a worker that cannot see the client's files.

    ``origin`` is the input path on the client (for messages); ``settings_hash`` is the
    client's hash of ``settings`` (the worker's copy names temporary preset/gap files);
    ``preset_text`` / ``gaps_text`` are the contents of the preset file and of the file's
    rows of the gap list (None when not used).
    """

    relpath: str
    out_stem: str
    origin: str
    data: bytes
    input_sha256: str
    settings: RestoreSettings
    settings_hash: str
    preset_text: str | None
    gaps_text: str | None
    dry_run: bool


def _scratch_dir() -> str:
    """This Dask worker's local directory (its scratch space), else the system temporary folder."""
    try:
        from distributed import get_worker

        return str(get_worker().local_directory)
    except (ImportError, ValueError, AttributeError):
        return tempfile.gettempdir()


def _safe_rel(rel: str) -> PurePosixPath:
    """``rel`` as a relative path that stays inside its root; ValueError otherwise."""
    p = PurePosixPath(rel)
    if p.is_absolute() or not p.parts or ".." in p.parts:
        raise ValueError(f"unsafe relative path {rel!r}")
    return p


def _replace_text(value: Any, renames: dict[str, str]) -> Any:
    """``value`` with every string (also inside lists and dicts) rid of the worker's temporary paths."""
    if isinstance(value, str):
        for old, new in renames.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [_replace_text(v, renames) for v in value]
    if isinstance(value, dict):
        return {k: _replace_text(v, renames) for k, v in value.items()}
    return value


def restore_shipped(ship: Shipment, device: str) -> dict[str, Any]:
    """Restore a shipped file in a private temporary folder on ``device``.

    Returns the job's result (paths as on the client) with ``files``: relative output
    path -> bytes, the audio first and the sidecar last, for the client to write.
    The temporary folder is removed whatever happens.
    """
    from archtool.engine.atomic import sha256_file
    from archtool.engine.batch import restore_job
    from archtool.engine.pipeline import SIDECAR_SUFFIX, Job

    root = Path(tempfile.mkdtemp(prefix="archtool-ship-", dir=_scratch_dir()))
    try:
        src = root / "in" / _safe_rel(ship.relpath)
        src.parent.mkdir(parents=True)
        src.write_bytes(ship.data)
        renames = {str(src): ship.origin}
        if sha256_file(src) != ship.input_sha256:
            return {"input": ship.relpath, "path": ship.origin, "status": "failed", "notes": [],
                    "error": f"{ship.origin}: bytes damaged on the way to the worker (sha256 differs)"}
        settings = ship.settings
        if ship.preset_text is not None:
            preset = root / "preset" / Path(ship.settings.preset).name
            preset.parent.mkdir()
            preset.write_text(ship.preset_text, encoding="utf-8")
            settings = dataclasses.replace(settings, preset=str(preset))
            renames[str(preset)] = ship.settings.preset
        if ship.gaps_text is not None and ship.settings.gaps_file:
            gaps = root / "gaps" / Path(ship.settings.gaps_file).name
            gaps.parent.mkdir()
            gaps.write_text(ship.gaps_text, encoding="utf-8")
            settings = dataclasses.replace(settings, gaps_file=str(gaps))
            renames[str(gaps)] = ship.settings.gaps_file
        else:
            settings = dataclasses.replace(settings, gaps_file=None)
        renames[str(root)] = "(worker temporary folder)"
        out = root / "out"
        out.mkdir()
        result = restore_job(Job(src, ship.relpath, ship.out_stem, None), settings, out,
                             dry_run=ship.dry_run, resume=False, device=device)
        files: dict[str, bytes] = {}
        if result.get("status") == "ok":
            for key in ("output", "residual"):
                if result.get(key):
                    files[result[key]] = (out / result[key]).read_bytes()
            sidecar_rel = result.get("sidecar") or ship.out_stem + SIDECAR_SUFFIX
            sidecar = json.loads((out / sidecar_rel).read_text(encoding="utf-8"))
            sidecar = _replace_text(sidecar, renames)
            sidecar.update(settings=ship.settings.to_dict(), settings_hash=ship.settings_hash)
            files[sidecar_rel] = (json.dumps(sidecar, indent=2) + "\n").encode("utf-8")
        result = _replace_text(result, renames)
        result["path"] = ship.origin
        if "settings_hash" in result:
            result["settings_hash"] = ship.settings_hash
        result["files"] = files
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


def shipped_task(ship: Shipment, device_spec: str) -> dict[str, Any]:
    """What a Dask worker runs for one shipped file."""
    result = restore_shipped(ship, worker_device(device_spec))
    address = _worker_address()
    if address:
        result["worker"] = address
    return result


def _gap_rows(gaps_file: str, path: Path) -> str:
    """The gap list's intervals for ``path`` as ``start,end`` rows (what the planner would use)."""
    from archtool.restore.gaplist import read_gap_list

    rows = read_gap_list(gaps_file).intervals_for(path)
    return "".join(f"{a!r},{b!r}\n" for a, b in rows)


def _preset_text(preset: str) -> str | None:
    """The text of ``preset`` when it names a readable file (as ``load_preset`` decides), else None."""
    p = Path(preset)
    if (p.suffix.lower() == ".toml" or p.exists()) and p.is_file():
        try:
            return p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None  # the worker's load_preset reports it, naming the file
    return None


def _failed(job: Any, reason: str) -> dict[str, Any]:
    return {"input": job.relpath, "path": str(job.path), "status": "failed", "error": f"{job.path}: {reason}",
            "notes": [], "transfer": "ship"}


def _done_here(job: Any, input_sha: str, settings_hash: str, out_dir: Path) -> dict[str, Any] | None:
    """The ``done`` result when the manifest shows ``job`` restored with these settings (resume)."""
    from archtool.audio.io import probe
    from archtool.engine.manifest import is_done, resumed_figures

    if not is_done(job.previous, input_sha, settings_hash, out_dir):
        return None
    result: dict[str, Any] = {"input": job.relpath, "path": str(job.path), "notes": []}
    try:
        info = probe(job.path)
        result.update(duration_s=round(info.duration_s, 3), sample_rate=info.sample_rate,
                      channels=info.channels, codec=info.codec, bits=info.bits_per_sample)
    except ArchtoolError:
        return None  # let the worker report the problem
    result.update({k: v for k, v in job.previous.items() if k not in result})
    result.update(resumed_figures(out_dir, job.previous))
    result.update(status="done", error=None, input_sha256=input_sha, settings_hash=settings_hash,
                  time_s=0.0, transfer="ship")
    return result


def write_shipped(result: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Write a shipped result's ``files`` atomically into ``out_dir`` (audio first, sidecar
    last), after checking the output's sha256; returns the result without the bytes."""
    from archtool.engine.atomic import atomic_path

    files: dict[str, bytes] = result.pop("files", None) or {}
    result["transfer"] = "ship"
    if result.get("output") in files:
        got = hashlib.sha256(files[result["output"]]).hexdigest()
        if got != result.get("output_sha256"):
            result.update(status="failed", error=f"{result['path']}: output bytes damaged on the way back "
                                                 "from the worker (sha256 differs)")
            return result
    for rel, data in files.items():
        with atomic_path(out_dir / _safe_rel(rel), out_dir) as tmp:
            tmp.write_bytes(data)
    return result


# -- choosing how files are reached ---------------------------------------------------------------
def _look(marker: str, token: str, inputs: list[tuple[str, int]]) -> str | None:
    """Run on each worker: None when it reads ``marker`` == ``token`` and sees every input at its size."""
    try:
        if Path(marker).read_text(encoding="utf-8") != token:
            return f"{marker} has other contents"
    except OSError:
        return f"cannot read {Path(marker).parent.parent}"
    for path, size in inputs:
        try:
            if os.path.getsize(path) != size:
                return f"{path} has another size"
        except OSError:
            return f"cannot see {path}"
    return None


def shared_fs_problem(client: Any, out_dir: Path, inputs: Sequence[tuple[Path, int]]) -> tuple[str, str] | None:
    """``(worker, problem)`` for the first worker that does not share the client's files, else None.

    The client writes a random marker into OUT_DIR's temporary folder; every worker must
    read it back and see every input (``(path, size in bytes)``) at the same path and size.
    """
    from archtool.engine.atomic import tmp_dir

    token = uuid.uuid4().hex
    marker = tmp_dir(out_dir) / f"shared-check-{token}"
    marker.write_text(token, encoding="utf-8")
    try:
        answers = client.run(_look, str(marker), token, [(str(p), int(n)) for p, n in inputs])
    finally:
        marker.unlink(missing_ok=True)
    for address, problem in sorted(answers.items()):
        if problem:
            return address, problem
    return None


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


def _choose_transfer(client: Any, transfer: str, out_dir: Path, inputs: Sequence[tuple[Path, int]],
                     wait_s: float) -> str:
    """``shared`` or ``ship`` for this run (see the module docstring)."""
    if transfer not in TRANSFERS:
        raise UsageError(f"transfer must be one of {', '.join(TRANSFERS)}, not {transfer!r}")
    if transfer == "ship" or not inputs:
        return "ship" if transfer == "ship" else "shared"
    try:
        client.wait_for_workers(1, timeout=wait_s)
    except TimeoutError as exc:
        raise UsageError(f"no Dask worker joined the scheduler within {wait_s:g} s; start workers first") from exc
    problem = shared_fs_problem(client, out_dir, inputs)
    if problem is None:
        return "shared"
    if transfer == "shared":
        address, what = problem
        raise UsageError(f"Dask worker {address} {what}: with transfer 'shared' the inputs and the output folder "
                         "must be on a filesystem shared by every worker, at the same path (or use transfer "
                         "'ship' / 'auto' to send the bytes through the cluster)")
    return "ship"


def _window(client: Any) -> int:
    """Files to keep in flight when shipping: one per worker thread plus one per worker."""
    nthreads = client.nthreads()
    return max(1, sum(nthreads.values()) + len(nthreads))


def run_on_cluster(address: str | Any, prep: Any, settings: RestoreSettings, *, dry_run: bool = False,
                   resume: bool = True, devices: Sequence[str] = ("auto",),
                   on_event: Callable[[WorkerEvent], None] | None = None, transfer: str = "auto",
                   ship_limit_mb: float = DEFAULT_SHIP_LIMIT_MB,
                   wait_for_workers_s: float = 120.0) -> Iterator[dict[str, Any]]:
    """Results of every job of ``prep`` (a :class:`~archtool.engine.batch.PreparedBatch`), as
    they complete on the cluster at ``address`` (or through an existing Client).

    ``transfer``: ``auto`` | ``shared`` | ``ship`` (module docstring); each result says
    which in ``result["transfer"]``. ``ship_limit_mb``: the largest input sent through the
    cluster. A file whose worker died more often than the scheduler allows
    (``distributed.scheduler.allowed-failures``) comes back failed with that reason.
    Closing the generator (Ctrl-C) cancels every file not yet finished.
    """
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    from archtool.engine.batch import lost_result

    own_client = isinstance(address, str)
    client = connect(address) if own_client else address
    futures: dict[str, tuple[Any, int, int]] = {}  # key -> (future, job index, bytes shipped)
    try:
        out_dir = Path(prep.out_dir).resolve()
        jobs = [dataclasses.replace(j, path=Path(j.path).resolve()) for j in prep.jobs]
        mode = _choose_transfer(client, transfer, out_dir, [(j.path, w) for j, w in zip(jobs, prep.weights)],
                                wait_for_workers_s)
        spec = ",".join(devices) if devices else "auto"
        if "," in spec:
            spec = spec.split(",")[0]  # a Dask worker uses one device: start one worker per GPU
        order = deque(sorted(range(len(jobs)), key=lambda k: (-prep.weights[k], k)))
        rank = {k: len(jobs) - r for r, k in enumerate(order)}
        settings_hash = settings.hash()
        preset_text = _preset_text(settings.preset) if mode == "ship" else None
        limit = int(ship_limit_mb * 2**20)
        pending = as_completed([], loop=client.loop)
        in_flight = {"files": 0, "bytes": 0}

        def submit(k: int, func: Callable, arg: Any, size: int) -> None:
            key = f"archtool-{jobs[k].relpath}-{os.urandom(6).hex()}"
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*[Ll]arge (object|graph).*")
                fut = client.submit(func, arg, spec, pure=False, priority=rank[k], key=key)
            futures[key] = (fut, k, size)
            in_flight["files"] += 1
            in_flight["bytes"] += size
            pending.add(fut)

        def ship_one(k: int) -> dict[str, Any] | None:
            """Submit job ``k`` with its bytes, or its result when nothing needs sending."""
            job, origin = jobs[k], prep.jobs[k]
            try:
                size = os.path.getsize(job.path)
                if resume and not dry_run and job.previous and job.previous.get("status") == "ok":
                    from archtool.engine.atomic import sha256_file

                    done = _done_here(origin, sha256_file(job.path), settings_hash, out_dir)
                    if done is not None:
                        return done
                if size > limit:
                    return _failed(origin, f"{size / 2**20:.0f} MB is over the {ship_limit_mb:g} MB limit for "
                                           "sending a file through the cluster (raise it with --ship-limit-mb, "
                                           "or put the files on a filesystem every worker shares)")
                data = job.path.read_bytes()
                gaps_text = _gap_rows(settings.gaps_file, origin.path) if settings.gaps_file else None
            except OSError as exc:
                return _failed(origin, exc.strerror or str(exc))
            except ArchtoolError as exc:  # e.g. an unreadable gap list
                return _failed(origin, str(exc))
            ship = Shipment(job.relpath, job.out_stem, str(origin.path), data, hashlib.sha256(data).hexdigest(),
                            settings, settings_hash, preset_text, gaps_text, dry_run)
            submit(k, shipped_task, ship, len(data))
            return None

        def fill() -> list[tuple[int, dict[str, Any]]]:
            """Submit what the window allows; (index, result) of files that needed no worker."""
            ready: list[tuple[int, dict[str, Any]]] = []
            if mode == "shared":
                while order:
                    k = order.popleft()
                    submit(k, cluster_task, (jobs[k], settings, str(out_dir), dry_run, resume), 0)
                return ready
            window = _window(client) if order else 0
            while order and (in_flight["files"] == 0 or in_flight["files"] < window):
                k = order[0]
                nxt = prep.weights[k]
                if in_flight["files"] and nxt <= limit and in_flight["bytes"] + nxt > 2 * limit:
                    break  # (a file over the limit is refused at once, without waiting)
                order.popleft()
                res = ship_one(k)
                if res is not None:
                    ready.append((k, res))
            return ready

        while True:
            for k, res in fill():
                yield _finish(res, k, on_event)
            if pending.is_empty():
                break
            fut = next(pending)
            _, k, size = futures.pop(fut.key)
            in_flight["files"] -= 1
            in_flight["bytes"] -= size
            try:
                res = fut.result()
            except KilledWorker as exc:
                res = lost_result(jobs[k], f"every Dask worker that ran it died ({exc})")
            except Exception as exc:  # the task itself should not raise; keep the batch going
                res = lost_result(jobs[k], f"cluster error ({type(exc).__name__}: {exc})")
            fut.release()
            if mode == "ship":
                res = write_shipped(res, out_dir)
            else:
                res["transfer"] = "shared"
            res["path"] = str(prep.jobs[k].path)
            yield _finish(res, k, on_event)
    finally:
        left = [f for f, _, _ in futures.values() if not f.done()]
        if left:
            client.cancel(left)
        if own_client:
            client.close()


def _finish(res: dict[str, Any], index: int, on_event: Callable[[WorkerEvent], None] | None) -> dict[str, Any]:
    """``res`` after telling ``on_event`` that job ``index`` is done."""
    if on_event is not None:
        on_event(WorkerEvent("done", 0, res.get("worker", "cluster"), None, index, result=res))
    return res
