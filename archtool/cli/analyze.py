"""`archtool analyze DIR [-o REPORT_DIR] [--jobs N]`: what is wrong with each file, and how badly."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

HELP = """Detect the defects of every audio file in DIR (or of one file): noise (with SNR), background, reverberation, clicks, crackle, 78 RPM surface noise, hum (with a likely speed error when it is off-mains), rumble, gaps, band limitation, clipping, wow and DC offset, each with a severity 0..1 and the measures behind it.

Prints a table and a collection summary (files per defect kind, files ranked by how much restoration they need). With -o it writes REPORT_DIR/analysis.json, analysis.csv (one row per file) and report.html (self-contained: charts and a spectrogram per file). Inputs are never modified. A file that cannot be read is reported with its reason and the others go on; the exit status is then 1.

Examples:

  archtool analyze transfers/ -o analysis/

  archtool analyze tape_07.flac

  archtool analyze /archive/78rpm -o /reports/78rpm --jobs 2
"""


def register(app: typer.Typer) -> None:
    app.command("analyze", help=HELP)(analyze_command)


def _need_style(v: float) -> str:
    return "red" if v >= 0.6 else ("yellow" if v >= 0.3 else "green")


def analyze_command(
    path: Path = typer.Argument(..., metavar="DIR", help="A folder (scanned recursively) or one audio file."),
    report_dir: Optional[Path] = typer.Option(None, "-o", "--out",
                                              help="Write analysis.json, analysis.csv and report.html here."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Files analysed in parallel (worker processes)."),
    max_rows: int = typer.Option(50, "--max-rows", help="Rows of the per-file table printed in the terminal."),
) -> None:
    from rich import box
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from archtool.analyze.collection import analyze_paths, summary, write_outputs
    from archtool.engine.scan import scan
    from archtool.errors import UsageError

    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {jobs}")
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    candidates, skipped = scan(path, exclude=report_dir)
    files = [c.path for c in sorted(candidates, key=lambda c: c.relpath)]
    out = Console()
    err = Console(stderr=True)
    for s in skipped:
        err.print(f"[yellow]skipped[/yellow] {s.path}: {s.reason}", highlight=False)
    if not files:
        raise UsageError(f"{path}: no audio files found")
    progress = Progress(TextColumn("analysing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=err, transient=True)
    task = progress.add_task("analyze", total=len(files))

    def on_result(res) -> None:
        progress.advance(task)
        if not res.ok:
            progress.console.print(f"[red]error[/red] {res.error}", highlight=False)
        else:
            for w in res.profile.warnings:
                progress.console.print(f"[yellow]warning[/yellow] {res.path}: {w}", highlight=False)

    with progress:
        results = analyze_paths(files, jobs=jobs, thumbnails=report_dir is not None, on_result=on_result)

    summ = summary(results)
    ok = sorted([r for r in results if r.ok], key=lambda r: -r.need)
    # figures never wrap; names and findings fold (not "…": an archivist must see which file);
    # a narrow terminal gets no vertical rules, leaving more room for them
    table = Table(title=f"analysis of {path}", show_lines=False,
                  box=box.SIMPLE_HEAD if out.width < 110 else box.HEAVY_HEAD)
    for col, just in (("file", "left"), ("dur s", "right"), ("rate", "right"), ("LUFS", "right"),
                      ("SNR dB", "right"), ("band kHz", "right"), ("detected (severity)", "left"),
                      ("need", "right")):
        table.add_column(col, justify=just, overflow="fold", no_wrap=just == "right")
    for r in ok[:max_rows]:
        p = r.profile
        snr = p.finding("noise").measures.get("snr_db")
        bw = p.finding("bandlimit").measures.get("cutoff_hz")
        det = ", ".join(f"{f.kind} {f.severity:.2f}" for f in sorted(p.findings, key=lambda f: -f.severity)
                        if f.detected) or "-"
        table.add_row(Path(r.path).name, f"{p.duration_s:.1f}", str(p.sample_rate),
                      "-" if p.loudness_lufs is None else f"{p.loudness_lufs:.1f}",
                      "-" if snr is None else f"{snr:.1f}", "-" if bw is None else f"{bw / 1000:.1f}",
                      det, f"[{_need_style(r.need)}]{r.need:.2f}[/]")
    out.print(table)
    if len(ok) > max_rows:
        out.print(f"({len(ok) - max_rows} more files in the report)")
    counts = Table(title="collection summary: files per defect kind")
    counts.add_column("kind")
    counts.add_column("files", justify="right")
    counts.add_column("share", justify="right")
    for k, n in summ["counts"].items():
        counts.add_row(k, str(n), f"{n / max(len(ok), 1):.0%}")
    out.print(counts)
    out.print(f"{summ['analysed']} analysed, {summ['failed']} failed, {summ['audio_hours']:.3f} h of audio. "
              "Most in need of restoration: " +
              (", ".join(f"{Path(x['path']).name} ({x['restoration_need']:.2f})" for x in summ["ranking"][:5])
               or "-"), highlight=False)
    if report_dir is not None:
        written = write_outputs(results, report_dir)
        out.print("wrote " + ", ".join(str(p) for p in written.values()), highlight=False)
    if summ["failed"]:
        # SystemExit, not typer.Exit: app.main runs Typer with standalone_mode=False.
        sys.exit(1)
