"""Report rows: the per-file fields that report.csv and the terminal table show."""
from __future__ import annotations

from typing import Any

CSV_FIELDS = (
    "input", "status", "output", "duration_s", "sample_rate", "channels", "bits",
    "loudness_before_lufs", "loudness_after_lufs", "true_peak_after_dbtp", "gain_db", "limited",
    "steps", "time_s", "realtime_factor", "notes", "error",
)


def csv_row(result: dict[str, Any]) -> dict[str, Any]:
    """Flatten a pipeline result into one CSV row (steps as ``a;b;c``)."""
    row = {k: result.get(k) for k in CSV_FIELDS}
    row["steps"] = ";".join(s["restorer"] for s in result.get("steps") or [])
    row["notes"] = "; ".join(result.get("notes") or [])
    return {k: ("" if v is None else v) for k, v in row.items()}
