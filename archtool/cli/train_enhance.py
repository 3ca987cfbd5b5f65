"""`archtool train enhance`: train the two-stage phone-to-studio enhancer (seed 004)."""
from __future__ import annotations

from pathlib import Path

import typer


def register(group: typer.Typer) -> None:
    @group.command("enhance")
    def train_enhance_cmd(
        data: Path = typer.Option(..., "--data", help="Folder of clean speech (named hold-out clips are never used)."),
        out: Path = typer.Option(..., "-o", "--out", help="Checkpoint to write (NAME.pt, with NAME.json metadata)."),
        noise: Path = typer.Option(None, "--noise", help="Folder of background noises to mix in (held-out noises skipped)."),
        eval_data: Path = typer.Option(None, "--eval-data", help="Shared data folder with speech_eval/: PESQ validation split."),
        init: Path = typer.Option(None, "--init", help="Checkpoint whose bandwidth extender starts stage 2."),
        steps: int = typer.Option(2000, "--steps", help="Optimiser steps."),
        batch: int = typer.Option(8, "--batch", help="Segments per step."),
        adv_start: int = typer.Option(-1, "--adv-start", help="Step after which the adversarial loss is on (-1: never)."),
        adv_weight: float = typer.Option(0.05, "--adv-weight", help="Weight of the LSGAN generator loss."),
        fm_weight: float = typer.Option(0.1, "--fm-weight", help="Weight of the feature-matching loss."),
        eval_every: int = typer.Option(100, "--eval-every", help="Steps between validations (each writes OUT)."),
        seed: int = typer.Option(0, "--seed", help="Seed for segments, degradations and initialisation."),
        resume: bool = typer.Option(False, "--resume/--no-resume", help="Continue from OUT if it exists."),
    ) -> None:
        """Train stage 1 (mask denoiser) and stage 2 (band generator), optionally adversarially."""
        import torch

        from archtool.errors import UsageError
        from archtool.train.enhance import EnhanceTrainConfig, train_enhance

        if steps < 1 or batch < 1 or eval_every < 1:
            raise UsageError("--steps, --batch and --eval-every must be at least 1")
        if not data.is_dir():
            raise UsageError(f"--data {data}: not a folder")
        if init is not None and not init.exists():
            raise UsageError(f"--init {init}: no such checkpoint")
        torch.set_num_threads(1)
        cfg = EnhanceTrainConfig(data_dir=data, out=out, noise_dir=noise, eval_data=eval_data, init=init,
                                 steps=steps, batch=batch, adv_start=None if adv_start < 0 else adv_start,
                                 adv_weight=adv_weight, fm_weight=fm_weight, eval_every=eval_every, seed=seed,
                                 resume=resume, log=lambda s: typer.echo(s))
        meta = train_enhance(cfg)
        typer.echo(f"wrote {out} (steps {meta.get('steps')}, validation {meta.get('validation')})")
