"""`archtool restore DIR -o OUT_DIR`: restored, loudness-normalised access copies with a report."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

HELP = """Restore every audio file under DIR (or one file) into OUT_DIR.

Each file is analysed, restored with the chain its analysis calls for, normalised to
the loudness target under a true-peak ceiling, and written with the same base name,
sample rate, channels and bit depth, mirroring DIR's sub-folders. Next to each output:
NAME.archtool.json (checksums, chain, parameters, timings). In OUT_DIR: manifest.json
(for --resume), report.json and report.csv. Originals are never modified.

Examples:

  archtool restore transfers/ -o restored/

  archtool restore transfers/ -o restored/ --preset conservative --format flac

  archtool restore disc_01.wav -o restored/ --loudness -16 --true-peak -1.5

  archtool restore transfers/ -o restored/ --dry-run
"""


def register(app: typer.Typer) -> None:
    app.command("restore", help=HELP, no_args_is_help=True)(restore)


def restore(
    input_dir: Path = typer.Argument(..., metavar="DIR", help="Folder (searched recursively) or single audio file."),
    out_dir: Path = typer.Option(..., "-o", "--out", help="Output folder (created if needed; never the input folder)."),
    preset: str = typer.Option("auto", "--preset", help="Restoration preset name or TOML file."),
    devices: str = typer.Option("auto", "--devices", help="auto | cpu | cuda:0,cuda:1,..."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, help="Worker processes (default: all cores)."),
    loudness: float = typer.Option(-23.0, "--loudness", help="Integrated loudness target, LUFS (EBU R128: -23)."),
    true_peak: float = typer.Option(-1.0, "--true-peak", help="True-peak ceiling, dBTP."),
    no_normalize: bool = typer.Option(False, "--no-normalize", help="Keep the restored level (no loudness normalisation)."),
    fmt: str = typer.Option("same", "--format", help="same | flac | wav (a lossy input becomes FLAC under 'same')."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Skip files already restored with the same input and settings."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print each file's plan; write no audio."),
    keep_residual: bool = typer.Option(False, "--keep-residual", help="Also write NAME.residual.EXT: what restoration removed."),
    seed: int = typer.Option(0, "--seed", help="Global seed for stochastic restorers."),
    block_s: float = typer.Option(10.0, "--block-seconds", min=0.05, help="Seconds of audio per processing block (memory bound)."),
) -> None:
    from rich.console import Console

    from archtool.api import restore_batch
    from archtool.engine.settings import RestoreSettings
    from archtool.errors import UsageError
    from archtool.report.render import BatchProgress, results_table

    if fmt not in ("same", "flac", "wav"):
        raise UsageError(f"--format must be same, flac or wav, not {fmt!r}")
    settings = RestoreSettings(preset=preset, target_lufs=loudness, true_peak_dbtp=true_peak,
                               normalize=not no_normalize, output_format=fmt, keep_residual=keep_residual,
                               seed=seed, block_s=block_s)
    console = Console(stderr=True)
    progress = BatchProgress(console, "Planning" if dry_run else "Restoring")
    try:
        batch = restore_batch(input_dir, out_dir, settings, jobs=jobs, resume=resume, dry_run=dry_run,
                              devices=devices, on_start=lambda js: progress.start(len(js)),
                              on_result=progress.advance)
    finally:
        progress.stop()
    for s in batch.skipped:
        console.print(f"[yellow]skipped[/yellow] {s.path}: {s.reason}", highlight=False, soft_wrap=True)
    if dry_run:
        for r in batch.results:
            steps = [f"{s['restorer']}({', '.join(f'{k}={v}' for k, v in s['params'].items() if not isinstance(v, (list, dict)))})"
                     for s in r.get("steps") or []]
            line = " -> ".join(steps + (["loudness"] if settings.normalize else [])) or "(nothing to do)"
            console.print(f"{r['input']}: {r.get('error') or line}", highlight=False, soft_wrap=True)
    else:
        console.print(results_table(batch.results))
    if not batch.results:
        console.print(f"[red]error:[/red] {input_dir}: no audio files found", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    n_failed = len(batch.failed)
    if n_failed:
        console.print(f"[red]{n_failed} of {len(batch.results)} files failed[/red] (see {out_dir}/report.csv)", soft_wrap=True)
        raise typer.Exit(1)
