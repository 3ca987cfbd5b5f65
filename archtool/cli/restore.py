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

  archtool restore transfers/ -o restored/ --devices cuda:0,cuda:1

  archtool restore /shared/transfers -o /shared/restored --scheduler tcp://10.0.0.5:8786

  archtool restore transfers/ -o restored/ --scheduler tcp://10.0.0.5:8786 --transfer ship

Ctrl-C stops cleanly: files in flight are abandoned (no partial outputs) and the same
command resumes where it stopped.
"""


class DeviceActivity:
    """Per-worker rows under the batch bar: device, files and audio hours done, speed, current file."""

    def __init__(self, progress):
        self.progress = progress.progress
        self.rows: dict[tuple, dict] = {}
        self.names: list[str] = []

    def start(self, jobs) -> None:
        self.names = [j.relpath for j in jobs]

    def __call__(self, event) -> None:
        key = (event.device, event.slot)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = {"task": self.progress.add_task(f"  {event.device} #{event.slot}", total=None,
                                                                   stats=""),
                                    "files": 0, "audio_s": 0.0, "busy_s": 0.0, "now": ""}
        name = self.names[event.index] if event.index is not None and event.index < len(self.names) else ""
        if event.kind == "start":
            row["now"] = f"now {name}"
        elif event.kind == "done":
            res = event.result if isinstance(event.result, dict) else {}
            row["files"] += 1
            row["audio_s"] += res.get("duration_s") or 0.0
            row["busy_s"] += res.get("time_s") or 0.0
            row["now"] = "idle"
        else:
            row["now"] = f"worker lost ({event.detail}); {name or 'its file'} goes to another worker"
        speed = row["audio_s"] / row["busy_s"] if row["busy_s"] > 0 else 0.0
        stats = f"{row['files']} files  {row['audio_s'] / 3600:.3f} h  {speed:.1f}x real time  {row['now']}"
        self.progress.update(row["task"], completed=row["files"], stats=stats)



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
    html: bool = typer.Option(True, "--html/--no-html",
                              help="Write OUT_DIR/report.html (each output analysed again, spectrograms, players)."),
    seed: int = typer.Option(0, "--seed", help="Global seed for stochastic restorers."),
    bwe_gain: Optional[float] = typer.Option(None, "--bwe-gain", min=0.0, help="Level of the generated band of bandwidth extension (0 = off; default: the preset's)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Sampling steps of the diffusion restorer (fewer: faster; default: the preset's)."),
    block_s: float = typer.Option(10.0, "--block-seconds", min=0.05, help="Seconds of audio per processing block (memory bound)."),
    gaps: Optional[Path] = typer.Option(None, "--gaps", help="CSV of gap intervals to fill: 'file,start,end' or 'start,end' rows, seconds or [h:]mm:ss."),
    gap_copies: bool = typer.Option(True, "--gap-copies/--no-gap-copies", help="Where a gap's surroundings recur closely within 6 s (a repeated bar, a loop), fill it with a copy of what follows them there; --no-gap-copies: only interpolate and predict."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", help="tcp://HOST:PORT of a Dask scheduler: run the files on that cluster."),
    transfer: str = typer.Option("auto", "--transfer", help="With --scheduler, how workers reach the files: shared (same paths on every worker) | ship (bytes sent through the cluster) | auto (shared if every worker sees them, else ship)."),
    ship_limit_mb: float = typer.Option(1024.0, "--ship-limit-mb", min=1.0, help="With --transfer ship/auto: largest input sent through the cluster, MB (larger files fail with a message)."),
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
                               seed=seed, block_s=block_s, gaps_file=str(gaps) if gaps else None,
                               extra=((("bwe_gain", str(bwe_gain)),) if bwe_gain is not None else ())
                               + ((("diffusion_steps", str(steps)),) if steps is not None else ())
                               + ((("inpaint_copies", "false"),) if not gap_copies else ()))
    if gaps is not None:
        from archtool.restore.gaplist import read_gap_list

        read_gap_list(gaps)  # a bad list stops here, naming the file and line
    console = Console(stderr=True)
    if scheduler is not None and not scheduler.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        raise UsageError(f"--scheduler must look like tcp://HOST:PORT, not {scheduler!r}")
    if transfer not in ("auto", "shared", "ship"):
        raise UsageError(f"--transfer must be auto, shared or ship, not {transfer!r}")
    progress = BatchProgress(console, "Planning" if dry_run else "Restoring")
    activity = DeviceActivity(progress)
    done: list[dict] = []

    def on_start(js) -> None:
        activity.start(js)
        progress.start(len(js))

    def on_result(res: dict) -> None:
        done.append(res)
        progress.advance(res)

    try:
        batch = restore_batch(input_dir, out_dir, settings, jobs=jobs, resume=resume, dry_run=dry_run,
                              devices=devices, scheduler=scheduler, transfer=transfer,
                              ship_limit_mb=ship_limit_mb, on_start=on_start, on_result=on_result,
                              on_event=activity)
    except KeyboardInterrupt:
        progress.stop()
        console.print(f"[yellow]interrupted[/yellow]: {len(done)} file(s) finished and recorded in "
                      f"{out_dir}/manifest.json; files in flight were abandoned (no partial outputs). "
                      "Run the same command again to resume.", highlight=False, soft_wrap=True)
        raise typer.Exit(130)
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
        console.print(results_table(batch.results, width=console.width))
        if batch.results and html:
            from archtool.report.restore_html import write_restore_report

            page = write_restore_report(out_dir, batch.results, preset=preset)
            console.print(f"report: {page}", highlight=False, soft_wrap=True)
    if not batch.results:
        console.print(f"[red]error:[/red] {input_dir}: no audio files found", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    n_failed = len(batch.failed)
    if n_failed:
        console.print(f"[red]{n_failed} of {len(batch.results)} files failed[/red] (see {out_dir}/report.csv)", soft_wrap=True)
        raise typer.Exit(1)
