"""The root Typer app: registers one module per command and is the one error boundary.

Exit status: 0 when everything succeeded, 1 when some file failed, 2 for bad usage.
"""
from __future__ import annotations

import importlib
import sys

import typer

from archtool import __version__

app = typer.Typer(
    name="archtool",
    help=(
        "Restore archival audio in bulk: find what is wrong with each file (analyze), "
        "restore it into loudness-normalised access copies with a report (restore), and "
        "build synthetic corpora that train and test the models (degrade).\n\n"
        "Originals are never modified: outputs go to a separate folder, written atomically."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)

# One module per command under archtool.cli; each defines ``register(app)``.
# A command whose issue has not landed is simply absent from this tuple.
COMMAND_MODULES: tuple[str, ...] = ("restore", "eval", "models", "train", "degrade", "analyze")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"archtool {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """archtool: bulk restoration of archival audio."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"archtool.cli.{_name}").register(app)


def main() -> None:
    """Console entry point; maps errors to exit codes (see module docstring).

    Typer runs in standalone mode, so it handles --help, usage errors (exit 2) and
    ``typer.Exit`` codes itself; archtool's own errors propagate here.
    """
    from archtool.errors import ArchtoolError, UsageError

    try:
        app()
    except UsageError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)
    except ArchtoolError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.secho("interrupted", fg="red", err=True)
        sys.exit(130)
