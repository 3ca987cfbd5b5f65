"""Build a degraded corpus on disk: cut clean inputs into clips, degrade each, write labels.

Layout of ``out_dir``::

    clean/<relative path>_<clip>.wav      the clean clip (after resampling to --rate)
    degraded/<relative path>_<clip>.wav   the same clip degraded (same name)
    labels.jsonl                          one JSON object per clip, in clip order

Each clip is seeded by ``seed_for(seed, clip_id)``, so the bytes do not depend on the
number of worker processes. Files that cannot be decoded are reported and skipped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from archtool.errors import ArchtoolError, UsageError

_DEGRADERS: dict[tuple, Any] = {}
_DECODED: dict[str, tuple[np.ndarray, int]] = {}  # per process: the last whole-file decode
WHOLE_FILE_MAX_S = 600.0  # files up to this long are decoded once and cut in memory


@dataclass(frozen=True)
class ClipPlan:
    """One clip to produce: where it comes from and what it is called."""

    clip_id: str
    source: str  # absolute path of the input file
    relpath: str  # input path relative to the input root
    start_s: float
    duration_s: float | None  # None: the whole file
    file_duration_s: float = 0.0


@dataclass
class CorpusResult:
    """What a corpus run produced: per-clip label dicts (in order) and per-file failures."""

    clips: list[dict] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (path, message): labels to distrust

    @property
    def ok(self) -> bool:
        return not self.failures


def plan_clips(files: list[tuple[Path, str, float]], clip_seconds: float | None,
               count: int | None) -> list[ClipPlan]:
    """Clip list from ``(path, relpath, duration_s)`` triples, sorted by relpath.

    With ``clip_seconds``, each file gives floor(duration / clip_seconds) clips (one whole-file
    clip when shorter). ``count`` takes clips round-robin across files (clip 0 of every file,
    then clip 1...) and, when more are asked than exist, repeats them as new rounds
    (``_r1``, ``_r2``...) that are degraded differently.
    """
    per_file: list[list[ClipPlan]] = []
    for path, rel, dur in sorted(files, key=lambda f: f[1]):
        stem = rel.rsplit(".", 1)[0] if "." in Path(rel).name else rel
        if clip_seconds is None or dur < clip_seconds:
            per_file.append([ClipPlan(f"{stem}_0000", str(path), rel, 0.0, None, dur)])
            continue
        n = int(dur // clip_seconds)
        per_file.append([ClipPlan(f"{stem}_{k:04d}", str(path), rel, k * clip_seconds, clip_seconds, dur)
                         for k in range(n)])
    ordered: list[ClipPlan] = []
    depth = max((len(c) for c in per_file), default=0)
    for k in range(depth):
        ordered.extend(c[k] for c in per_file if k < len(c))
    if count is None or not ordered:
        return ordered
    out = ordered[:count]
    r = 1
    while len(out) < count:
        for c in ordered[: count - len(out)]:
            out.append(ClipPlan(f"{c.clip_id}_r{r}", c.source, c.relpath, c.start_s, c.duration_s,
                                c.file_duration_s))
        r += 1
    return out


def _degrader(recipe: str, noise_dir, rir_dir, background_dir):
    key = (recipe, noise_dir, rir_dir, background_dir)
    if key not in _DEGRADERS:
        from archtool.degrade.degrader import Degrader

        _DEGRADERS[key] = Degrader(recipe, noise_dir, rir_dir, background_dir)
    return _DEGRADERS[key]


# A "clean" clip whose own DC offset exceeds this (-60 dBFS) makes its labels wrong: they list no
# dc_offset, yet a detector rightly finds one. Such clips are marked (``clean_dc_offset``) and
# their sources named in a warning; remove the offset first (a high-pass or mean subtraction).
CLEAN_DC_WARN = 1e-3


def make_clip(plan: ClipPlan, out_dir: str, recipe: str, seed: int, rate: int | None,
              noise_dir: str | None, rir_dir: str | None, background_dir: str | None,
              fmt: str) -> dict:
    """Read, resample, degrade and write one clip; returns its labels line (or an ``error``)."""
    from archtool.audio.io import OutputSpec, read_audio, write_audio
    from archtool.degrade.sources import resample
    from archtool.engine.atomic import atomic_path
    from archtool.seeding import seed_for

    try:
        stat = Path(plan.source).stat()
        key = f"{plan.source}\0{stat.st_mtime_ns}\0{stat.st_size}"  # a changed file is decoded again
        if key in _DECODED:
            whole, sr = _DECODED[key]
        elif plan.file_duration_s <= WHOLE_FILE_MAX_S:
            whole, sr = read_audio(plan.source)
            _DECODED.clear()
            _DECODED[key] = (whole, sr)
        else:
            whole = None
        if whole is not None:
            i0 = int(round(plan.start_s * sr))
            i1 = whole.shape[1] if plan.duration_s is None else i0 + int(round(plan.duration_s * sr))
            audio = whole[:, i0:i1]
            if audio.shape[1] == 0:
                raise ValueError(f"no audio at {plan.start_s:.3f} s (the file is shorter than its header says)")
        else:
            audio, sr = read_audio(plan.source, start_s=plan.start_s or None, duration_s=plan.duration_s)
            if plan.duration_s is not None:
                audio = audio[:, : int(round(plan.duration_s * sr))]
        if rate and rate != sr:
            audio = resample(audio, sr, rate)
            sr = rate
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        clean_dc = float(np.max(np.abs(audio.mean(axis=1, dtype=np.float64)))) if audio.size else 0.0
        deg = _degrader(recipe, noise_dir, rir_dir, background_dir)
        rng = np.random.default_rng(seed_for(seed, plan.clip_id))
        degraded, labels = deg(audio, sr, rng)
        gain = 1.0
        if fmt == "flac":
            spec = OutputSpec("flac", 24)
            peak = float(max(np.max(np.abs(audio)), np.max(np.abs(degraded))))
            if peak > 1.0:  # integer formats clip at full scale: scale the pair together instead
                gain = 0.999 / peak
                audio, degraded = audio * np.float32(gain), degraded * np.float32(gain)
        else:
            spec = OutputSpec("wav", 32, float=True)
        out = Path(out_dir)
        name = f"{plan.clip_id}{spec.extension}"
        for sub, x in (("clean", audio), ("degraded", degraded)):
            final = out / sub / name
            with atomic_path(final, out) as tmp:
                write_audio(tmp, x, sr, spec)
        line = {"clip": plan.clip_id, "clean": f"clean/{name}", "degraded": f"degraded/{name}",
                "source": plan.relpath, "start_s": plan.start_s, "seed": seed_for(seed, plan.clip_id),
                "output_gain": gain} | labels
        if clean_dc > CLEAN_DC_WARN:
            line["clean_dc_offset"] = round(clean_dc, 6)  # the source's own, not a unit's: see CLEAN_DC_WARN
        return line
    except (ArchtoolError, ValueError, LookupError, RuntimeError, OSError) as exc:
        reason = exc.reason if hasattr(exc, "reason") else str(exc)
        return {"clip": plan.clip_id, "source": plan.relpath, "path": plan.source, "error": reason}


def _probe_duration(path: str) -> tuple[float | None, str | None]:
    from archtool.audio.io import probe

    try:
        info = probe(path)
    except ArchtoolError as exc:
        return None, getattr(exc, "reason", str(exc))
    if info.duration_s <= 0:
        return None, "no duration (empty or truncated file)"
    return info.duration_s, None


def degrade_corpus(input_path: str | Path, out_dir: str | Path, recipe: str | Path, *, seed: int = 0,
                   count: int | None = None, clip_seconds: float | None = None, rate: int | None = None,
                   noise_dir: str | Path | None = None, rir_dir: str | Path | None = None,
                   background_dir: str | Path | None = None, jobs: int = 1, fmt: str = "wav",
                   on_total: Callable[[int], None] | None = None,
                   on_clip: Callable[[dict], None] | None = None) -> CorpusResult:
    """Degrade every clip of ``input_path`` (a file or a folder, scanned recursively) into ``out_dir``.

    ``recipe`` is a built-in name or a TOML path (validated before any work). Returns a
    :class:`CorpusResult`; bad inputs are listed in ``failures`` and never stop the batch.
    Raises UsageError for unusable arguments and RecipeError for a bad recipe.
    """
    from archtool.degrade.recipe import load_recipe
    from archtool.engine.atomic import clean_tmp, write_text_atomic
    from archtool.engine.scan import scan

    if fmt not in ("wav", "flac"):
        raise UsageError(f"--format must be wav or flac, not {fmt!r}")
    if count is not None and count < 1:
        raise UsageError("--count must be at least 1")
    if clip_seconds is not None and clip_seconds <= 0:
        raise UsageError("--clip-seconds must be positive")
    if rate is not None and not 8000 <= rate <= 192000:
        raise UsageError("--rate must be between 8000 and 192000 Hz")
    if jobs < 1:
        raise UsageError("--jobs must be at least 1")
    for label, d in (("--noise-dir", noise_dir), ("--rir-dir", rir_dir), ("--background-dir", background_dir)):
        if d is not None and not Path(d).exists():
            raise UsageError(f"{label} {d}: no such folder")
    load_recipe(recipe)  # validate before any work
    recipe_key = str(Path(recipe).resolve()) if Path(str(recipe)).exists() else str(recipe)
    in_path, out = Path(input_path), Path(out_dir)
    if in_path.exists() and in_path.is_dir() and in_path.resolve() == out.resolve():
        raise UsageError("OUT_DIR must differ from CLEAN_DIR")
    candidates, skipped = scan(in_path, exclude=out)
    out.mkdir(parents=True, exist_ok=True)
    clean_tmp(out)
    result = CorpusResult(skipped=[(str(s.path), s.reason) for s in skipped])
    paths = sorted(candidates, key=lambda c: c.relpath)
    durations = _parallel(_probe_duration, [(str(c.path),) for c in paths], jobs)
    files = []
    for c, (dur, err) in zip(paths, durations):
        if err:
            result.failures.append((str(c.path), err))
        else:
            files.append((c.path, c.relpath, dur))
    plans = plan_clips(files, clip_seconds, count)
    if on_total:
        on_total(len(plans))
    dirs = tuple(None if d is None else str(Path(d).resolve()) for d in (noise_dir, rir_dir, background_dir))
    # work file by file (each file decoded once per worker); labels keep the plan's order
    order = sorted(range(len(plans)), key=lambda i: (plans[i].relpath, plans[i].start_s, i))
    args = [(plans[i], str(out), recipe_key, seed, rate, *dirs, fmt) for i in order]
    lines = _parallel(make_clip, args, jobs, on_clip)
    by_plan = [None] * len(plans)
    for i, line in zip(order, lines):
        by_plan[i] = line
    failed_files: set[str] = set()
    dc_by_source: dict[str, tuple[str, float]] = {}
    for plan, line in zip(plans, by_plan):
        if "clean_dc_offset" in line:
            old = dc_by_source.get(line["source"], (plan.source, 0.0))
            dc_by_source[line["source"]] = (plan.source, max(old[1], line["clean_dc_offset"]))
    for path, dc in dc_by_source.values():
        result.warnings.append((path, f"the clean recording carries a DC offset up to {dc:.4f} "
                                      f"({20 * np.log10(dc):.0f} dBFS): its clips' labels list no dc_offset "
                                      "(marked clean_dc_offset in labels.jsonl); remove the offset first"))
    for line in by_plan:
        if "error" in line:
            if line["source"] not in failed_files:
                failed_files.add(line["source"])
                result.failures.append((line["path"], line["error"]))
        else:
            result.clips.append(line)
    text = "".join(json.dumps(c, sort_keys=True, allow_nan=False) + "\n" for c in result.clips)
    write_text_atomic(out / "labels.jsonl", text, out)
    clean_tmp(out)
    return result


def _parallel(fn: Callable, arg_list: list[tuple], jobs: int, each: Callable | None = None) -> list:
    """``[fn(*a) for a in arg_list]`` in order, over ``jobs`` processes; ``each`` sees every result."""
    results = []
    if jobs <= 1 or len(arg_list) <= 1:
        for a in arg_list:
            r = fn(*a)
            if each:
                each(r)
            results.append(r)
        return results
    from joblib import Parallel, delayed

    for r in Parallel(n_jobs=jobs, backend="loky", return_as="generator", batch_size=1)(
            delayed(fn)(*a) for a in arg_list):
        if each:
            each(r)
        results.append(r)
    return results
