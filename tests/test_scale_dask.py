"""The same per-file jobs on a real Dask cluster: a scheduler and two workers started as separate
processes on 127.0.0.1 give outputs identical to a local run, the client's manifest resumes,
and a worker SIGKILLed mid-file has its file redone on another worker. The workers run from
their own folder and, where the kernel lets this test make a mount namespace, a tmpfs hides
one folder of the test from them: files there reach them only as bytes shipped through the
cluster (``transfer="ship"``), and the outputs are still the local run's bytes."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from archtool.audio.io import OutputSpec, write_audio  # noqa: E402
from archtool.engine.batch import run_batch  # noqa: E402
from archtool.engine.settings import RestoreSettings  # noqa: E402
from archtool.errors import UsageError  # noqa: E402
from conftest import speech_like, tone  # noqa: E402
from _workers import kill_first_holding, shipped_spill, spill_of  # noqa: E402
from test_scale import REPO, audio_hashes, collection  # noqa: E402,F401


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _can_hide() -> bool:
    """True when this process may give a child its own mount namespace (root, or a user namespace)."""
    try:
        return subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True,
                              timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def cluster_info(tmp_path_factory):
    """``(tcp://127.0.0.1:PORT, hidden folder, hidden?)``: a dask scheduler and two single-thread
    workers (each with a nanny), started in their own scratch folder outside the test's
    folders; when ``hidden?`` the workers see an empty tmpfs at the hidden folder's path."""
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("dask")
    hidden = tmp_path_factory.mktemp("hidden")
    scratch = Path(tempfile.mkdtemp(prefix="archtool-dask-workers-"))
    hide = _can_hide()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen(dask + ["--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=open(logs / "scheduler.log", "w"), env=env)]
    for i in range(2):
        cmd = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--host", "127.0.0.1", "--nthreads", "1",
               "--nworkers", "1", "--no-dashboard", "--name", f"w{i}", "--local-directory", str(scratch / f"w{i}")]
        if hide:
            cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", 'mount -t tmpfs tmpfs "$0" && exec "$@"',
                   str(hidden)] + cmd
        procs.append(subprocess.Popen(cmd, cwd=scratch, stdout=subprocess.DEVNULL,
                                      stderr=open(logs / f"worker{i}.log", "w"), env=env))
    try:
        client = Client(address, timeout="60s", set_as_default=False)
        client.wait_for_workers(2, timeout=90)
        client.close()
        yield address, hidden, hide
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs[::-1]:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(cluster_info) -> str:
    return cluster_info[0]


def test_dask_cluster_gives_the_local_bytes_and_the_same_manifest(cluster, collection, tmp_path):
    d, ref = collection
    out = tmp_path / "dask"
    batch = run_batch(d, out, RestoreSettings(block_s=1.0), scheduler=cluster)
    assert not batch.failed and len(batch.results) == 6
    assert audio_hashes(out) == audio_hashes(ref)
    assert {r["transfer"] for r in batch.results} == {"shared"}
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
    watcher = threading.Thread(target=kill_first_holding, args=(spill_of(out), killed, stop), daemon=True)
    watcher.start()
    try:
        batch = run_batch(d, out, RestoreSettings(block_s=1.0), scheduler=cluster)  # the reference block size
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


def _sidecar_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): json.loads(p.read_text())["settings_hash"]
            for p in sorted(root.rglob("*.archtool.json"))}


def test_without_a_shared_filesystem_the_bytes_travel_and_the_outputs_match(cluster_info, collection):
    address, hidden, hide = cluster_info
    d, ref = collection
    src, out = hidden / "in", hidden / "out"
    shutil.copytree(d, src)
    if hide:  # the workers really cannot see these files
        from distributed import Client

        with Client(address, timeout="30s", set_as_default=False) as client:
            seen = client.run(lambda p: os.path.exists(p), str(src / "disc_0.flac"))
        assert seen and not any(seen.values())
    batch = run_batch(src, out, RestoreSettings(block_s=1.0), scheduler=address,
                      transfer="auto" if hide else "ship")
    assert not batch.failed and len(batch.results) == 6
    assert {r["transfer"] for r in batch.results} == {"ship"}
    assert len({r["worker"] for r in batch.results}) == 2
    assert audio_hashes(out) == audio_hashes(ref)  # the local run's bytes
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    ref_manifest = json.loads((ref / "manifest.json").read_text())["files"]
    assert manifest == ref_manifest  # same checksums, settings hash, output names, sidecar names
    assert _sidecar_hashes(out) == _sidecar_hashes(ref)
    assert not [p for p in out.rglob("*.archtool.json") if "archtool-ship-" in p.read_text()]
    assert all(str(src) in r["path"] for r in batch.results)
    again = run_batch(src, out, RestoreSettings(block_s=1.0), scheduler=address, transfer="ship")
    assert {r["status"] for r in again.results} == {"done"}  # resumed by the client, nothing sent
    first = {r["input"]: r for r in batch.results}
    for r in again.results:  # and its report still shows what was done to each file
        was = first[r["input"]]
        assert (r["steps"], r["loudness_after_lufs"], r["true_peak_after_dbtp"]) == (
            was["steps"], was["loudness_after_lufs"], was["true_peak_after_dbtp"]), r["input"]
    local = run_batch(src, out, RestoreSettings(block_s=1.0), jobs=1)  # and a local run resumes it too
    assert {r["status"] for r in local.results} == {"done"}
    if hide:
        with pytest.raises(UsageError, match="cannot (read|see)"):
            run_batch(src, hidden / "out_shared", RestoreSettings(block_s=1.0), scheduler=address, transfer="shared")


def test_shipping_sends_preset_and_gap_list_and_refuses_files_over_the_limit(cluster_info, tmp_path):
    address, hidden, _ = cluster_info
    src = hidden / "side" / "in"
    (src / "reel").mkdir(parents=True)
    write_audio(src / "reel" / "talk.flac", speech_like(1.5, 16000, seed=5), 16000, OutputSpec("flac", 16))
    write_audio(src / "long.flac", tone(330, 4.0, 44100, 2, 0.2), 44100, OutputSpec("flac", 16))
    preset = hidden / "side" / "mine.toml"
    shutil.copy(REPO / "archtool" / "recipes" / "restore" / "conservative.toml", preset)
    gaps = hidden / "side" / "gaps.csv"
    gaps.write_text(f"{src / 'reel' / 'talk.flac'},0.50,0.52\nlong.flac,1.0,1.01\n")
    settings = RestoreSettings(preset=str(preset), gaps_file=str(gaps), keep_residual=True, block_s=0.5)
    small, big = (src / "reel" / "talk.flac").stat().st_size, (src / "long.flac").stat().st_size
    assert small < big
    limit_mb = (small + big) / 2 / 2**20
    ref = run_batch(src, tmp_path / "local", settings, jobs=1)
    assert not ref.failed
    talk = next(r for r in ref.results if r["input"] == "reel/talk.flac")
    assert any("gap interval" in n for n in talk["notes"])  # the absolute-path row applied
    out = hidden / "side" / "out"
    batch = run_batch(src, out, settings, scheduler=address, transfer="ship", ship_limit_mb=limit_mb)
    by = {r["input"]: r for r in batch.results}
    assert by["reel/talk.flac"]["status"] == "ok", by["reel/talk.flac"]["error"]
    assert by["reel/talk.flac"]["notes"] == talk["notes"]  # names the user's gap list, not a worker's copy
    assert by["long.flac"]["status"] == "failed"
    assert str(src / "long.flac") in by["long.flac"]["error"] and "limit" in by["long.flac"]["error"]
    ref_audio = audio_hashes(tmp_path / "local")
    got = audio_hashes(out)
    assert got == {k: v for k, v in ref_audio.items() if k.startswith("reel/")}
    assert "reel/talk.residual.flac" in got
    sidecar = json.loads((out / "reel" / "talk.archtool.json").read_text())
    assert sidecar["settings"]["preset"] == str(preset) and sidecar["settings"]["gaps_file"] == str(gaps)
    assert sidecar["settings_hash"] == settings.hash()
    assert hashlib.sha256((out / "reel" / "talk.flac").read_bytes()).hexdigest() == sidecar["output"]["sha256"]


def test_shipped_file_of_a_killed_worker_is_redone_elsewhere(cluster_info, collection):
    address, hidden, _ = cluster_info
    d, ref = collection
    src, out = hidden / "kill_in", hidden / "kill_out"
    names = ("side b/talk.wav", "side b/talk2.flac")  # the auto chain restores these (others: loudness only)
    for name in names:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(d / name, src / name)
    killed: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=kill_first_holding, args=(shipped_spill, killed, stop), daemon=True)
    watcher.start()
    try:
        batch = run_batch(src, out, RestoreSettings(block_s=1.0), scheduler=address, transfer="ship")
    finally:
        stop.set()
        watcher.join()
    assert killed, "no Dask worker was caught mid-file"
    assert not batch.failed and len(batch.results) == 2
    assert audio_hashes(out) == {k: v for k, v in audio_hashes(ref).items() if k.startswith("side b/")}
    assert not (out / ".archtool-tmp").exists()


def test_cli_ships_with_transfer_ship_and_refuses_an_unknown_transfer(cluster_info, tmp_path):
    address, hidden, _ = cluster_info
    src = hidden / "cli_in"
    src.mkdir()
    write_audio(src / "a.wav", tone(440, 1.0, 22050, 1, 0.1), 22050, OutputSpec("wav", 16))
    out = hidden / "cli_out"
    cmd = [sys.executable, "-m", "archtool", "restore", str(src), "-o", str(out), "--preset", "none", "--no-html",
           "--scheduler", address]
    bad = subprocess.run(cmd + ["--transfer", "ftp"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--transfer must be auto, shared or ship" in bad.stderr
    res = subprocess.run(cmd + ["--transfer", "ship"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert [(f["input"], f["status"], f["transfer"]) for f in report["files"]] == [("a.wav", "ok", "ship")]
    local = run_batch(src, tmp_path / "local", RestoreSettings(preset="none"), jobs=1)
    assert audio_hashes(out) == audio_hashes(tmp_path / "local") and local.results[0]["status"] == "ok"
