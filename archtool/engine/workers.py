"""A pool of worker processes, one per device slot, pulling per-file tasks longest first.

Each worker is a fresh ``spawn`` process bound to one device (``cuda:N`` or ``cpu``) with
its own CPU thread budget, in its environment (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``
...) from the start, so that no math library in it sizes its pool to all the cores.
It runs every task it is given with the same long-lived function, so whatever that
function caches per process (restorer instances, loaded models) is built once per
worker, not once per file.

The parent hands out tasks one at a time to whichever worker is idle, taking the
heaviest remaining task first, so uneven durations balance. Each worker talks to the
parent over its own pipe (no shared queue lock a killed worker could leave held), and
the parent watches every worker's process sentinel: a worker that dies mid-task
(crash, SIGKILL, out-of-memory killer) has its task handed to another worker (at most
``max_attempts`` times in all) and is replaced by a fresh process on the same device.
Workers ignore SIGINT and die with the parent (Linux ``PR_SET_PDEATHSIG``), so Ctrl-C
and a killed parent stop everything; the parent's ``close`` kills workers still running.

The pool is generic: ``fn(payload, device) -> result`` is any picklable module-level
function, so ``restore`` and ``analyze`` can both use it::

    with WorkerPool(plan_slots(["cpu"], jobs=2), restore_task) as pool:
        for index, result in pool.map_unordered(payloads, weights):
            ...
"""
from __future__ import annotations

import functools
import multiprocessing as mp
import os
import signal
import sys
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterator, Sequence

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass(frozen=True)
class Slot:
    """One worker process: the torch device it runs on and its CPU thread budget."""

    device: str
    threads: int = 1


@dataclass(frozen=True)
class WorkerEvent:
    """What the pool reports to ``on_event``: a task starting or ending on a worker, or a
    worker lost (``kind`` = ``start`` | ``done`` | ``lost``)."""

    kind: str
    slot: int
    device: str
    pid: int | None
    index: int | None
    detail: str = ""
    result: Any = None


class TaskLost(Exception):
    """Returned as a task's result when the task killed every worker it ran on."""


def plan_slots(devices: Sequence[str], jobs: int | None = None, cores: int | None = None) -> list[Slot]:
    """Worker slots for ``devices`` (as resolved by :func:`archtool.engine.devices.resolve_devices`).

    Every GPU gets one worker. ``cpu`` gets ``jobs`` workers (default: one per core when it
    is the only device, else one). CPU threads are shared out so that
    ``workers x threads <= cores`` (at least one thread each).
    """
    cores = max(1, cores or os.cpu_count() or 1)
    gpus = [d for d in devices if d != "cpu"]
    n_cpu = 0
    if "cpu" in devices:
        n_cpu = max(1, jobs) if jobs else (cores if not gpus else 1)
    n = max(1, len(gpus) + n_cpu)
    threads = max(1, cores // n)
    return [Slot(d, threads) for d in gpus] + [Slot("cpu", threads) for _ in range(n_cpu)]


def set_thread_budget(threads: int) -> None:
    """Limit this process's math libraries to ``threads`` threads: the environment for
    libraries loaded from now on, and the thread pools already loaded (NumPy's OpenBLAS,
    OpenMP: through threadpoolctl; torch directly)."""
    threads = max(1, int(threads))
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(threads)
    if "numpy" in sys.modules or "scipy" in sys.modules:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)  # stays in force: not used as a context here
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


@functools.lru_cache(maxsize=1)
def _threadpools():
    """This process's ``threadpoolctl.ThreadpoolController`` (finding the loaded pools costs
    a few ms, so it is done once)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_blas_thread():
    """A context in which BLAS (NumPy's and SciPy's OpenBLAS) runs on one thread.

    A file's processing runs in it whatever the worker's budget: a threaded BLAS can sum in
    a different order with a different thread count, so the bytes would depend on how many
    workers share the cores (as with torch, see ``archtool.restore.chain``); and two workers
    each spinning a pool of one thread per core oversubscribe the machine. Parallelism is
    across files.
    """
    return _threadpools().limit(limits=1, user_api="blas")


@contextmanager
def _thread_env(threads: int) -> Iterator[None]:
    """``THREAD_ENV_VARS`` set to ``threads`` while a worker process is started, so that the
    spawned interpreter has them before it imports NumPy (OpenBLAS sizes its pool at load:
    otherwise every worker would have one BLAS thread per core, oversubscribing the cores)."""
    saved = {var: os.environ.get(var) for var in THREAD_ENV_VARS}
    try:
        for var in THREAD_ENV_VARS:
            os.environ[var] = str(max(1, int(threads)))
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies; exit now if it already has."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the parent's close() still kills its workers
    if os.getppid() != parent_pid:
        os._exit(0)


def _exit_now() -> None:
    """End a worker between tasks without the interpreter's teardown.

    A worker holds nothing to finish between tasks (every output is complete and renamed, or
    removed), but tearing down an interpreter that has loaded torch and SciPy takes seconds
    (measured: 3.7 s for two workers on the loaded 2-core machine), and the parent's
    ``close`` waits for it at the end of every batch.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(0)


def _worker_main(fn: Callable[[Any, str], Any], slot: Slot, conn: Connection, parent_pid: int) -> None:
    """Worker process body: announce readiness, then run tasks until told to stop."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    set_thread_budget(slot.threads)
    conn.send(("ready", None, None))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            _exit_now()
        if msg is None:
            _exit_now()
        index, payload = msg
        try:
            result, error = fn(payload, slot.device), None
        except Exception as exc:  # fn should not raise; if it does, the parent gets the reason
            result, error = None, f"{type(exc).__name__}: {exc}"
        conn.send(("done", index, (result, error)))


@dataclass
class _Worker:
    slot: Slot
    process: Any
    conn: Connection
    ready: bool = False
    task: int | None = None
    started: float = 0.0


class WorkerPool:
    """Worker processes for ``slots``, each running ``fn(payload, device)`` on its tasks.

    Args:
        slots: one worker per slot (see :func:`plan_slots`).
        fn: picklable module-level function ``fn(payload, device) -> result``; it should
            not raise (an exception becomes a :class:`TaskLost`-style error result).
        max_attempts: times a task may be started before a worker death makes it final.
        respawns: replacement processes allowed per slot after deaths.
    """

    def __init__(self, slots: Sequence[Slot], fn: Callable[[Any, str], Any], *, max_attempts: int = 2,
                 respawns: int = 2):
        if not slots:
            raise ValueError("a worker pool needs at least one slot")
        self.slots = list(slots)
        self.fn = fn
        self.max_attempts = max(1, max_attempts)
        self.respawns = [max(0, respawns)] * len(self.slots)
        self._ctx = mp.get_context("spawn")
        self._workers: list[_Worker | None] = [None] * len(self.slots)
        self._pid = os.getpid()

    # -- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> "WorkerPool":
        for i in range(len(self.slots)):
            self._start(i)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close(graceful=exc[0] is None)

    def _start(self, i: int) -> None:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=_worker_main, args=(self.fn, self.slots[i], child_conn, self._pid),
                                 name=f"archtool-worker-{i}-{self.slots[i].device}", daemon=True)
        with _thread_env(self.slots[i].threads):
            proc.start()
        child_conn.close()
        self._workers[i] = _Worker(self.slots[i], proc, parent_conn)

    def close(self, graceful: bool = True) -> None:
        """Stop every worker: politely (after its current task) when ``graceful``, else kill."""
        for w in self._workers:
            if w is None:
                continue
            if graceful and w.process.is_alive():
                try:
                    w.conn.send(None)
                except OSError:
                    pass
        deadline = time.monotonic() + (5.0 if graceful else 0.0)
        for w in self._workers:
            if w is None:
                continue
            w.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(timeout=5.0)
            w.conn.close()
        self._workers = [None] * len(self.slots)

    def pids(self) -> list[int | None]:
        """Process ids of the current workers (None where a slot has no live worker)."""
        return [w.process.pid if w is not None else None for w in self._workers]

    # -- running ---------------------------------------------------------------------
    def map_unordered(self, payloads: Sequence[Any], weights: Sequence[float] | None = None,
                      on_event: Callable[[WorkerEvent], None] | None = None) -> Iterator[tuple[int, Any]]:
        """Run every payload; yield ``(index, result)`` as each finishes, heaviest started first.

        A task whose worker died ``max_attempts`` times, or that raised inside ``fn``,
        yields a :class:`TaskLost` instance as its result.
        """
        n = len(payloads)
        order = sorted(range(n), key=lambda k: (-(weights[k] if weights is not None else 0.0), k))
        pending: deque[int] = deque(order)
        attempts = [0] * n
        finished = [False] * n
        left = n

        def emit(kind: str, i: int, index: int | None, detail: str = "", result: Any = None) -> None:
            if on_event is not None:
                w = self._workers[i]
                on_event(WorkerEvent(kind, i, self.slots[i].device, w.process.pid if w else None, index, detail,
                                     result))

        while left:
            for i, w in enumerate(self._workers):  # hand out work to idle workers
                while pending and finished[pending[0]]:
                    pending.popleft()
                if w is not None and w.ready and w.task is None and pending:
                    index = pending.popleft()
                    attempts[index] += 1
                    w.task, w.started = index, time.perf_counter()
                    try:
                        w.conn.send((index, payloads[index]))
                    except OSError:
                        pass  # the worker died just now: its sentinel reports it below
                    emit("start", i, index)
            live = [w for w in self._workers if w is not None]
            if not live:
                for index in list(pending):
                    if not finished[index]:
                        finished[index] = True
                        left -= 1
                        yield index, TaskLost("no worker process left to run it")
                pending.clear()
                break
            ready = wait([w.conn for w in live] + [w.process.sentinel for w in live], timeout=1.0)
            for i, w in enumerate(self._workers):
                if w is None:
                    continue
                got_message = False
                if w.conn in ready:
                    try:
                        while w.conn.poll():
                            kind, index, value = w.conn.recv()
                            got_message = True
                            if kind == "ready":
                                w.ready = True
                                continue
                            if index == w.task:
                                w.task = None
                            if finished[index]:
                                continue  # a retried task that had already finished elsewhere
                            finished[index] = True
                            left -= 1
                            result, error = value
                            emit("done", i, index, error or "", result)
                            yield index, (TaskLost(error) if error is not None else result)
                    except (EOFError, OSError):
                        pass  # dead: handled through the sentinel just below
                if not got_message and (w.process.sentinel in ready or not w.process.is_alive()):
                    w.process.join(timeout=1.0)
                    if w.process.is_alive():
                        continue
                    code = w.process.exitcode
                    index = w.task
                    emit("lost", i, index, f"worker process exited with code {code}")
                    w.conn.close()
                    self._workers[i] = None
                    if index is not None and not finished[index]:
                        if attempts[index] < self.max_attempts:
                            pending.appendleft(index)  # retried first, on another (or a new) worker
                        else:
                            finished[index] = True
                            left -= 1
                            yield index, TaskLost(f"worker process died while running it (exit code {code}), "
                                                  f"{attempts[index]} time(s)")
                    if self.respawns[i] > 0 and left:
                        self.respawns[i] -= 1
                        self._start(i)
