"""The same per-file jobs on a real Dask cluster: a scheduler and two workers started as separate
processes on 127.0.0.1 give outputs identical to a local run, the client's manifest resumes,
and a worker SIGKILLed mid-file has its file redone on another worker."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("distributed")

from archtool.engine.batch import run_batch  # noqa: E402
from archtool.engine.settings import RestoreSettings  # noqa: E402
from test_scale import REPO, audio_hashes, collection, kill_worker_with_open_spill  # noqa: E402,F401


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``tcp://127.0.0.1:PORT``: a dask scheduler and two single-thread workers (each with a nanny)."""
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("dask")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen(dask + ["--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=open(logs / "scheduler.log", "w"), env=env)]
    for i in range(2):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--host", "127.0.0.1", "--nthreads", "1",
             "--nworkers", "1", "--no-dashboard", "--name", f"w{i}"],
            stdout=subprocess.DEVNULL, stderr=open(logs / f"worker{i}.log", "w"), env=env))
    try:
        client = Client(address, timeout="60s", set_as_default=False)
        client.wait_for_workers(2, timeout=90)
        client.close()
        yield address
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs[::-1]:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_dask_cluster_gives_the_local_bytes_and_the_same_manifest(cluster, collection, tmp_path):
    d, ref = collection
    out = tmp_path / "dask"
    batch = run_batch(d, out, RestoreSettings(block_s=1.0), scheduler=cluster)
    assert not batch.failed and len(batch.results) == 6
    assert audio_hashes(out) == audio_hashes(ref)
    workers = {r["worker"] for r in batch.results}
    assert len(workers) == 2 and all(w.startswith("tcp://127.0.0.1:") for w in workers)
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    assert set(manifest) == {r["input"] for r in batch.results}
    again = run_batch(d, out, RestoreSettings(block_s=1.0), jobs=1)  # a local run resumes a cluster run
    assert {r["status"] for r in again.results} == {"done"}


def test_dask_worker_killed_mid_file_is_retried_elsewhere(cluster, collection, tmp_path):
    d, ref = collection
    out = tmp_path / "dask_killed"
    killed: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=kill_worker_with_open_spill, args=(out, killed, stop), daemon=True)
    watcher.start()
    try:
        batch = run_batch(d, out, RestoreSettings(block_s=0.25), scheduler=cluster)
    finally:
        stop.set()
        watcher.join()
    assert killed, "no Dask worker was caught mid-file"
    assert not batch.failed and len(batch.results) == 6
    assert audio_hashes(out) == audio_hashes(ref)
    assert not (out / ".archtool-tmp").exists()


def test_unreachable_scheduler_is_a_usage_error():
    from archtool.errors import UsageError

    t0 = time.time()
    with pytest.raises(UsageError, match="cannot connect"):
        from archtool.engine.distributed import connect

        connect(f"tcp://127.0.0.1:{_free_port()}", timeout_s=2)
    assert time.time() - t0 < 30
