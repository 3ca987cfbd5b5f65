"""User gap lists for ``archtool restore --gaps FILE``: a CSV of intervals to fill.

Format (UTF-8 text; ``#`` starts a comment; blank lines are ignored)::

    file,start,end            # optional header (also: start,end / start_s,end_s)
    tape01.wav,12.5,12.62     # seconds ...
    tape01.wav,1:02.250,1:02.4   # ... or [h:]mm:ss(.fff)
    0.75,0.80                 # two columns: applies to every file

``file`` is matched against the input's path (equal, or its trailing components),
then against its base name. Rows for the same file are sorted and overlapping intervals
merged. A malformed row raises :class:`RecipeError` naming the file and line.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from archtool.analyze.profile import Finding, Profile
from archtool.errors import RecipeError

_HEADER_NAMES = {"file", "path", "start", "end", "start_s", "end_s"}


def parse_time(text: str) -> float:
    """Seconds from ``"12.5"``, ``"1:02.25"`` or ``"1:00:02.25"``; ValueError otherwise."""
    text = text.strip()
    if not text:
        raise ValueError("empty time")
    parts = text.split(":")
    if len(parts) > 3:
        raise ValueError(f"{text!r} is not a time")
    total = 0.0
    for i, part in enumerate(parts):
        value = float(part)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{text!r} is not a non-negative time")
        if i > 0 and value >= 60:
            raise ValueError(f"{text!r}: minutes and seconds must be below 60")
        total = total * 60.0 + value
    return total


@dataclass
class GapList:
    """Intervals (seconds) per file key; ``"*"`` holds rows without a file column."""

    path: str
    by_file: dict[str, list[list[float]]] = field(default_factory=dict)

    def intervals_for(self, path: str | Path) -> list[list[float]]:
        """Merged intervals for an input, plus the ``*`` rows.

        A row's file matches ``path`` (relative or absolute) when equal to it or to its
        trailing path components; when several rows' files match, the most specific
        (most components) wins, so ``a/tape.wav`` overrides a bare ``tape.wav``.
        """
        rel = Path(path).as_posix()
        rows = list(self.by_file.get("*", []))
        hits = [k for k in self.by_file if k != "*" and (rel == k or rel.endswith("/" + k))]
        if hits:
            depth = max(k.count("/") for k in hits)
            for k in hits:
                if k.count("/") == depth:
                    rows += self.by_file[k]
        return merge_intervals(rows)

    def files(self) -> list[str]:
        return sorted(k for k in self.by_file if k != "*")


def merge_intervals(rows: list[list[float]]) -> list[list[float]]:
    """Sort and merge overlapping or touching ``[start, end]`` intervals."""
    out: list[list[float]] = []
    for a, b in sorted(rows):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def parse_gap_list(text: str, path: str | Path = "<gaps>") -> GapList:
    """Parse gap-list CSV ``text`` (see module docstring); ``path`` names it in errors."""
    gl = GapList(str(path))
    lines = text.splitlines()
    reader = csv.reader(io.StringIO("\n".join(ln.split("#", 1)[0] for ln in lines)))
    seen_data = False
    for lineno, row in enumerate(reader, start=1):
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        while cells and not cells[-1]:
            cells.pop()
        if not seen_data and {c.lower() for c in cells} <= _HEADER_NAMES and len(cells) in (2, 3):
            seen_data = True
            continue
        seen_data = True
        if len(cells) == 2:
            key, (a_txt, b_txt) = "*", cells
        elif len(cells) == 3:
            key, a_txt, b_txt = cells
            if not key:
                raise RecipeError(path, "empty file name in the first column", lineno)
        else:
            raise RecipeError(path, f"expected 'start,end' or 'file,start,end', got {len(cells)} columns", lineno)
        try:
            a, b = parse_time(a_txt), parse_time(b_txt)
        except ValueError as exc:
            raise RecipeError(path, f"bad time: {exc}", lineno) from None
        if b <= a:
            raise RecipeError(path, f"interval end {b_txt} is not after its start {a_txt}", lineno)
        gl.by_file.setdefault(Path(key).as_posix() if key != "*" else "*", []).append([a, b])
    if not gl.by_file:
        raise RecipeError(path, "the gap list has no intervals")
    return gl


def with_user_gaps(profile: Profile, intervals_s: list[list[float]]) -> Profile:
    """A copy of ``profile`` whose ``gaps`` finding also lists the user's intervals.

    The finding is marked detected (confidence 1: a person listed them) so that a
    preset mapping ``gaps`` to ``inpaint`` plans the step; its ``intervals_s`` are the
    union of the analysed and the listed intervals, and ``user_intervals_s`` keeps the
    listed ones for the report.
    """
    if not intervals_s:
        return profile
    findings = []
    found = False
    for f in profile.findings:
        if f.kind == "gaps":
            found = True
            analysed = [list(map(float, iv)) for iv in (f.measures.get("intervals_s") or [])] if f.detected else []
            measures = {**f.measures, "intervals_s": merge_intervals(analysed + list(intervals_s)),
                        "user_intervals_s": merge_intervals(list(intervals_s))}
            f = replace(f, detected=True, severity=max(f.severity, 0.05), confidence=1.0, measures=measures)
        findings.append(f)
    if not found:
        iv = merge_intervals(list(intervals_s))
        findings.append(Finding("gaps", True, 0.05, 1.0, {"intervals_s": iv, "user_intervals_s": iv}))
    return replace(profile, findings=findings)


def read_gap_list(path: str | Path) -> GapList:
    """Read and parse a gap-list file; RecipeError when missing, unreadable or malformed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(path, "gap list not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(path, f"cannot read the gap list ({exc})") from None
    return parse_gap_list(text, path)
