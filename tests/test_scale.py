"""Scale-out engine on this machine, with real worker processes: 1 vs N workers give the same
bytes, a worker SIGKILLed mid-file loses nothing, a device out-of-memory error falls back to
smaller chunks and then the CPU, Ctrl-C stops cleanly and the next run resumes."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from archtool.audio.io import OutputSpec, read_audio, write_audio
from archtool.engine.batch import restore_job, run_batch
from archtool.engine.pipeline import Job
from archtool.engine.settings import RestoreSettings
from archtool.engine.workers import WorkerPool, plan_slots
from _workers import kill_first_holding, spill_of
from conftest import speech_like, tone

REPO = Path(__file__).resolve().parents[1]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def audio_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha(p) for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix in (".flac", ".wav") and ".archtool-tmp" not in p.parts}


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> tuple[Path, Path]:
    """Six files of uneven length (two in a sub-folder) and their one-worker reference outputs."""
    d = tmp_path_factory.mktemp("scale") / "in"
    (d / "side b").mkdir(parents=True)
    for i, secs in enumerate((6.0, 1.0, 3.0, 0.5)):
        x = np.concatenate([tone(200 + 70 * i, secs / 2, 44100, 2, 0.2), tone(300 + 50 * i, secs / 2, 44100, 2, 0.05)],
                           axis=1)
        write_audio(d / f"disc_{i}.flac", x, 44100, OutputSpec("flac", 16))
    write_audio(d / "side b" / "talk.wav", speech_like(2.0, 16000), 16000, OutputSpec("wav", 24))
    write_audio(d / "side b" / "talk2.flac", speech_like(1.0, 22050, seed=3), 22050, OutputSpec("flac", 24))
    ref = d.parent / "ref"
    batch = run_batch(d, ref, RestoreSettings(block_s=1.0), jobs=1)
    assert not batch.failed
    return d, ref


@pytest.fixture(scope="module")
def quarter_ref(collection) -> Path:
    """One-worker reference outputs at 0.25 s blocks: the interruption tests use small blocks so
    that files are still in flight when the signal comes (block size is not what they test)."""
    d, ref = collection
    out = ref.parent / "ref_quarter"
    assert not run_batch(d, out, RestoreSettings(block_s=0.25), jobs=1).failed
    return out


def test_plan_slots_share_threads_and_give_one_worker_per_gpu():
    assert [s.device for s in plan_slots(["cuda:0", "cuda:1"], jobs=8, cores=16)] == ["cuda:0", "cuda:1"]
    cpu = plan_slots(["cpu"], jobs=3, cores=8)
    assert len(cpu) == 3 and all(s.threads * len(cpu) <= 8 for s in cpu)
    assert [s.threads for s in plan_slots(["cpu"], jobs=None, cores=2)] == [1, 1]


def _thread_pools(payload: int, device: str) -> tuple[list[tuple[str, int]], int, int]:
    import threadpoolctl
    import torch

    pools = [(p["internal_api"], p["num_threads"]) for p in threadpoolctl.threadpool_info()]
    from archtool.engine.workers import one_blas_thread

    with one_blas_thread():
        in_file = max(p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas")
    return pools, torch.get_num_threads(), in_file


def test_workers_do_not_oversubscribe_the_cores():
    """Two CPU workers on 2 cores: every math library's pool (NumPy's OpenBLAS included, which
    sizes itself when NumPy loads, before the worker's own code runs) has one thread."""
    with WorkerPool(plan_slots(["cpu"], jobs=2, cores=2), _thread_pools) as pool:
        out = dict(pool.map_unordered([0, 1]))
    for pools, torch_threads, in_file in out.values():
        assert any(api == "openblas" for api, _ in pools)
        assert all(n == 1 for _, n in pools), pools
        assert torch_threads == 1 and in_file == 1


def test_one_and_two_workers_give_identical_bytes_and_manifest(collection, tmp_path):
    d, ref = collection
    events = []
    out = tmp_path / "three"
    batch = run_batch(d, out, RestoreSettings(block_s=1.0), jobs=2, on_event=events.append)
    assert not batch.failed and len(batch.results) == 6
    assert audio_hashes(out) == audio_hashes(ref)
    pids = {e.pid for e in events if e.kind == "start"}
    assert len(pids) >= 2 and os.getpid() not in pids  # really spread over worker processes
    starts = [e.index for e in events if e.kind == "start"]
    assert starts[:2] == [0, 1]  # largest files first (jobs are listed largest first)
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    ref_manifest = json.loads((ref / "manifest.json").read_text())["files"]
    assert {k: v["output_sha256"] for k, v in manifest.items()} == {k: v["output_sha256"] for k, v in ref_manifest.items()}


def test_worker_killed_mid_file_leaves_nothing_partial_and_batch_completes(collection, quarter_ref, tmp_path):
    d, ref = collection[0], quarter_ref
    out = tmp_path / "killed"
    killed: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(target=kill_first_holding, args=(spill_of(out), killed, stop), daemon=True)
    events = []
    watcher.start()
    try:
        batch = run_batch(d, out, RestoreSettings(block_s=0.25), jobs=2, on_event=events.append)
    finally:
        stop.set()
        watcher.join()
    assert killed, "no worker was caught mid-file"
    assert [e for e in events if e.kind == "lost" and e.pid == killed[0]]
    assert not batch.failed and len(batch.results) == 6
    assert audio_hashes(out) == audio_hashes(ref)  # the lost file was redone elsewhere, same bytes
    assert not (out / ".archtool-tmp").exists()


def _square(payload: int, device: str) -> tuple[int, str, int]:
    if payload == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # this task kills every worker that runs it
    return payload * payload, device, os.getpid()


def test_pool_gives_up_on_a_task_that_kills_its_workers_and_finishes_the_rest():
    events = []
    with WorkerPool(plan_slots(["cpu"], jobs=2, cores=2), _square, max_attempts=1, respawns=0) as pool:
        out = dict(pool.map_unordered(list(range(6)), on_event=events.append))
    assert {k: v[0] for k, v in out.items() if k != 3} == {k: k * k for k in (0, 1, 2, 4, 5)}
    assert "died" in str(out[3]) and "1 time(s)" in str(out[3])
    assert [e.index for e in events if e.kind == "lost"] == [3]


# --- out-of-memory fallback -------------------------------------------------------------------
class _OOMAboveChunk:
    """Test restorer: raises torch's OutOfMemoryError for chunks above ``limit`` samples, or on
    any non-CPU device when ``gpu_fails``; otherwise halves the signal."""

    name, kinds, context_s = "test_oom", ("noise",), 0.01
    calls: list[tuple[int, str]] = []

    def process(self, audio, sample_rate, params, device="cpu"):
        import torch

        self.calls.append((audio.shape[1], str(device)))
        if audio.shape[1] > params["limit"] or (params.get("gpu_fails") and str(device) != "cpu"):
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (test: {audio.shape[1]} samples)")
        return audio * 0.5


@pytest.fixture
def oom_restorer(monkeypatch):
    from archtool.restore import registry
    from archtool.restore.base import Step
    from archtool.restore.planning import Plan

    registry._load_all()
    monkeypatch.setitem(registry._RESTORERS, "test_oom", _OOMAboveChunk)
    _OOMAboveChunk.calls.clear()

    def use(**params):
        monkeypatch.setattr("archtool.engine.pipeline.plan_file",
                            lambda *a, **k: Plan(steps=[Step("test_oom", params)]))
        return _OOMAboveChunk.calls

    yield use
    registry._INSTANCES.pop(("test_oom", "[]"), None)


@pytest.fixture
def one_file(tmp_path) -> Job:
    src = tmp_path / "in" / "long.flac"
    src.parent.mkdir()
    write_audio(src, tone(330, 4.0, 8000, 2, 0.3), 8000, OutputSpec("flac", 16))
    return Job(src, "long.flac", "long")


def test_oom_retries_with_smaller_chunks_and_gives_the_same_samples(oom_restorer, one_file, tmp_path):
    calls = oom_restorer(limit=8000)  # 1 s at 8 kHz: 2 s chunks fail, 0.5 s chunks pass
    res = restore_job(one_file, RestoreSettings(block_s=2.0, normalize=False), tmp_path / "a", device="cpu")
    assert res["status"] == "ok", res
    assert res["notes"][0] == "out of memory on cpu with 2 s chunks; retried with 0.5 s chunks"
    assert max(n for n, _ in calls if n <= 8000) <= 0.5 * 8000 + 2 * 80 + 1
    direct = restore_job(one_file, RestoreSettings(block_s=0.5, normalize=False), tmp_path / "b", device="cpu")
    y_retry, _ = read_audio(tmp_path / "a" / "long.flac")
    y_direct, _ = read_audio(tmp_path / "b" / "long.flac")
    x, _ = read_audio(one_file.path)
    assert np.array_equal(y_retry, y_direct) and np.allclose(y_retry, x * 0.5, atol=1 / 32768)
    assert direct["notes"] == [] and not list((tmp_path / "a").rglob("*.f32"))


def test_gpu_oom_falls_back_to_cpu_and_is_reported(oom_restorer, one_file, tmp_path):
    calls = oom_restorer(limit=10**9, gpu_fails=True)
    res = restore_job(one_file, RestoreSettings(block_s=2.0, normalize=False), tmp_path / "o", device="cuda:0")
    assert res["status"] == "ok" and res["device"] == "cpu"
    assert res["notes"][-1] == "out of memory on cuda:0 with 0.25 s chunks; retried on cpu"
    assert [d for _, d in calls][0] == "cuda:0" and calls[-1][1] == "cpu"
    assert (tmp_path / "o" / "long.flac").exists()


def test_oom_everywhere_fails_that_file_only(oom_restorer, one_file, tmp_path):
    oom_restorer(limit=10)
    res = restore_job(one_file, RestoreSettings(block_s=2.0), tmp_path / "o", device="cuda:1")
    assert res["status"] == "failed" and "out of memory" in res["error"] and "long.flac" in res["error"]
    assert not [p for p in (tmp_path / "o").rglob("*") if p.is_file()]  # nothing partial


# --- Ctrl-C and resume ------------------------------------------------------------------------
def _default_sigint() -> None:
    # as in a terminal's foreground job; a test run started in the background (`cmd &` in a
    # script) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_sigint_stops_cleanly_and_the_next_run_resumes(collection, quarter_ref, tmp_path):
    d, ref = collection[0], quarter_ref
    out = tmp_path / "int"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "archtool", "restore", str(d), "-o", str(out), "--jobs", "2", "--block-seconds", "0.25"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=env, preexec_fn=_default_sigint)
    deadline = time.time() + 90
    while time.time() < deadline and not (out / "manifest.json").exists():
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "resume" in err
    manifest = json.loads((out / "manifest.json").read_text())["files"]  # still valid JSON
    done = {k for k, v in manifest.items() if v["status"] == "ok"}
    assert 1 <= len(done) < 6
    got = audio_hashes(out)
    want = audio_hashes(ref)
    assert all(got[k] == want[k] for k in got)  # whatever exists is complete and correct
    assert not (out / ".archtool-tmp").exists() or not any((out / ".archtool-tmp").iterdir())
    again = run_batch(d, out, RestoreSettings(block_s=0.25), jobs=1)  # the same resume logic as the CLI's
    assert not again.failed
    assert {r["input"] for r in again.results if r["status"] == "done"} == done
    assert audio_hashes(out) == want
