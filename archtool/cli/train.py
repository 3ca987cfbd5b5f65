"""`archtool train MODEL ...`: a group with one sub-command per trainable model.

Each trainer lives in ``archtool.cli.train_<model>`` and defines ``register(group)``;
it is listed in TRAIN_MODULES once its issue lands.
"""
from __future__ import annotations

import importlib

import typer

TRAIN_MODULES: tuple[str, ...] = ("inpaint", "bwe", "opgan", "diffusion", "enhance")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Train a model and write a checkpoint (.pt) with its metadata (.json).",
                        no_args_is_help=True)
    for name in TRAIN_MODULES:
        importlib.import_module(f"archtool.cli.train_{name}").register(group)
    app.add_typer(group, name="train")
