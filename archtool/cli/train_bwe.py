"""`archtool train bwe`: train bandwidth extension (speech, music)."""
from __future__ import annotations

from pathlib import Path

import typer


def register(group: typer.Typer) -> None:
    @group.command("bwe")
    def train_bwe_cmd(
        data: Path = typer.Option(..., "--data", help="Folder of clean audio (named hold-out clips are kept for validation)."),
        out: Path = typer.Option(..., "-o", "--out", help="Checkpoint to write (NAME.pt, with NAME.json metadata)."),
        rate: int = typer.Option(16000, "--rate", help="Target (output) sample rate in Hz."),
        factor: int = typer.Option(2, "--factor", help="Speech: bandwidth reduction factor, 2 or 4."),
        task: str = typer.Option("speech", "--task", help="speech (super-resolution) or music (3-11 kHz cutoffs); phone enhancement: `archtool train enhance`."),
        steps: int = typer.Option(3000, "--steps", help="Optimiser steps."),
        batch: int = typer.Option(8, "--batch", help="Segments per step."),
        seed: int = typer.Option(0, "--seed", help="Seed for segments, degradations and initialisation."),
        resume: bool = typer.Option(False, "--resume/--no-resume", help="Continue from OUT if it exists."),
    ) -> None:
        """Train a bandwidth extender with seed 002's T-PCM loss plus envelope terms."""
        import torch

        from archtool.errors import UsageError
        from archtool.train.bwe import TASKS, BweTrainConfig, train_bwe

        if task not in TASKS:
            raise UsageError(f"--task {task!r}: one of {', '.join(TASKS)}")
        if factor not in (2, 4):
            raise UsageError(f"--factor {factor}: must be 2 or 4")
        if steps < 1 or batch < 1:
            raise UsageError("--steps and --batch must be at least 1")
        if not 8000 <= rate <= 192000:
            raise UsageError(f"--rate {rate}: must be between 8000 and 192000 Hz")
        if not data.is_dir():
            raise UsageError(f"--data {data}: not a folder")
        torch.set_num_threads(1)
        cfg = BweTrainConfig(data_dir=data, out=out, task=task, rate=rate, factor=factor, steps=steps,
                             batch=batch, seed=seed, resume=resume,
                             log=lambda s: typer.echo(s))
        meta = train_bwe(cfg)
        typer.echo(f"wrote {out} (steps {meta.get('steps')}, validation {meta.get('validation')})")
