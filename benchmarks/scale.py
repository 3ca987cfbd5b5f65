"""Scale-out benchmarks (issue 7): CPU worker throughput, peak memory against file length,
and Dask scheduling overhead with 100 workers.

    python benchmarks/scale.py throughput [--files 80 --seconds 60 --repeats 2]
    python benchmarks/scale.py memory [--minutes 10 60 180] [--chain auto | auto+registered]
    python benchmarks/scale.py dask [--workers 100 --tasks 2000 --files 300]
    python benchmarks/scale.py ship [--files 6 --seconds 30 --preset none auto --repeats 2]

Every section prints one JSON object; the figures go to benchmarks/RESULTS.md ("Scale-out").
Inputs are synthesised in benchmarks/_work/scale (git-ignored): 44.1 kHz stereo 16-bit FLAC,
a music-like programme with surface noise, mains hum and clicks, so that the analysis has
something to find.

* throughput: the same equal-length files restored with 1 and with 2 CPU workers, each run in
  a fresh process (``run_batch``, chain as the ``auto`` preset plans it), repeated with the
  order alternating: wall time, times real time, speed-up, the steady-state speed-up (each
  worker's first file, which pays its imports and model loads, left out), CPU seconds per
  second of audio, when each worker took its first file and how long it idled at the end,
  the load average before and after and the other sessions' CPU during the run (the machine
  is shared), and a check that every run wrote the same bytes.
* memory: each file restored by a fresh ``archtool``-engine process (one worker); the peak
  resident memory of the whole process tree (Python plus its ffmpeg children) is sampled
  every 50 ms from /proc, overall and per phase (start-up, analysis, restoration pass,
  loudness and encoding pass; the child reports when each began), with whether the file
  needed the true-peak limiter (its pass 2 then runs in Python), and the peak before the
  interpreter's exit (which alone adds ~130 MB with torch loaded: its shutdown pages in
  more of libtorch). ``--chain auto`` uses the plan the ``auto`` preset makes for the
  file; ``auto+registered`` additionally forces every registered restorer that can run
  without a checkpoint download and is fast enough for a 3-hour file (listed in the output).
* dask: an in-process LocalCluster of N single-thread workers (processes=False: 100 worker
  processes would not fit this shared 2-core machine), (a) N no-op tasks to measure the
  scheduler's cost per task, (b) many tiny files through the real engine path
  (``run_batch(..., scheduler=...)``, preset ``none``: decode, loudness, encode) against the
  same files in one local process.
* ship: a real ``dask scheduler`` and two single-thread ``dask worker`` processes on
  127.0.0.1 (started by the benchmark, each in its own scratch folder); the same files
  restored with ``transfer="shared"`` (workers read and write the files) and
  ``transfer="ship"`` (bytes sent through the cluster and back), alternating, after one
  warm-up run of each; wall time per run, the ship/shared ratio of the medians, MB sent,
  and a check that both wrote the same bytes; first, the transport alone (each file sent to a
  worker, written to a temporary file there, read back, returned, checked and written: 5 times).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archtool.audio.io import BlockWriter, OutputSpec  # noqa: E402

WORK = ROOT / "benchmarks" / "_work" / "scale"
RATE = 44100


def fresh(path: Path) -> Path:
    """``path`` removed (an output folder from an earlier run), ready to be written anew."""
    shutil.rmtree(path, ignore_errors=True)
    return path


def collection(files: int, seconds: float) -> Path:
    """``files`` synthetic programmes of ``seconds`` each in one folder (made once)."""
    src = WORK / f"tp_{files}x{seconds:g}s"
    for i in range(files):
        synth(src / f"reel_{i:02d}.flac", seconds, seed=i)
    return src


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}


def synth(path: Path, seconds: float, seed: int = 0) -> Path:
    """Write a music-like stereo programme with hiss, 50 Hz hum and clicks, in 10 s blocks."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.flac")
    total = int(seconds * RATE)
    block = RATE * 10
    rng = np.random.default_rng(seed)
    with BlockWriter(tmp, RATE, 2, OutputSpec("flac", 16)) as w:
        for start in range(0, total, block):
            n = min(block, total - start)
            t = (start + np.arange(n)) / RATE
            chord = sum(0.08 * np.sin(2 * np.pi * f * t + k) for k, f in enumerate((196.0, 246.9, 293.7, 392.0)))
            env = 0.6 + 0.4 * np.sin(2 * np.pi * 0.05 * t)
            hum = 0.01 * np.sin(2 * np.pi * 50 * t) + 0.004 * np.sin(2 * np.pi * 150 * t)
            x = np.stack([chord * env, np.roll(chord, 7) * env]) + hum
            x += 0.01 * rng.standard_normal((2, n))
            for pos in rng.integers(0, n - 40, size=max(1, n // RATE * 3)):
                x[:, pos:pos + 20] += rng.choice([-0.5, 0.5]) * np.hanning(20)
            w.write(x.astype(np.float32))
    tmp.rename(path)
    return path


# -- throughput -----------------------------------------------------------------------------------
def _own_cpu_s() -> float:
    """CPU seconds of this process and its finished children (workers, ffmpeg)."""
    import resource

    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                    resource.getrusage(resource.RUSAGE_CHILDREN)))


def _machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy since boot, all cores (/proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(v) for v in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _commit(rev: str = "HEAD") -> str:
    return subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def snapshot(rev: str = "HEAD") -> Path:
    """A ``git archive`` copy of ``rev`` in the work folder (made once per commit), so that other
    engineers' uncommitted edits (and later commits) in this shared checkout cannot change the
    code mid-benchmark."""
    commit = _commit(rev)
    dst = WORK / f"snapshot_{commit}"
    if not dst.exists():
        tmp = dst.with_name(dst.name + ".part")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        # byte-compiled once, as an installed package is (PYTHONDONTWRITEBYTECODE may be set)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tmp / "archtool"), str(tmp / "benchmarks")],
                       check=True, stdout=subprocess.DEVNULL)
        tmp.rename(dst)
    return dst


def tprun(args: argparse.Namespace) -> None:
    """Child process of ``throughput``: one ``run_batch`` with ``--jobs`` CPU workers, timed
    after the engine is imported (as the CLI has it before it starts a batch). Prints JSON."""
    from archtool.engine.batch import run_batch
    from archtool.engine.settings import RestoreSettings

    per_slot: dict[int, list[tuple[float, float, float]]] = {}  # (audio s, file time s, done at s)
    file_cpu: dict[int, list[float]] = {}  # CPU seconds per file (the engine's timings["cpu_s"])
    first_start: dict[int, float] = {}
    t0 = time.perf_counter()

    def on_event(ev) -> None:
        now = time.perf_counter() - t0
        if ev.kind == "start":
            first_start.setdefault(ev.slot, now)
        if ev.kind == "done" and ev.result is not None:
            per_slot.setdefault(ev.slot, []).append((float(ev.result.get("duration_s") or 0.0),
                                                     float(ev.result.get("time_s") or 0.0), now))
            file_cpu.setdefault(ev.slot, []).append(float((ev.result.get("timings") or {}).get("cpu_s") or 0.0))

    c0 = _own_cpu_s()
    t0 = time.perf_counter()
    batch = run_batch(args.src, args.out, RestoreSettings(preset=args.preset), jobs=args.jobs, on_event=on_event)
    wall = time.perf_counter() - t0
    cpu = _own_cpu_s() - c0
    audio = sum(r.get("duration_s") or 0 for r in batch.results)
    # Steady state: per worker, the audio of its files after its first over their own times
    # (each worker's first file also pays its lazy imports and model loads), summed.
    steady = sum(sum(a for a, _, _ in done[1:]) / sum(t for _, t, _ in done[1:])
                 for done in per_slot.values() if len(done) > 1 and sum(t for _, t, _ in done[1:]) > 0)
    later = [(a, c) for k, done in per_slot.items() for (a, _, _), c in list(zip(done, file_cpu[k]))[1:]]
    print(json.dumps({
        "jobs": args.jobs, "wall_s": round(wall, 2), "audio_s": round(audio, 1), "x_real_time": round(audio / wall, 1),
        "steady_x_real_time": round(steady, 1), "cpu_s": round(cpu, 2),
        "cpu_s_per_audio_s": round(cpu / audio, 5) if audio else None,
        "steady_cpu_s_per_audio_s": round(sum(c for _, c in later) / sum(a for a, _ in later), 5) if later else None,
        "failed": len(batch.failed),
        "files_per_worker": {k: len(v) for k, v in sorted(per_slot.items())},
        "worker_first_task_at_s": {k: round(v, 2) for k, v in sorted(first_start.items())},
        "first_file_s": {k: round(v[0][1], 2) for k, v in sorted(per_slot.items())},
        "median_file_s": round(float(np.median([t for v in per_slot.values() for _, t, _ in v])), 3),
        "worker_idle_at_end_s": {k: round(wall - v[-1][2], 2) for k, v in sorted(per_slot.items())},
        "steps": sorted({s["restorer"] for r in batch.results for s in r.get("steps") or []}),
        "hashes": {r["input"]: r.get("output_sha256") for r in batch.results}}))


def throughput(args: argparse.Namespace) -> dict:
    """1 and 2 CPU workers on the same files, ``--repeats`` times (the order alternating:
    1, 2 then 2, 1, ...): wall time, times real time, speed-up, the steady-state speed-up, CPU
    seconds per second of audio, and a check that every run wrote the same bytes.

    Each run is a fresh Python process (``tprun``) that imports the engine and then times
    ``run_batch``, as ``archtool restore`` does: one worker runs in that process; two workers
    are spawned processes, whose start-up (Python, torch, scipy: ~2.5 s of CPU each) and first
    file (lazy imports, model loads) fall inside the timed run. So each run also reports a
    steady-state rate: per worker, the audio of its files after its first divided by their
    own times (``time_s``), summed over workers; ``steady_speedup`` compares those rates.
    CPU seconds per second of audio cover the run's whole process tree (workers and any
    ffmpeg children); the steady-state figure sums the engine's per-file CPU times
    (``timings["cpu_s"]``) of the files after each worker's first. Whether the machine was quiet: the 1-minute load average before and
    after, and ``others_cores``: the machine's busy CPU time during the run (/proc/stat)
    minus the run's own, per second of wall time. On a machine shared between sessions
    (Linux autogroups share the cores between sessions, whatever ``nice`` says) a ratio
    means something only when ``others_cores`` is near 0.
    """
    src = collection(args.files, args.seconds)
    code = snapshot(args.snapshot) if args.snapshot else ROOT
    for f in sorted(src.glob("*.flac")):  # into the page cache, so that the first run does not pay the disk
        f.read_bytes()
    runs: list[dict] = []
    hashes: list[dict] = []
    for rep in range(args.repeats):
        order = (1, 2) if rep % 2 == 0 else (2, 1)
        for jobs in order:
            out = fresh(WORK / f"tp_out_{jobs}")
            before = loadavg()
            m0, c0, t0 = _machine_busy_s(), _children_cpu_s(), time.perf_counter()
            proc = subprocess.run([sys.executable, str(code / "benchmarks" / "scale.py"), "tprun", "--jobs", str(jobs),
                                   "--src", str(src), "--out", str(out), "--preset", args.preset],
                                  capture_output=True, text=True, cwd=code, env=dict(os.environ, PYTHONPATH=str(code)))
            span, machine_cpu = time.perf_counter() - t0, _machine_busy_s() - m0
            tree_cpu = _children_cpu_s() - c0  # the child, its workers and their ffmpeg processes
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr[-2000:])
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            hashes.append(res.pop("hashes"))
            res.update(repeat=rep, utc=time.strftime("%H:%M:%S", time.gmtime()), load_before=before,
                       load_after=loadavg(), others_cores=round(max(0.0, machine_cpu - tree_cpu) / span, 3))
            runs.append(res)
            print(json.dumps({k: v for k, v in res.items()}), file=sys.stderr, flush=True)
    pairs = []
    for rep in range(args.repeats):
        one = next(r for r in runs if r["repeat"] == rep and r["jobs"] == 1)
        two = next(r for r in runs if r["repeat"] == rep and r["jobs"] == 2)
        pairs.append({"repeat": rep, "speedup": round(one["wall_s"] / two["wall_s"], 3),
                      "steady_speedup": round(two["steady_x_real_time"] / max(one["steady_x_real_time"], 1e-9), 3),
                      "cpu_ratio_2_over_1": round(two["cpu_s_per_audio_s"] / one["cpu_s_per_audio_s"], 3),
                      "steady_cpu_ratio_2_over_1": round(two["steady_cpu_s_per_audio_s"]
                                                         / one["steady_cpu_s_per_audio_s"], 3)})
    return {"section": "throughput", "machine": machine(), "files": args.files, "seconds_each": args.seconds,
            "preset": args.preset, "code": _commit(args.snapshot) if args.snapshot else "working tree", "runs": runs, "pairs": pairs,
            "same_bytes": all(h == hashes[0] for h in hashes) and all(hashes[0].values())}


def _children_cpu_s() -> float:
    """CPU seconds of all finished, waited-for descendants of this process (cumulative)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# -- memory ---------------------------------------------------------------------------------------
def _proc_tree(pid: int, field: Callable[[int, list[str], Path], float]) -> float:
    """Sum of ``field(pid, stat fields after the command name, /proc/PID)`` over ``pid`` and all
    its living descendants (Linux /proc); processes that vanish mid-walk count 0."""
    children: dict[int, list[int]] = {}
    value: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            value[int(entry.name)] = field(int(entry.name), fields, entry)
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += value.get(p, 0.0)
        todo += children.get(p, [])
    return total


def _rss_bytes(pid: int, fields: list[str], entry: Path) -> float:
    for line in (entry / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0.0  # a zombie has no VmRSS


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    return int(_proc_tree(pid, _rss_bytes))


def fast_registered_restorers() -> list[str]:
    """Registered restorers usable here on a 3-hour file: built without a missing checkpoint
    and at least 20x real time on 10 s of stereo noise (measured now)."""
    import torch

    from archtool.restore.registry import get_restorer, list_restorers

    x = torch.from_numpy((0.05 * np.random.default_rng(0).standard_normal((2, RATE * 10))).astype(np.float32))
    keep = []
    for name in list_restorers():
        try:
            r = get_restorer(name)
            t0 = time.perf_counter()
            r.process(x, RATE, {"seed": 0}, "cpu")
            if 10.0 / (time.perf_counter() - t0) >= 20.0:
                keep.append(name)
        except Exception:  # missing checkpoint, needs planned parameters...: not part of this chain
            continue
    return keep


def memrun(args: argparse.Namespace) -> None:
    """Child process of ``memory``: restore one file with one worker, print its result and
    when (``time.time()``) the analysis, the restoration pass and the loudness/encode pass
    ran, so that the parent can split its memory samples by phase."""
    from archtool.engine import pipeline
    from archtool.engine.batch import run_batch
    from archtool.engine.settings import RestoreSettings
    from archtool.restore.base import Step

    forced = [s for s in (args.force or "").split(",") if s]
    marks: dict[str, float] = {}
    hwm: dict[str, float] = {}  # the kernel's exact peak of this process, per phase

    def phase(name: str) -> None:  # printed at once, so a run stopped at the deadline keeps them
        done = max(marks, key=marks.get) if marks else "startup"
        hwm[done] = _python_peak_mb(reset=True)
        marks[name] = time.time()
        print(json.dumps({"phase": name, "t": marks[name], "python_peak_mb": {done: hwm[done]}}), flush=True)

    real_plan, real_chunks = pipeline.plan_file, pipeline.restore_chunks

    def plan_with_marks(path, info, preset, options):
        phase("analysis")
        plan = real_plan(path, info, preset, options)
        have = {s.restorer for s in plan.steps}
        plan.steps += [Step(name, {}, "forced by benchmarks/scale.py") for name in forced if name not in have]
        return plan

    def chunks_with_marks(*a, **k):  # pass 1 begins once the engine has released the analysis's memory
        phase("restore")
        yield from real_chunks(*a, **k)
        phase("loudness_encode")

    pipeline.plan_file, pipeline.restore_chunks = plan_with_marks, chunks_with_marks
    batch = run_batch(args.file, args.out, RestoreSettings(preset="auto"), jobs=1)
    r = batch.results[0]
    phase("exit")
    print(json.dumps({"status": r["status"], "error": r.get("error"), "duration_s": r.get("duration_s"),
                      "time_s": r.get("time_s"), "steps": [s["restorer"] for s in r.get("steps") or []],
                      "limited": r.get("limited"), "gain_db": r.get("gain_db")}))


def _python_peak_mb(reset: bool = False, pid: int | str = "self") -> float | None:
    """Peak resident MB of process ``pid`` since it started or since the last reset (VmHWM;
    ``reset`` writes 5 to /proc/PID/clear_refs, Linux >= 4.0). None where unavailable."""
    try:
        peak = next(int(line.split()[1]) / 1024 for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("VmHWM:"))
        if reset:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
    except (OSError, StopIteration):
        return None
    return round(peak, 1)


def _sample_tree_rss(proc: subprocess.Popen, every_s: float = 0.05) -> tuple[list[tuple[float, int]], Callable[[], None]]:
    """``(samples, stop)``: a thread appends ``(time.time(), resident bytes of proc's tree)``
    every ``every_s`` until ``stop()`` (which joins it)."""
    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.time(), _tree_rss(proc.pid)))
            time.sleep(every_s)

    th = threading.Thread(target=sample, daemon=True)
    th.start()

    def stop() -> None:
        done.set()
        th.join()

    return samples, stop


def _phase_peaks(samples: list[tuple[float, int]], marks: dict[str, float]) -> dict[str, float]:
    """Peak resident MB within each phase (from its start to the next phase's start; the
    last phase runs to the last sample; samples before the first are "startup")."""
    order = sorted(marks.items(), key=lambda kv: kv[1])
    out = {"startup": max((v for t, v in samples if t < order[0][1]), default=0) / 2**20} if order else {}
    for (name, t0), t1 in zip(order, [t for _, t in order[1:]] + [math.inf]):
        out[name] = max((v for t, v in samples if t0 <= t < t1), default=0) / 2**20
    return {k: round(v, 1) for k, v in out.items()}


def memory(args: argparse.Namespace) -> dict:
    forced = fast_registered_restorers() if args.chain == "auto+registered" else []
    rows = []
    for minutes in args.minutes:
        src = synth(WORK / f"mem_{minutes:g}min.flac", minutes * 60, seed=int(minutes))
        out = fresh(WORK / f"mem_out_{minutes:g}")
        cmd = [sys.executable, __file__, "memrun", "--file", str(src), "--out", str(out), "--force", ",".join(forced)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, OMP_NUM_THREADS="1"))
        samples, stop = _sample_tree_rss(proc, args.every_s)
        try:
            out_text, err = proc.communicate(timeout=args.deadline_s)
            res = {} if proc.returncode == 0 else {"error": err[-500:]}
        except subprocess.TimeoutExpired:  # report how far it got and the peaks up to then
            spilled = sum(p.stat().st_size for p in (out / ".archtool-tmp").glob("*.f32"))
            current_phase_peak = _python_peak_mb(pid=proc.pid)
            proc.kill()
            out_text, _ = proc.communicate()
            res = {"status": "stopped at the deadline", "restored_minutes_at_stop": round(spilled / 8 / RATE / 60, 1)}
        stop()
        wall = time.perf_counter() - t0
        marks: dict[str, float] = {}
        python_peaks: dict[str, float] = {}
        for line in out_text.splitlines():
            if line.startswith("{"):
                msg = json.loads(line)
                if "phase" in msg:
                    marks[msg["phase"]] = msg["t"]
                    python_peaks.update({k: v for k, v in msg["python_peak_mb"].items() if v is not None})
                elif not res:
                    res = msg
        if res.get("status") == "stopped at the deadline" and marks:
            python_peaks[max(marks, key=marks.get) + " (until stopped)"] = current_phase_peak
        rss = [v for _, v in samples]
        working = [v for t, v in samples if t < marks.get("exit", math.inf)]
        rows.append({"minutes": minutes, "peak_rss_mb": round(max(rss, default=0) / 2**20, 1),
                     "peak_rss_mb_before_exit": round(max(working, default=0) / 2**20, 1),
                     "median_rss_mb": round(float(np.median(rss)) / 2**20, 1) if rss else None,
                     "peak_rss_mb_by_phase": _phase_peaks(samples, marks),
                     "python_peak_mb_by_phase": python_peaks,
                     "wall_s": round(wall, 1), "x_real_time": round(minutes * 60 / wall, 1), **res,
                     "load_after": loadavg()})
        fresh(out)
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return {"section": "memory", "machine": machine(), "chain": args.chain, "forced": forced, "rows": rows}


# -- dask -----------------------------------------------------------------------------------------
def _noop(i: int) -> int:
    return i


def dask_overhead(args: argparse.Namespace) -> dict:
    from distributed import Client, LocalCluster, wait

    from archtool.engine.batch import run_batch
    from archtool.engine.settings import RestoreSettings

    src = WORK / f"tiny_{args.files}"
    if args.files and not src.exists():
        tmp = src.with_name(src.name + ".part")
        from archtool.audio.io import write_audio

        tmp.mkdir(parents=True, exist_ok=True)
        for i in range(args.files):
            x = (0.1 * np.sin(2 * np.pi * (300 + i) * np.arange(4410) / RATE)).astype(np.float32)[None]
            write_audio(tmp / f"f{i:04d}.wav", x, RATE, OutputSpec("wav", 16))
        tmp.rename(src)
    out: dict = {"section": "dask", "machine": machine(), "workers": args.workers, "load_before": loadavg()}
    t0 = time.perf_counter()
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=False, dashboard_address=None,
                      memory_limit=0) as cluster, \
            Client(cluster) as client:
        out["cluster_start_s"] = round(time.perf_counter() - t0, 2)
        client.submit(_noop, -1).result()
        c0 = time.process_time()  # background CPU of 100 idle workers (heartbeats...), to subtract
        time.sleep(args.idle_s)
        idle_rate = (time.process_time() - c0) / args.idle_s
        t0, c0 = time.perf_counter(), time.process_time()
        futs = client.map(_noop, range(args.tasks), pure=False)
        wait(futs)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        out["noop_tasks"] = args.tasks
        out["noop_ms_per_task"] = round(1000 * dt / args.tasks, 3)
        out["noop_cpu_ms_per_task"] = round(1000 * cpu / args.tasks, 3)  # scheduler + workers + client, all here
        out["idle_cpu_fraction"] = round(idle_rate, 3)
        out["noop_cpu_ms_per_task_minus_idle"] = round(1000 * (cpu - idle_rate * dt) / args.tasks, 3)
        if not args.files:
            return out
        del futs
        d_out = fresh(WORK / "tiny_out_dask")
        t0 = time.perf_counter()
        batch = run_batch(src, d_out, RestoreSettings(preset="none"), scheduler=client)
        dt_dask = time.perf_counter() - t0
    l_out = fresh(WORK / "tiny_out_local")
    t0 = time.perf_counter()
    local = run_batch(src, l_out, RestoreSettings(preset="none"), jobs=1)
    dt_local = time.perf_counter() - t0
    same = ({r["input"]: r["output_sha256"] for r in batch.results}
            == {r["input"]: r["output_sha256"] for r in local.results})
    out.update(files=args.files, file_seconds=0.1, dask_wall_s=round(dt_dask, 2), local_1_worker_wall_s=round(dt_local, 2),
               dask_ms_per_file=round(1000 * dt_dask / args.files, 2),
               local_ms_per_file=round(1000 * dt_local / args.files, 2),
               dask_minus_local_ms_per_file=round(1000 * (dt_dask - dt_local) / args.files, 2),
               failed=len(batch.failed), same_bytes_as_local=same, load_after=loadavg())
    return out


def _start_cluster(scratch: Path) -> tuple[str, list[subprocess.Popen]]:
    """A scheduler and two single-thread workers (with nannies) on 127.0.0.1, as separate processes."""
    import socket

    from distributed import Client

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    scratch.mkdir(parents=True, exist_ok=True)
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], cwd=scratch, env=env,
                              stdout=subprocess.DEVNULL, stderr=open(scratch / "scheduler.log", "w"))]
    for i in range(2):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--host", "127.0.0.1", "--nthreads", "1",
             "--nworkers", "1", "--no-dashboard", "--local-directory", str(scratch / f"w{i}")],
            cwd=scratch, env=env, stdout=subprocess.DEVNULL, stderr=open(scratch / f"worker{i}.log", "w")))
    with Client(address, timeout="60s", set_as_default=False) as client:
        client.wait_for_workers(2, timeout=120)
    return address, procs


def _echo(data: bytes) -> bytes:
    """A shipped job's transport without the restoration: write the bytes to a temporary file
    on the worker, read them back, send them back."""
    import tempfile

    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        f.seek(0)
        return f.read()


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its living descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    return _proc_tree(pid, lambda _pid, fields, _entry: (int(fields[11]) + int(fields[12])) / tick)


def _roundtrip(address: str, files: list[Path], out_dir: Path, repeats: int) -> dict:
    """Wall time and CPU time (client, scheduler and workers: this process tree) of shipping each
    file to a worker and back and writing it (no restoration)."""
    import hashlib

    from distributed import Client

    out_dir.mkdir(parents=True, exist_ok=True)
    times, cpus = [], []
    with Client(address, timeout="60s", set_as_default=False) as client:
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), _tree_cpu_s(os.getpid())
            for path in files:
                data = path.read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                back = client.submit(_echo, data, pure=False).result()
                assert hashlib.sha256(back).hexdigest() == digest
                (out_dir / path.name).write_bytes(back)
            times.append(time.perf_counter() - t0)
            cpus.append(_tree_cpu_s(os.getpid()) - c0)
    mb = sum(p.stat().st_size for p in files) / 2**20
    med, cpu = float(np.median(times)), float(np.median(cpus))
    return {"mb": round(mb, 1), "wall_s": [round(t, 3) for t in times], "ms_per_mb": round(1000 * med / mb, 2),
            "ms_per_file": round(1000 * med / len(files), 1), "cpu_s": [round(c, 3) for c in cpus],
            "cpu_ms_per_mb": round(1000 * cpu / mb, 2), "load_after": loadavg()}


def ship_overhead(args: argparse.Namespace) -> dict:
    from archtool.engine.batch import run_batch
    from archtool.engine.settings import RestoreSettings

    src = collection(args.files, args.seconds)
    warm = WORK / "ship_warm"
    synth(warm / "warm.flac", 2.0, seed=99)
    mb = sum(p.stat().st_size for p in src.glob("*.flac")) / 2**20
    address, procs = _start_cluster(WORK / "ship_cluster")
    out: dict = {"section": "ship", "machine": machine(), "files": args.files, "seconds_each": args.seconds,
                 "input_mb": round(mb, 1), "workers": "2 x 1 thread (separate processes, 127.0.0.1)", "presets": {}}
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ll]arge (object|graph).*")
            out["transport_only"] = _roundtrip(address, sorted(src.glob("*.flac")), WORK / "ship_echo", 5)
        for preset in args.preset:
            settings = RestoreSettings(preset=preset)
            for transfer in ("shared", "ship"):  # warm-up: worker imports, analysis models
                dst = fresh(WORK / f"ship_warm_out_{transfer}")
                run_batch(warm, dst, settings, scheduler=address, transfer=transfer)
            walls: dict[str, list[float]] = {"shared": [], "ship": []}
            hashes: dict[str, dict] = {}
            loads = []
            for rep in range(args.repeats):
                for transfer in ("shared", "ship") if rep % 2 == 0 else ("ship", "shared"):
                    dst = fresh(WORK / f"ship_out_{transfer}")
                    loads.append(loadavg()[0])
                    t0 = time.perf_counter()
                    batch = run_batch(src, dst, settings, scheduler=address, transfer=transfer)
                    walls[transfer].append(round(time.perf_counter() - t0, 2))
                    assert not batch.failed, batch.failed[0]["error"]
                    assert {r["transfer"] for r in batch.results} == {transfer}
                    hashes[transfer] = {r["input"]: r["output_sha256"] for r in batch.results}
            med = {k: float(np.median(v)) for k, v in walls.items()}
            out["presets"][preset] = {
                "wall_s": walls, "median_s": med, "ratio_ship_over_shared": round(med["ship"] / med["shared"], 3),
                "ship_minus_shared_s_per_file": round((med["ship"] - med["shared"]) / args.files, 3),
                "x_real_time_shared": round(args.files * args.seconds / med["shared"], 1),
                "load_1min_at_each_run": loads, "same_bytes": hashes["shared"] == hashes["ship"]}
            print(json.dumps({preset: out["presets"][preset]}), file=sys.stderr, flush=True)
    finally:
        for proc in procs[::-1]:
            proc.terminate()
        for proc in procs[::-1]:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("throughput")
    p.add_argument("--files", type=int, default=80)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--preset", default="auto")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--snapshot", nargs="?", const="HEAD", default=None, metavar="REV",
                   help="run the timed processes from a git archive of REV (default HEAD)")
    p = sub.add_parser("tprun")
    p.add_argument("--jobs", type=int, required=True)
    p.add_argument("--src", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--preset", default="auto")
    p = sub.add_parser("memory")
    p.add_argument("--minutes", type=float, nargs="+", default=[10, 60, 180])
    p.add_argument("--chain", choices=["auto", "auto+registered"], default="auto+registered")
    p.add_argument("--deadline-s", type=float, default=None, help="stop a file's run after this long (peak so far)")
    p.add_argument("--every-s", type=float, default=0.05, help="seconds between samples of the process tree's memory")
    p = sub.add_parser("memrun")
    p.add_argument("--file", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--force", default="")
    p = sub.add_parser("dask")
    p.add_argument("--workers", type=int, default=100)
    p.add_argument("--tasks", type=int, default=2000)
    p.add_argument("--files", type=int, default=300, help="tiny files through the engine (0: skip)")
    p.add_argument("--idle-s", type=float, default=5.0)
    p = sub.add_parser("ship")
    p.add_argument("--files", type=int, default=6)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--preset", nargs="*", default=["none", "auto"], help="none given: the transport alone")
    p.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    if args.cmd in ("memrun", "tprun"):
        {"memrun": memrun, "tprun": tprun}[args.cmd](args)
        return
    result = {"throughput": throughput, "memory": memory, "dask": dask_overhead, "ship": ship_overhead}[args.cmd](args)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
