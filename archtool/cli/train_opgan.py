"""`archtool train opgan`: train the Op-GAN blind restorer (noise + background + reverb)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(group: typer.Typer) -> None:
    @group.command("opgan")
    def train_opgan(
        data: list[Path] = typer.Option(..., "--data", help="Folder of clean audio (repeat for several)."),
        output: Path = typer.Option(..., "-o", "--output", help="Checkpoint to write (NAME.pt + NAME.json)."),
        rate: int = typer.Option(16000, "--rate", help="Model sample rate in Hz."),
        noise_dir: Optional[Path] = typer.Option(None, "--noise-dir", help="Real noise recordings for the recipe."),
        rir_dir: Optional[Path] = typer.Option(None, "--rir-dir", help="Room impulse responses for the recipe."),
        background_dir: Optional[Path] = typer.Option(None, "--background-dir",
                                                      help="Background recordings to mix in (default: --noise-dir)."),
        recipe: str = typer.Option("rar", "--recipe", help="Degradation recipe applied on the fly."),
        steps: int = typer.Option(2000, "--steps", min=1, help="Total generator steps."),
        batch: int = typer.Option(4, "--batch", min=1, help="Segments per step."),
        segment: int = typer.Option(16384, "--segment", min=1024, help="Segment length in samples (multiple of 2**depth)."),
        width: int = typer.Option(8, "--width", min=1, help="Channels of the first generator layer."),
        depth: int = typer.Option(6, "--depth", min=2, max=12, help="Encoder layers (each halves the time axis)."),
        max_mult: int = typer.Option(4, "--max-mult", min=1, help="Cap on the channel multiplier of deeper layers."),
        q: int = typer.Option(3, "--q", min=1, max=9, help="Maclaurin order of the generative neurons."),
        lr: float = typer.Option(5e-4, "--lr", help="Generator learning rate (Adam)."),
        adv_weight: float = typer.Option(1.0, "--adv-weight", help="Weight of the LSGAN loss (0 disables the discriminator)."),
        adv_start: int = typer.Option(1000, "--adv-start", help="Step from which the adversarial loss is used."),
        val_every: int = typer.Option(100, "--val-every", min=1, help="Validate and checkpoint every N steps."),
        holdout: list[str] = typer.Option([], "--holdout", help="Glob of clips held out for validation (repeatable)."),
        val_items: int = typer.Option(64, "--val-items", min=1, help="Degraded excerpts validated on."),
        resume: bool = typer.Option(False, "--resume", help="Continue from OUTPUT.state.pt if present."),
        init: Optional[str] = typer.Option(None, "--init", metavar="NAME|FILE",
                                           help="Fine-tune this Op-GAN checkpoint: a shipped model (speech, music) "
                                                "or a .pt file (same generator options; e.g. on your own "
                                                "collection's clean material)."),
        device: str = typer.Option("cpu", "--device", help="Torch device, e.g. cpu or cuda:0."),
        threads: int = typer.Option(1, "--threads", min=1, help="CPU threads for torch."),
        workers: int = typer.Option(0, "--workers", min=0,
                                    help="Processes degrading batches ahead (feeds a GPU; same batches as 0)."),
        time_limit: float = typer.Option(0.0, "--time-limit", min=0.0,
                                         help="Stop after this many minutes, validating and saving first (0: none)."),
        seed: int = typer.Option(0, "--seed", help="Seed: same data + seed give the same checkpoint."),
    ) -> None:
        """Train Op-GAN on clean clips degraded on the fly; writes the best checkpoint by validation SDR."""
        from archtool.errors import UsageError
        from archtool.train.opgan import TrainConfig, train

        if segment % (2 ** depth):
            raise UsageError(f"--segment {segment} must be a multiple of 2**depth = {2 ** depth}")
        if init is not None:
            from archtool.models.checkpoint import resolve_checkpoint
            from archtool.restore.opgan import PACKAGED

            init = resolve_checkpoint(init, PACKAGED, "Op-GAN")
        cfg = TrainConfig(
            data=[str(d) for d in data], output=str(output), rate=rate,
            noise_dir=str(noise_dir) if noise_dir else None, rir_dir=str(rir_dir) if rir_dir else None,
            background_dir=str(background_dir or noise_dir) if (background_dir or noise_dir) else None,
            recipe=recipe, steps=steps, batch=batch, segment=segment, width=width, depth=depth, q=q, max_mult=max_mult,
            lr=lr, w_adv=adv_weight, adv_start=adv_start, val_every=val_every, val_items=val_items,
            holdout=list(holdout), init=str(init) if init else None,
            seed=seed, device=device, threads=threads, workers=workers, time_limit_s=time_limit * 60.0)
        metrics = train(cfg, resume=resume, log=lambda m: typer.echo(m, err=True))
        if metrics:
            typer.echo(f"{output}: validation SDR improvement {metrics['sdr_improvement_db']:+.2f} dB, "
                       f"SI-SDR improvement {metrics['si_sdr_improvement_db']:+.2f} dB")

    @group.command("opgan-fusion")
    def train_opgan_fusion(
        opgan: Path = typer.Option(..., "--opgan", exists=True, dir_okay=False,
                                   help="The Op-GAN checkpoint (.pt) whose output is fused."),
        data: list[Path] = typer.Option(..., "--data", help="Folder of clean audio (repeat for several)."),
        output: Optional[Path] = typer.Option(None, "-o", "--output",
                                              help="Checkpoint to write (default: <opgan stem>_fusion.pt beside it)."),
        rir_dir: Optional[Path] = typer.Option(None, "--rir-dir", help="Room impulse responses for the recipe."),
        background_dir: Optional[Path] = typer.Option(None, "--background-dir", help="Background recordings to mix in."),
        noise_dir: Optional[Path] = typer.Option(None, "--noise-dir", help="Real noise recordings for the recipe."),
        recipe: str = typer.Option("rar", "--recipe", help="Degradation recipe (use the one Op-GAN was trained with)."),
        items: int = typer.Option(1000, "--items", min=10, help="Degraded excerpts to draw (cached beside OUTPUT)."),
        steps: int = typer.Option(2000, "--steps", min=1, help="Training steps."),
        batch: int = typer.Option(8, "--batch", min=1, help="Crops per step."),
        channels: int = typer.Option(12, "--channels", min=1, help="Channels of the fusion CNN (cost grows with the square)."),
        arch: str = typer.Option("cnn", "--arch", help="Fusion network: cnn (7 frames of context) or unet-tcn "
                                 "(frequency U-Net with a temporal stack, ~0.3 s of context, also a gain)."),
        hidden: int = typer.Option(96, "--hidden", min=1, help="unet-tcn: width of the temporal stack."),
        crop_frames: int = typer.Option(64, "--crop-frames", min=8, help="STFT frames per training crop."),
        loss: str = typer.Option("sdr+si-sdr", "--loss", help="Training loss: sdr+si-sdr or sdr."),
        lr: float = typer.Option(2e-3, "--lr", min=0.0, help="Peak learning rate (cosine decay to 5 %)."),
        val_data: list[Path] = typer.Option([], "--val-data", help="Folder of clean audio that validates instead "
                                            "of the last 10 % of the items (repeat for several): use clips "
                                            "neither Op-GAN nor the fusion trains on."),
        val_items: int = typer.Option(400, "--val-items", min=1, help="Items drawn from --val-data."),
        init: Optional[Path] = typer.Option(None, "--init", exists=True, dir_okay=False,
                                            help="Start from this fusion checkpoint (same architecture, or a "
                                                 "unet-tcn with a narrower --hidden: widened, same output)."),
        opgan_overlap: float = typer.Option(0.25, "--opgan-overlap", min=0.0, max=0.9,
                                            help="Op-GAN segment overlap for the items; the restorer runs "
                                                 "Op-GAN at it whenever it uses this fusion."),
        threads: int = typer.Option(1, "--threads", min=1, help="CPU threads for torch."),
        seed: int = typer.Option(0, "--seed", help="Seed: same data + seed give the same checkpoint."),
    ) -> None:
        """Train the spectral fusion stage that follows an Op-GAN checkpoint.

        It learns, per time-frequency bin, how much of Op-GAN's correction to keep and what to
        borrow from the DSP denoiser, on clean clips other than those the Op-GAN checkpoint held out.

        Example: archtool train opgan-fusion --opgan opgan_speech16k.pt --data clean/ --rir-dir rir/ --background-dir bg/

        As shipped: ... --arch unet-tcn --channels 12 --hidden 96 --items 4000 --crop-frames 128 --steps 2800
        """
        from archtool.train.opgan_fusion import FusionTrainConfig, train_fusion

        out = output or opgan.with_name(f"{opgan.stem}_fusion.pt")
        cfg = FusionTrainConfig(
            opgan=str(opgan), data=[str(d) for d in data], output=str(out),
            rir_dir=str(rir_dir) if rir_dir else None, background_dir=str(background_dir) if background_dir else None,
            noise_dir=str(noise_dir) if noise_dir else None, recipe=recipe, items=items, steps=steps,
            batch=batch, channels=channels, arch=arch, hidden=hidden, crop_frames=crop_frames, loss=loss,
            lr=lr, val_data=[str(d) for d in val_data], val_items=val_items,
            init=str(init) if init else None, threads=threads, seed=seed, opgan_overlap=opgan_overlap)
        metrics = train_fusion(cfg, log=lambda m: typer.echo(m, err=True))
        typer.echo(f"{out}: validation SDR improvement {metrics['sdr_improvement_db']:+.2f} dB "
                   f"(Op-GAN alone {metrics['opgan_sdr_improvement_db']:+.2f} dB)")
