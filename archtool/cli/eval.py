"""`archtool eval REFERENCE_DIR ESTIMATE_DIR`: score restored files against clean references."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

HELP = """Score estimates against references, matched by relative path (extension ignored).

Per file and on average: SDR, SI-SDR, log-spectral distance (LSD) and spectral PSNR;
PESQ and STOI too when the pesq / pystoi packages are installed and --speech is given.

Examples:

  archtool eval corpus/clean restored/

  archtool eval corpus/clean restored/ --speech -o metrics.json
"""


def register(app: typer.Typer) -> None:
    app.command("eval", help=HELP, no_args_is_help=True)(eval_command)


def eval_command(
    reference_dir: Path = typer.Argument(..., metavar="REFERENCE_DIR", help="Clean references (folder or file)."),
    estimate_dir: Path = typer.Argument(..., metavar="ESTIMATE_DIR", help="Estimates to score (folder or file)."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Write all metrics to this JSON file."),
    speech: bool = typer.Option(False, "--speech", help="Also compute PESQ and STOI (speech material)."),
) -> None:
    import json

    from rich.console import Console
    from rich.table import Table

    from archtool.evaluation import evaluate_dirs

    console = Console()
    report = evaluate_dirs(reference_dir, estimate_dir, speech=speech)
    table = Table(title="archtool eval")
    cols = ["sdr_db", "si_sdr_db", "lsd", "spectral_psnr_db"] + (["pesq", "stoi"] if speech else [])
    table.add_column("file")
    for c in cols:
        table.add_column(c, justify="right")
    table.add_column("error")
    for row in report["files"]:
        m = row.get("metrics") or {}
        table.add_row(row["file"], *[("-" if m.get(c) is None else f"{m[c]:.2f}") for c in cols], row.get("error") or "")
    mean = report["mean"]
    table.add_row("[bold]mean[/bold]", *[("-" if mean.get(c) is None else f"{mean[c]:.2f}") for c in cols], "")
    console.print(table)
    if out:
        out.write_text(json.dumps(report, indent=2) + "\n")
    if any(r.get("error") for r in report["files"]):
        raise typer.Exit(1)
