"""Training losses and validation metrics for waveform restorers.

Losses take torch tensors ``(batch, time)`` or ``(batch, 1, time)`` and return a scalar.
Metrics (``sdr_db``, ``si_sdr_db``, ``lsd_db``) take ``(..., time)`` tensors and return
one value per leading index, in dB.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch.nn import functional as F

EPS = 1e-8


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1])


def stft_magnitude(x: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """|STFT| of ``(B, T)`` with a Hann window: ``(B, n_fft//2+1, frames)``."""
    window = torch.hann_window(win, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop_length=hop, win_length=win, window=window,
                      center=True, return_complex=True)
    return spec.abs().clamp_min(1e-7)


def stft_loss(estimate: torch.Tensor, target: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """Spectral convergence + mean |log magnitude difference| at one resolution."""
    e, t = stft_magnitude(_flat(estimate), n_fft, hop, win), stft_magnitude(_flat(target), n_fft, hop, win)
    sc = torch.linalg.norm(t - e, dim=(-2, -1)) / torch.linalg.norm(t, dim=(-2, -1)).clamp_min(EPS)
    mag = F.l1_loss(torch.log(e), torch.log(t))
    return sc.mean() + mag


class MultiResolutionSTFTLoss(torch.nn.Module):
    """Average of :func:`stft_loss` over several (n_fft, hop, win) resolutions.

    The defaults (512/1024/2048 FFT, 1/4-window hops) suit 16-22 kHz audio.
    """

    def __init__(self, resolutions: Sequence[tuple[int, int, int]] = ((512, 128, 512), (1024, 256, 1024),
                                                                        (256, 64, 256))):
        super().__init__()
        self.resolutions = tuple(tuple(r) for r in resolutions)

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = estimate.new_zeros(())
        for n_fft, hop, win in self.resolutions:
            total = total + stft_loss(estimate, target, n_fft, hop, win)
        return total / len(self.resolutions)


def lsgan_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN loss for the discriminator: real -> 1, fake -> 0."""
    return ((real_scores - 1.0) ** 2).mean() + (fake_scores ** 2).mean()


def lsgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN loss for the generator: make the discriminator say 1."""
    return ((fake_scores - 1.0) ** 2).mean()


def sdr_db(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """SDR = 10 log10(|s|^2 / |s - s_hat|^2) over the last axis (the Op-GAN paper's measure)."""
    num = (reference ** 2).sum(-1)
    den = ((reference - estimate) ** 2).sum(-1)
    return 10 * torch.log10((num + EPS) / (den + EPS))


def si_sdr_db(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Scale-invariant SDR (zero-mean signals, optimal scaling of the reference)."""
    estimate = estimate - estimate.mean(-1, keepdim=True)
    reference = reference - reference.mean(-1, keepdim=True)
    alpha = (estimate * reference).sum(-1, keepdim=True) / ((reference ** 2).sum(-1, keepdim=True) + EPS)
    target = alpha * reference
    return 10 * torch.log10(((target ** 2).sum(-1) + EPS) / (((estimate - target) ** 2).sum(-1) + EPS))


def lsd_db(estimate: torch.Tensor, reference: torch.Tensor, n_fft: int = 2048, hop: int = 512) -> torch.Tensor:
    """Log-spectral distance (dB): frame-mean of the RMS over frequency of the log-power difference."""
    shape = estimate.shape[:-1]
    e = stft_magnitude(_flat(estimate), n_fft, hop, n_fft) ** 2
    r = stft_magnitude(_flat(reference), n_fft, hop, n_fft) ** 2
    diff = 10 * torch.log10(r + 1e-10) - 10 * torch.log10(e + 1e-10)
    return diff.pow(2).mean(-2).sqrt().mean(-1).reshape(shape)
