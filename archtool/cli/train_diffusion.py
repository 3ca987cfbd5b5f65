"""`archtool train diffusion`: train the CQT diffusion prior of clean music (78 RPM restorer)."""
from __future__ import annotations

from pathlib import Path

import typer


def register(group: typer.Typer) -> None:
    @group.command("diffusion")
    def train_diffusion_cmd(
        data: list[Path] = typer.Option(..., "--data", help="Folder of clean music (repeat for several)."),
        output: Path = typer.Option(..., "-o", "--output", help="Checkpoint to write (NAME.pt + NAME.json)."),
        rate: int = typer.Option(22050, "--rate", help="Model sample rate in Hz."),
        steps: int = typer.Option(4000, "--steps", min=1, help="Optimiser steps (warm-up, then cosine decay over them)."),
        batch: int = typer.Option(4, "--batch", min=1, help="Crops per step."),
        segment: int = typer.Option(32768, "--segment", min=512, help="Crop length in samples (multiple of 512)."),
        lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate (Adam)."),
        channels: str = typer.Option("16,32,64,96", "--channels", help="U-Net channels per level, comma-separated."),
        val_every: int = typer.Option(200, "--val-every", min=1, help="Validate (and checkpoint) every N steps."),
        holdout: list[str] = typer.Option([], "--holdout", help="Glob of clips held out for validation (repeatable)."),
        resume: bool = typer.Option(False, "--resume", help="Continue from OUTPUT.state.pt if present."),
        device: str = typer.Option("cpu", "--device", help="Torch device, e.g. cpu or cuda:0."),
        threads: int = typer.Option(1, "--threads", min=1, help="CPU threads for torch."),
        seed: int = typer.Option(0, "--seed", help="Seed: same data + seed give the same checkpoint."),
        time_limit: float = typer.Option(0.0, "--time-limit", min=0.0,
                                         help="Stop after this many minutes, validating and saving first (0: none)."),
    ) -> None:
        """Train the CQT-domain diffusion model (EDM) on clean music; keeps the best EMA weights."""
        import torch

        from archtool.errors import UsageError
        from archtool.train.diffusion import DiffusionTrainConfig, train_diffusion

        try:
            chans = tuple(int(c) for c in channels.split(","))
        except ValueError:
            raise UsageError(f"--channels {channels!r}: give integers separated by commas") from None
        if not 8000 <= rate <= 96000:
            raise UsageError(f"--rate {rate}: must be between 8000 and 96000 Hz")
        torch.set_num_threads(threads)
        cfg = DiffusionTrainConfig(data=[str(d) for d in data], output=str(output), rate=rate, steps=steps,
                                   batch=batch, segment=segment, lr=lr, channels=chans, val_every=val_every,
                                   holdout=list(holdout), seed=seed, device=device,
                                   time_limit_s=time_limit * 60.0)
        metrics = train_diffusion(cfg, resume=resume, log=lambda m: typer.echo(m, err=True))
        typer.echo(f"{output}: validation loss {metrics.get('val_loss')}, "
                   f"denoising gain at sigma 0.03: {metrics.get('gain_db@0.03')} dB")
