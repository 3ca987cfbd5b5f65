"""Restore one file: decode -> plan -> chain (chunked) -> loudness (two passes) -> encode -> provenance.

Memory is bounded by the block size: the restored signal is spilled to a float32
temporary file in pass 1 (while its loudness and true peak are measured) and read
back in pass 2 (gain, limiter if needed, encode). Pass 2 works on blocks of its own
size (:func:`render_block`), which depends only on the sample rate: the limiter's
temporaries are its largest arrays, and its output then does not depend on the block
size chosen for the restorers. Freed heap memory is returned to the system after each
phase, and within a pass whenever the footprint creeps above where the pass settled
(:mod:`archtool.engine.memory`), so peak memory does not grow with the file's length.
Outputs appear atomically.
"""
from __future__ import annotations

import json
import math
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from archtool import __version__
from archtool.audio.bext import BextLoudness, audio_data_md5, coding_history_line, patch_bext_loudness
from archtool.audio.io import (AudioInfo, BlockReader, BlockWriter, OutputSpec, probe, rescued,
                               transcode_with_gain)
from archtool.audio.loudness import LoudnessMeter, PeakLimiter, TruePeakMeter, decide_gain, settle_gain
from archtool.engine.atomic import atomic_path, sha256_file, write_text_atomic
from archtool.engine.chunking import iter_with_context, restore_chunks
from archtool.engine.devices import is_out_of_memory
from archtool.engine.manifest import is_done, resumed_figures
from archtool.engine.memory import HeapCeiling, release_free_memory
from archtool.engine.settings import RestoreSettings
from archtool.engine.spill import Spill
from archtool.engine.workers import one_blas_thread
from archtool.errors import ArchtoolError, InvalidAudioError
from archtool.restore.planning import Plan, plan_file, step_record
from archtool.seeding import seed_for

SIDECAR_SUFFIX = ".archtool.json"


@dataclass(frozen=True)
class Job:
    """One input file: where it is, its path relative to the input root, and the output
    path (relative to OUT_DIR) without extension."""

    path: Path
    relpath: str
    out_stem: str
    previous: dict[str, Any] | None = None


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 3)


# Pass 2's block (samples), whatever the restorers' block: the limiter holds about twenty
# float64 copies of its block with context (150 MB at 10 s of 44.1 kHz stereo, 50 MB at
# this size), and a fixed size makes pass 2's bytes independent of ``block_s``.
RENDER_BLOCK = 1 << 17


def render_block(limiter: PeakLimiter | None) -> int:
    """Samples per pass-2 block: RENDER_BLOCK, or 8 limiter contexts at high sample rates
    (so that the context, read twice per block, stays a small share of the work)."""
    return RENDER_BLOCK if limiter is None else max(RENDER_BLOCK, 8 * limiter.context)


def _render(source: Callable[[], Iterator[np.ndarray]], block: int, gain_db: float,
            limiter: PeakLimiter | None) -> Iterator[np.ndarray]:
    """Pass 2: the signal from ``source()`` with gain and, if needed, the limiter (given its context)."""
    gain = 10 ** (gain_db / 20)
    if limiter is None:
        for b in source():
            yield b * gain
        return
    for ext, left, n in iter_with_context(source(), block, limiter.context):
        y = ext * gain
        yield (y * limiter.gain_curve(y)[None])[:, left:left + n]


def _once_each(records: list[dict]) -> list[dict]:
    """Records in time order, one per interval (a gap that straddles two chunks is filled, the
    same way, in both)."""
    seen: dict[tuple[float, float], dict] = {}
    for r in records:  # keyed to 0.1 ms: the two chunks' file times may differ in the last digit
        seen.setdefault((round(r["start_s"], 4), round(r["end_s"], 4)), r)
    return [seen[k] for k in sorted(seen)]


def _history(info: AudioInfo, plan: Plan, spec: OutputSpec, gain_db: float, limited: bool,
             settings: RestoreSettings) -> list[str]:
    sr, ch = info.sample_rate, info.channels
    lines = [coding_history_line(sr, info.bits_per_sample, ch, _ascii(f"source {info.codec} {Path(info.path).name}"))]
    for step in plan.steps:
        lines.append(coding_history_line(sr, 32, ch, _ascii(f"archtool {__version__} {step.history_line()}")))
    if settings.normalize:
        lines.append(coding_history_line(
            sr, 32, ch, f"archtool {__version__} loudness(gain_db={gain_db:+.2f},target_lufs={settings.target_lufs:g},"
            f"ceiling_dbtp={settings.true_peak_dbtp:g},limiter={'on' if limited else 'off'})"))
    lines.append(coding_history_line(sr, spec.bits, ch, f"archtool {__version__} encode {spec.fmt}"))
    return lines


def _cpu_s() -> float:
    """CPU seconds of this process (all its threads) and of its finished children (ffmpeg)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def process_file(job: Job, settings: RestoreSettings, out_dir: Path, *, dry_run: bool = False,
                 resume: bool = True, device: str = "cpu") -> dict[str, Any]:
    """Restore ``job`` into ``out_dir``; never raises for a bad file: returns a result dict
    with ``status`` ok | done (already restored) | planned (dry run) | failed.

    BLAS runs on one thread throughout (:func:`archtool.engine.workers.one_blas_thread`), so
    the bytes do not depend on how many workers share the cores. ``timings["cpu_s"]`` is the
    CPU time the file took (this process and its ffmpeg children).
    """
    with one_blas_thread():
        return _process_file(job, settings, out_dir, dry_run=dry_run, resume=resume, device=device)


def _process_file(job: Job, settings: RestoreSettings, out_dir: Path, *, dry_run: bool,
                  resume: bool, device: str) -> dict[str, Any]:
    t0, cpu0 = time.perf_counter(), _cpu_s()
    result: dict[str, Any] = {"input": job.relpath, "path": str(job.path), "status": "failed", "error": None,
                              "notes": []}
    spill: Spill | None = None
    try:
        info = probe(job.path)
        result.update(duration_s=round(info.duration_s, 3), sample_rate=info.sample_rate,
                      channels=info.channels, codec=info.codec, bits=info.bits_per_sample)
        input_sha = sha256_file(job.path)
        settings_hash = settings.hash()
        result.update(input_sha256=input_sha, settings_hash=settings_hash)
        if resume and not dry_run and is_done(job.previous, input_sha, settings_hash, out_dir):
            result.update({k: v for k, v in (job.previous or {}).items() if k not in result})
            result.update(resumed_figures(out_dir, job.previous or {}))
            result.update(status="done", error=None, time_s=round(time.perf_counter() - t0, 3))
            return result
        options = {"gaps_file": settings.gaps_file, **dict(settings.extra)}
        plan = plan_file(job.path, info, settings.preset, options)
        release_free_memory()  # the analysis's per-frame arrays of the whole file are gone
        n_est = int(round(info.duration_s * info.sample_rate)) if info.duration_s else None
        step_records = [step_record(s, info.sample_rate, n_est) for s in plan.steps]
        result["steps"] = step_records
        result["notes"] += plan.notes
        profile = plan.profile.to_dict() if plan.profile is not None else None
        if profile is not None:
            result["profile"] = profile
        if dry_run:
            result.update(status="planned", time_s=round(time.perf_counter() - t0, 3))
            return result

        spec = OutputSpec.for_input(info, settings.output_format)
        out_rel = job.out_stem + spec.extension
        out_path = out_dir / out_rel
        sr, ch = info.sample_rate, info.channels
        block = max(1024, int(settings.block_s * sr))
        file_seed = seed_for(settings.seed, job.relpath)
        done: list[list[dict]] = [[] for _ in plan.steps]

        # Pass 1: decode, restore chunk by chunk, spill, measure.
        # With an empty chain the output of pass 1 is the input: it is measured once and
        # pass 2 decodes the input again instead of spilling it.
        meter_in = LoudnessMeter(sr, ch)
        meter_mid = LoudnessMeter(sr, ch) if plan.steps else meter_in
        peak_mid = TruePeakMeter(ch)
        spill = Spill(out_dir, ch) if plan.steps else None
        n_samples = 0
        residual_rel = None
        t_pass1 = time.perf_counter()
        with BlockReader(job.path, block, info=info) as reader:
            residual_ctx = None
            if settings.keep_residual:
                residual_rel = job.out_stem + ".residual" + spec.extension
                residual_ctx = atomic_path(out_dir / residual_rel, out_dir)
                residual_tmp = residual_ctx.__enter__()
                residual_writer = BlockWriter(residual_tmp, sr, ch, OutputSpec(spec.fmt if spec.fmt != "aiff" else "flac", 24))
                residual_writer.__enter__()
            try:
                if plan.steps:
                    chunks = restore_chunks(reader, sr, plan.steps, block, device, file_seed, done)
                else:
                    chunks = ((b, b) for b in reader)
                ceiling = HeapCeiling()
                for inp, out in chunks:
                    ceiling.step()  # the previous chunk's temporaries are free by now
                    if not np.isfinite(out).all():
                        raise InvalidAudioError(job.path, "restoration produced NaN or infinite samples")
                    meter_in.update(inp)
                    if meter_mid is not meter_in:
                        meter_mid.update(out)
                    peak_mid.update(out)
                    n_samples += out.shape[1]
                    if spill is not None:
                        spill.write(out)
                    if residual_ctx is not None:
                        residual_writer.write(inp - out)
            except BaseException as exc:
                if residual_ctx is not None:
                    residual_writer.__exit__(type(exc), exc, None)
                    residual_ctx.__exit__(type(exc), exc, None)
                raise
            if residual_ctx is not None:
                residual_writer.__exit__(None, None, None)
                residual_ctx.__exit__(None, None, None)
            shortfall = reader.shortfall_note()
            if shortfall:  # restored as far as it decodes; the archivist must know
                result["notes"].append(shortfall)
        t_pass1 = time.perf_counter() - t_pass1
        for rec, reported in zip(step_records, done):
            if reported:  # what was done replaces what was planned (e.g. which gaps were copied from where)
                rec["fills"] = _once_each(reported)
        release_free_memory()

        # Loudness decision (and refinement when limiting is needed).
        loud_in = meter_in.integrated()
        loud_mid, peak_mid_db = meter_mid.integrated(), peak_mid.dbtp
        limiter = None
        gain_db, note = 0.0, ""
        if settings.normalize:
            decision = decide_gain(loud_mid, peak_mid_db, settings.target_lufs, settings.true_peak_dbtp)
            if decision.limit:
                limiter = PeakLimiter(sr, settings.true_peak_dbtp)
        render = render_block(limiter)

        def pass2_source() -> Iterator[np.ndarray]:
            if spill is not None:
                return spill.blocks(render)
            return (b.astype(np.float64) for b in BlockReader(job.path, render, info=info))

        if settings.normalize:
            def render_loudness(g: float) -> float:
                m = LoudnessMeter(sr, ch)
                ceiling = HeapCeiling()
                for b in _render(pass2_source, render, g, limiter):
                    m.update(b)
                    ceiling.step()
                return m.integrated()

            gain_db, note = settle_gain(render_loudness, decision, settings.target_lufs)
            release_free_memory()
        elif peak_mid.sample_peak > 1.0 and not spec.float:
            note = "peaks above full scale were clipped (normalisation is off)"
        if note:
            result["notes"].append(note)

        # Pass 2: gain, limiter, encode to a temporary file, then rename into place.
        t_pass2 = time.perf_counter()
        # A plain gain needs no output measurement: the loudness figures follow exactly from
        # pass 1's block energies and the true peak from its peak. Only a limiter (or clipping
        # at full scale) changes the signal non-linearly, and then the output is measured.
        # a rescued input (only libsndfile reads it) cannot go through ffmpeg's one-process pass
        measure_out = limiter is not None or rescued(info) or (
            not spec.float and peak_mid.sample_peak * 10 ** (gain_db / 20) > 1.0)
        meter_out, peak_out = LoudnessMeter(sr, ch), TruePeakMeter(ch)
        history = _history(info, plan, spec, gain_db, limiter is not None, settings)
        metadata = ({"description": _ascii(f"archtool access copy of {Path(job.relpath).name}")[:256],
                     "originator": f"archtool {__version__}"[:32], "coding_history": "\r\n".join(history) + "\r\n"}
                    if spec.fmt == "wav" else {"CODING_HISTORY": "\n".join(history)})
        with atomic_path(out_path, out_dir) as tmp_out:
            if measure_out:
                with BlockWriter(tmp_out, sr, ch, spec, metadata) as writer:
                    ceiling = HeapCeiling()
                    for b in _render(pass2_source, render, gain_db, limiter):
                        meter_out.update(b)
                        peak_out.update(b)
                        writer.write(b)
                        ceiling.step()
            elif spill is not None:
                spill.close_writing()
                transcode_with_gain(spill.path, tmp_out, sr, ch, gain_db, spec, metadata, raw_float32=True)
            else:
                transcode_with_gain(job.path, tmp_out, sr, ch, gain_db, spec, metadata)
            true_peak_out = peak_out.dbtp if measure_out else peak_mid_db + gain_db
            stats = meter_out.stats() if measure_out else meter_mid.stats(gain_db)
            if spec.fmt == "wav":
                patch_bext_loudness(tmp_out, BextLoudness(
                    stats["integrated_lufs"], stats["loudness_range_lu"], true_peak_out,
                    stats["max_momentary_lufs"], stats["max_short_term_lufs"]))
            out_sha = sha256_file(tmp_out)
            out_md5 = audio_data_md5(tmp_out)
        t_pass2 = time.perf_counter() - t_pass2

        elapsed = time.perf_counter() - t0
        duration = n_samples / sr
        result.update(
            status="ok", output=out_rel, output_sha256=out_sha, output_audio_md5=out_md5,
            output_format=spec.fmt, output_bits=spec.bits if not spec.float else 32,
            output_float=spec.float, residual=residual_rel, duration_s=round(duration, 3),
            loudness_before_lufs=_finite(loud_in), loudness_after_lufs=_finite(stats["integrated_lufs"]),
            loudness_range_lu=_finite(stats["loudness_range_lu"]), true_peak_after_dbtp=_finite(true_peak_out),
            gain_db=round(gain_db, 3), limited=limiter is not None, coding_history=history,
            time_s=round(elapsed, 3), realtime_factor=round(duration / elapsed, 1) if elapsed > 0 else None,
            timings={"decode_restore_measure_s": round(t_pass1, 3), "normalize_encode_s": round(t_pass2, 3),
                     "cpu_s": round(_cpu_s() - cpu0, 3)},
        )
        sidecar_rel = job.out_stem + SIDECAR_SUFFIX
        sidecar = {
            "archtool_version": __version__,
            "input": {"path": job.relpath, "sha256": input_sha, "audio": info.to_dict() | {"path": job.relpath}},
            "output": {"path": out_rel, "sha256": out_sha, "audio_md5": out_md5, "format": spec.fmt,
                       "bits": result["output_bits"], "sample_rate": sr, "channels": ch},
            "settings": settings.to_dict(), "settings_hash": settings_hash, "seed": file_seed,
            "chain": step_records + ([{"restorer": "loudness", "params": {
                "gain_db": round(gain_db, 4), "target_lufs": settings.target_lufs,
                "ceiling_dbtp": settings.true_peak_dbtp, "limiter": limiter is not None}}] if settings.normalize else []),
            "profile": profile,
            "loudness": {"before_lufs": result["loudness_before_lufs"], "after_lufs": result["loudness_after_lufs"],
                         "range_lu": result["loudness_range_lu"], "true_peak_after_dbtp": result["true_peak_after_dbtp"]},
            "coding_history": history, "notes": result["notes"], "timings": result["timings"] | {"total_s": result["time_s"]},
        }
        write_text_atomic(out_dir / sidecar_rel, json.dumps(sidecar, indent=2) + "\n", out_dir)
        result["sidecar"] = sidecar_rel
        return result
    except ArchtoolError as exc:
        result["error"] = str(exc) if str(job.path) in str(exc) else f"{job.path}: {exc}"
    except OSError as exc:
        reason = exc.strerror or str(exc)
        result["error"] = f"{job.path}: {reason}"
    except Exception as exc:  # a restorer bug must not end the batch
        if is_out_of_memory(exc):
            raise  # engine.batch.restore_job retries with smaller chunks, then on CPU
        result["error"] = f"{job.path}: internal error ({type(exc).__name__}: {exc})"
    finally:
        if spill is not None:
            spill.remove()
        release_free_memory()  # a worker starts its next file from what it really holds
    result["time_s"] = round(time.perf_counter() - t0, 3)
    return result
