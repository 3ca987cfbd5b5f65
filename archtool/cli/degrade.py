"""`archtool degrade CLEAN_DIR -o OUT_DIR --recipe NAME|FILE`: build a labelled degraded corpus."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

HELP = """Cut clean recordings into clips and degrade each with a recipe, writing matching OUT_DIR/clean/ and OUT_DIR/degraded/ files and OUT_DIR/labels.jsonl (one line per clip: every unit applied with its parameters and 0..1 severity, the defect kinds, the true SNR, gap intervals, cutoff frequency, clipped fraction, wow time map).

The same --seed gives byte-identical output whatever --jobs is. Without --noise-dir, --rir-dir or --background-dir the units synthesise groove noise, impulse responses and backgrounds. Built-in recipes: rar, 78rpm, cylinder, tape, gaps, bandlimit, phone, mixed-archive; or give a TOML file (format: recipes/degrade/*.toml and archtool.degrade.recipe).

Examples:

  archtool degrade speech/ -o corpus/ --recipe rar --clip-seconds 2 --rate 16000

  archtool degrade music/ -o corpus78/ --recipe 78rpm --count 500 --jobs 2 --noise-dir grooves/

  archtool degrade take.flac -o out/ --recipe my_recipe.toml --seed 7

  archtool degrade --list-units
"""


def register(app: typer.Typer) -> None:
    app.command("degrade", help=HELP)(degrade_command)


def _print_units() -> None:
    from rich.console import Console
    from rich.table import Table

    from archtool.degrade import list_recipes, list_units

    console = Console()
    table = Table(title="degradation units", show_lines=True)
    for col in ("unit", "kind", "parameters: range (default): meaning"):
        table.add_column(col)
    for name, info in list_units().items():
        params = "\n".join(f"{k} {v}" for k, v in info["params"].items())
        table.add_row(f"{name}\n[dim]{info['summary']}[/dim]", info["kind"], params)
    console.print(table)
    console.print("built-in recipes: " + ", ".join(list_recipes()))


def degrade_command(
    clean_dir: Optional[Path] = typer.Argument(None, metavar="CLEAN_DIR",
                                               help="Clean audio: a folder (scanned recursively) or one file."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Output folder (clean/, degraded/, labels.jsonl)."),
    recipe: Optional[str] = typer.Option(None, "--recipe", "-r", help="Built-in recipe name or a TOML file."),
    seed: int = typer.Option(0, "--seed", help="Global seed; each clip is seeded from (seed, clip id)."),
    count: Optional[int] = typer.Option(None, "--count", "-n",
                                        help="Number of clips (round-robin over files; repeats with new "
                                             "degradations when more are asked than exist)."),
    clip_seconds: Optional[float] = typer.Option(None, "--clip-seconds",
                                                 help="Cut inputs into clips of this length (default: whole files)."),
    rate: Optional[int] = typer.Option(None, "--rate", help="Resample clips to this rate in Hz (default: native)."),
    noise_dir: Optional[Path] = typer.Option(None, "--noise-dir", help="Real 78 RPM groove noise recordings."),
    rir_dir: Optional[Path] = typer.Option(None, "--rir-dir", help="Room impulse responses."),
    background_dir: Optional[Path] = typer.Option(None, "--background-dir", help="Background recordings."),
    fmt: str = typer.Option("wav", "--format",
                            help="wav (32-bit float, labels exact) or flac (24-bit; a pair louder than full "
                                 "scale is scaled together, recorded as output_gain)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Worker processes."),
    list_units_flag: bool = typer.Option(False, "--list-units", help="List units, parameters and recipes, then exit."),
) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from archtool.degrade.corpus import degrade_corpus
    from archtool.errors import UsageError

    if list_units_flag:
        _print_units()
        return
    if clean_dir is None or out is None or recipe is None:
        raise UsageError("CLEAN_DIR, -o OUT_DIR and --recipe are required (see archtool degrade --help)")
    err = Console(stderr=True)
    progress = Progress(TextColumn("degrading"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=err, transient=True)
    task = progress.add_task("degrade", total=None)

    def on_clip(line: dict) -> None:
        progress.advance(task)

    from archtool.degrade.recipe import load_recipe
    from archtool.errors import RecipeError, UnknownNameError

    try:
        load_recipe(recipe)
    except (RecipeError, UnknownNameError) as exc:
        raise UsageError(str(exc)) from None
    with progress:
        result = degrade_corpus(clean_dir, out, recipe, seed=seed, count=count, clip_seconds=clip_seconds,
                                rate=rate, noise_dir=noise_dir, rir_dir=rir_dir, background_dir=background_dir,
                                jobs=jobs, fmt=fmt, on_total=lambda n: progress.update(task, total=n),
                                on_clip=on_clip)
    reported = set()
    for path, reason in result.failures:
        if path not in reported:
            reported.add(path)
            err.print(f"[red]error[/red] {path}: {reason}", highlight=False)
    for path, reason in result.skipped:
        err.print(f"[yellow]skipped[/yellow] {path}: {reason}", highlight=False)
    for path, message in result.warnings:
        err.print(f"[yellow]warning[/yellow] {path}: {message}", highlight=False)
    typer.echo(f"{len(result.clips)} clips written to {out} ({len(reported)} input(s) failed)")
    if not result.ok:
        raise typer.Exit(1)
