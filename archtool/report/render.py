"""Terminal rendering with rich: the batch progress display and the summary table."""
from __future__ import annotations

import time
from typing import Any, Sequence

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

STATUS_STYLE = {"ok": "green", "done": "cyan", "planned": "blue", "failed": "red"}


class BatchProgress:
    """Live progress: files done/failed, audio hours processed, speed (x real time), ETA."""

    def __init__(self, console: Console, description: str = "Restoring"):
        self.console = console
        self.description = description
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeRemainingColumn(), console=console, transient=False,
        )
        self.task = None
        self.t0 = time.perf_counter()
        self.failed = 0
        self.audio_s = 0.0

    def start(self, total: int) -> None:
        self.t0 = time.perf_counter()
        self.progress.start()
        self.task = self.progress.add_task(self.description, total=total, stats="")

    def advance(self, result: dict[str, Any]) -> None:
        if result["status"] == "failed":
            self.failed += 1
            self.progress.console.print(f"[red]failed[/red] {result.get('error')}", highlight=False, markup=True,
                                       soft_wrap=True)
        else:
            self.audio_s += result.get("duration_s") or 0.0
        elapsed = max(1e-6, time.perf_counter() - self.t0)
        stats = (f"failed {self.failed}  audio {self.audio_s / 3600:.3f} h  "
                 f"{self.audio_s / elapsed:.1f}x real time")
        self.progress.update(self.task, advance=1, stats=stats)

    def stop(self) -> None:
        self.progress.stop()


def _fmt(v: Any, spec: str = "") -> str:
    if v is None or v == "":
        return "-"
    return format(v, spec) if spec else str(v)


def results_table(results: Sequence[dict[str, Any]], max_rows: int = 200, width: int = 120) -> Table:
    """One row per file: status, duration, loudness before/after, true peak, steps, note or error.

    Figures never wrap. Below 110 columns (``width``, the console's) the loudness figures
    share one column ("in → out") and the true peak is left to report.csv, so that an
    80-column terminal still shows whole names, steps and notes."""
    compact = width < 110
    # a narrow terminal gets a table without vertical rules: 8 more columns for the text
    table = Table(title="archtool restore", show_lines=False, expand=False,
                  box=box.SIMPLE_HEAD if compact else box.HEAVY_HEAD)
    shown = list(results)[:max_rows]
    table.add_column("file", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("dur s", justify="right", no_wrap=True)
    if compact:
        table.add_column("LUFS in → out", justify="right", no_wrap=True)
    else:
        for col in ("LUFS in", "LUFS out", "dBTP out"):
            table.add_column(col, justify="right", no_wrap=True)
    table.add_column("steps", overflow="fold")
    table.add_column("note / error", overflow="fold")
    for r in shown:
        style = STATUS_STYLE.get(r["status"], "")
        steps = ", ".join(s["restorer"] for s in r.get("steps") or []) or "-"
        note = r.get("error") or "; ".join(r.get("notes") or []) or ""
        lufs_in, lufs_out = _fmt(r.get("loudness_before_lufs"), ".1f"), _fmt(r.get("loudness_after_lufs"), ".1f")
        loudness = [f"{lufs_in} → {lufs_out}"] if compact else [
            lufs_in, lufs_out, _fmt(r.get("true_peak_after_dbtp"), ".1f")]
        table.add_row(r["input"], f"[{style}]{r['status']}[/{style}]", _fmt(r.get("duration_s"), ".1f"),
                      *loudness, steps, note)
    if len(results) > max_rows:
        table.caption = f"... and {len(results) - max_rows} more (see report.csv)"
    return table
