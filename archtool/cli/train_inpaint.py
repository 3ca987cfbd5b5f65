"""`archtool train inpaint`: train the spectrogram inpainting U-Net."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(group: typer.Typer) -> None:
    @group.command("inpaint")
    def train_inpaint_cmd(
        data: Path = typer.Option(..., "--data", help="Folder of clean audio to train on (every 5th file is held out)."),
        rate: int = typer.Option(16000, "--rate", help="Model sample rate in Hz (16000: speech layout; 22050+: music layout)."),
        out: Path = typer.Option(..., "-o", "--out", help="Checkpoint to write (NAME.pt, with NAME.json metadata)."),
        steps: int = typer.Option(2000, "--steps", help="Optimiser steps (cosine learning-rate schedule over them)."),
        seed: int = typer.Option(0, "--seed", help="Seed for patches and masks."),
        batch: int = typer.Option(4, "--batch", help="Patches per step."),
        frames: int = typer.Option(0, "--frames", help="Patch length in STFT frames, a multiple of 16 (0: 160 at 16 kHz, 112 above)."),
        resume: bool = typer.Option(False, "--resume/--no-resume", help="Continue from OUT.pt.state.pt if present."),
        extra_data: list[Path] = typer.Option([], "--extra-data", metavar="DIR", help="More clean audio (repeatable): split the same way, mono mixes; validation then uses its held-out files."),
        extra_share: float = typer.Option(0.7, "--extra-share", help="Fraction of training patches drawn from --extra-data."),
        init: Optional[str] = typer.Option(None, "--init", metavar="NAME|FILE", help="Start from these weights (same layout): a shipped model (speech16k, music22k) or a .pt file."),
        lr: float = typer.Option(2e-3, "--lr", help="Peak learning rate (cosine decay over --steps)."),
        loss_power: float = typer.Option(0.0, "--loss-power", help="0: plain L1 on log-magnitude; p > 0: each bin weighted by (its clean magnitude / the patch RMS) ** p, so loud bins count more (the best step is chosen by the same weighted loss)."),
    ) -> None:
        """Train the gap-inpainting U-Net on magnitude spectrograms (gaps + fragmentation masks)."""
        import torch

        from archtool.errors import UsageError
        from archtool.train.inpaint import InpaintTrainConfig, train_inpaint

        if not 0.0 <= extra_share <= 1.0:
            raise UsageError(f"--extra-share {extra_share}: must be between 0 and 1")
        if not 0.0 <= loss_power <= 2.0:
            raise UsageError(f"--loss-power {loss_power}: must be between 0 and 2")
        if steps < 1 or batch < 1:
            raise UsageError("--steps and --batch must be at least 1")
        if not 8000 <= rate <= 192000:
            raise UsageError(f"--rate {rate}: must be between 8000 and 192000 Hz")
        if init is not None:
            from archtool.models.checkpoint import resolve_checkpoint
            from archtool.restore.inpaint import PACKAGED_MODELS

            init = resolve_checkpoint(init, PACKAGED_MODELS, "inpainting")
        torch.set_num_threads(1)
        cfg = InpaintTrainConfig(data_dir=data, out=out, sample_rate=rate, steps=steps, seed=seed,
                                 batch=batch, frames=frames, resume=resume, lr=lr,
                                 extra_dirs=list(extra_data), extra_share=extra_share, init=init,
                                 loss_power=loss_power)
        meta = train_inpaint(cfg, log=lambda s: typer.echo(s))
        typer.echo(f"wrote {out} (steps {meta.get('steps')}, validation {meta.get('validation')})")
