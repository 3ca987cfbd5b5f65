"""`archtool models`: the registered restorers and installed checkpoints."""
from __future__ import annotations

import typer

HELP = """List the restorers archtool can plan, and the model checkpoints installed with it
(with the rate, steps and scores their metadata records).

Example:

  archtool models
"""


def register(app: typer.Typer) -> None:
    app.command("models", help=HELP)(models)


def models() -> None:
    import json

    from rich.console import Console
    from rich.table import Table

    from archtool.models.checkpoint import packaged_checkpoints
    from archtool.restore.registry import list_restorers, restorer_class

    console = Console()
    table = Table(title="Restorers")
    for col in ("name", "kinds", "context s"):
        table.add_column(col)
    for name in list_restorers():
        cls = restorer_class(name)
        table.add_row(name, ", ".join(getattr(cls, "kinds", ())), f"{getattr(cls, 'context_s', 0.0):g}")
    if not list_restorers():
        table.caption = "no restorers installed: restore normalises loudness only"
    console.print(table)
    ck = Table(title="Checkpoints")
    for col in ("file", "model", "rate", "steps", "size MB", "scores"):
        ck.add_column(col, overflow="fold")
    for path in packaged_checkpoints():
        meta_path = path.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        # a checkpoint may name the few figures that matter most (``headline``); else its metrics
        scores = (meta.get("headline") or meta.get("metrics") or meta.get("validation")
                  or meta.get("scores") or {})
        ck.add_row(path.name, str(meta.get("model", "?")), str(meta.get("sample_rate", "?")),
                   str(meta.get("steps", "?")), f"{path.stat().st_size / 1e6:.1f}", _summarise(scores))
    if not packaged_checkpoints():
        ck.caption = "no checkpoints installed"
    console.print(ck)


def _summarise(scores: object, limit: int = 6) -> str:
    """Short text for a checkpoint's recorded scores, whatever shape its metadata uses."""
    flat: list[str] = []

    def walk(value: object, prefix: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{prefix}{k}." if isinstance(v, dict) else f"{prefix}{k}")
        elif isinstance(value, str) and len(value) > 24:
            return  # a description (what the scores were measured on), not a score
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            flat.append(f"{prefix}={value}" if prefix else str(value))
        else:
            flat.append(f"{prefix}={value:.3g}")

    walk(scores, "")
    return ", ".join(flat[:limit]) + (" ..." if len(flat) > limit else "")
