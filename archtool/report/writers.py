"""Batch reports as text: report.json (everything) and report.csv (one row per file).

The caller writes them (atomically, see archtool.engine.atomic)."""
from __future__ import annotations

import csv
import io
import json
from typing import Any, Sequence

from archtool import __version__
from archtool.report.records import CSV_FIELDS, csv_row


def summary(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in results if r["status"] in ("ok", "done")]
    hours = sum(r.get("duration_s") or 0 for r in ok) / 3600
    seconds = sum(r.get("time_s") or 0 for r in results)
    return {
        "files": len(results), "ok": sum(r["status"] == "ok" for r in results),
        "already_done": sum(r["status"] == "done" for r in results),
        "planned": sum(r["status"] == "planned" for r in results),
        "failed": sum(r["status"] == "failed" for r in results),
        "audio_hours": round(hours, 4), "processing_s": round(seconds, 2),
    }


def report_json(results: Sequence[dict[str, Any]], skipped: Sequence[Any], settings: dict[str, Any],
                command: str = "restore") -> str:
    """The whole batch as JSON: version, settings, summary, one entry per file, skipped files."""
    data = {
        "archtool_version": __version__, "command": command, "settings": settings,
        "summary": summary(results), "files": list(results),
        "skipped": [{"path": str(s.path), "reason": s.reason} for s in skipped],
    }
    return json.dumps(data, indent=2) + "\n"


def report_csv(results: Sequence[dict[str, Any]]) -> str:
    """One CSV row per file (see archtool.report.records.CSV_FIELDS)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow(csv_row(r))
    return buf.getvalue()
