"""A small score model in the CQT domain, EDM preconditioning, and a seeded stochastic sampler.

After CQT-Diff (Moliner, Lehtinen, Välimäki, ICASSP 2023): the diffusion runs on the
waveform (variance-exploding, ``x_sigma = x + sigma * n``); the denoiser transforms its
input with the invertible CQT (:mod:`archtool.models.cqt`), runs a 2-D U-Net on the
real and imaginary parts of the coefficients, and transforms the output back, so the
network sees pitch as a translation along the frequency axis. Preconditioning, training
noise distribution and time discretisation are those of EDM (Karras et al. 2022); the
sampler is EDM's stochastic sampler (churn, Euler or Heun steps) with an optional
reconstruction-guidance term and an optional data-consistency projection, as used by
CQT-Diff for zero-shot restoration.

Shapes: waveforms are ``(B, samples)`` float32 at ``config.sample_rate``; ``sigma`` is a
scalar or ``(B,)``. The U-Net is sized for CPU training (~0.5-2 M parameters).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from archtool.models.cqt import CQT, CQTConfig


@dataclass(frozen=True)
class EDMConfig:
    """EDM noise levels and preconditioning (waveform units: audio RMS ~ ``sigma_data``).

    ``p_mean`` / ``p_std``: log-normal training distribution of sigma; ``rho``: curvature
    of the sampling schedule; ``s_churn`` / ``s_tmin`` / ``s_tmax`` / ``s_noise``: the
    stochastic sampler's noise injection.
    """

    sigma_data: float = 0.1
    sigma_min: float = 1e-4
    sigma_max: float = 1.0
    p_mean: float = -3.0
    p_std: float = 1.3
    rho: float = 7.0
    s_churn: float = 5.0
    s_tmin: float = 0.0
    s_tmax: float = 50.0
    s_noise: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class UNetConfig:
    """U-Net size: ``channels`` per level (each level halves frequency and time), ``patch``
    (time frames merged by the stem), ``emb`` (noise-embedding width), ``blocks`` per level."""

    channels: tuple[int, ...] = (16, 32, 64, 96)
    patch: int = 4
    emb: int = 64
    blocks: int = 1
    cqt: CQTConfig = field(default_factory=CQTConfig)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        d = dict(d)
        d["channels"] = tuple(d.get("channels", cls.channels))
        d["cqt"] = CQTConfig(**d["cqt"]) if "cqt" in d else CQTConfig()
        return cls(**d)


def _groups(c: int) -> int:
    return math.gcd(c, 8)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, FiLM by the noise embedding, GroupNorm-SiLU-conv, residual."""

    def __init__(self, channels: int, emb: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(channels), channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.film = nn.Linear(emb, 2 * channels)
        self.norm2 = nn.GroupNorm(_groups(channels), channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = F.silu(self.norm2(h) * (1 + scale) + shift)
        return x + self.conv2(h)


class CQTUNet(nn.Module):
    """``F_theta``: maps CQT coefficients ``(B, bins, frames)`` complex and ``c_noise`` ``(B,)``
    to coefficients of the same shape. Frequency is padded to a multiple of
    ``2**(levels-1)``; time must be a multiple of ``patch * 2**(levels-1)``."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        ch, emb = config.channels, config.emb
        self.levels = len(ch)
        self.register_buffer("fourier", torch.randn(emb // 2, generator=torch.Generator().manual_seed(0)) * 4.0,
                             persistent=False)
        self.emb_mlp = nn.Sequential(nn.Linear(emb, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.stem = nn.Conv2d(3, ch[0], (3, config.patch), stride=(1, config.patch), padding=(1, 0))
        self.enc = nn.ModuleList(nn.ModuleList(ResBlock(c, emb) for _ in range(config.blocks)) for c in ch)
        self.down = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(ch[:-1], ch[1:]))
        self.mid = ResBlock(ch[-1], emb)
        self.up = nn.ModuleList(nn.Conv2d(b, a, 3, padding=1) for a, b in zip(ch[:-1], ch[1:]))
        self.dec = nn.ModuleList(nn.ModuleList(ResBlock(c, emb) for _ in range(config.blocks)) for c in ch[:-1])
        self.out_norm = nn.GroupNorm(_groups(ch[0]), ch[0])
        self.out = nn.ConvTranspose2d(ch[0], 2, (3, config.patch), stride=(1, config.patch), padding=(1, 0))
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def time_multiple(self) -> int:
        return self.config.patch * 2 ** (self.levels - 1)

    def forward(self, coeffs: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        b, bins, frames = coeffs.shape
        if frames % self.time_multiple():
            raise ValueError(f"frames {frames} must be a multiple of {self.time_multiple()}")
        mult = 2 ** (self.levels - 1)
        pad_f = (-bins) % mult
        x = torch.view_as_real(coeffs).permute(0, 3, 1, 2)  # (B, 2, bins, frames)
        pos = torch.linspace(-1.0, 1.0, bins, device=x.device, dtype=x.dtype)[None, None, :, None]
        x = torch.cat([x, pos.expand(b, 1, bins, frames)], dim=1)
        x = F.pad(x, (0, 0, 0, pad_f))
        ang = c_noise[:, None] * self.fourier[None, :] * 2 * math.pi
        emb = self.emb_mlp(torch.cat([ang.cos(), ang.sin()], dim=1))
        h = self.stem(x)
        skips = []
        for i in range(self.levels):
            for blk in self.enc[i]:
                h = blk(h, emb)
            if i < self.levels - 1:
                skips.append(h)
                h = self.down[i](h)
        h = self.mid(h, emb)
        for i in reversed(range(self.levels - 1)):
            h = F.interpolate(h, size=skips[i].shape[-2:], mode="nearest")
            h = self.up[i](h) + skips[i]
            for blk in self.dec[i]:
                h = blk(h, emb)
        y = self.out(F.silu(self.out_norm(h)))[:, :, :bins]  # (B, 2, bins, frames)
        return torch.view_as_complex(y.permute(0, 2, 3, 1).contiguous())


class CQTDenoiser(nn.Module):
    """EDM-preconditioned denoiser ``D(x, sigma)`` on waveforms: ``c_skip x + c_out iCQT(F(CQT(c_in x)))``."""

    def __init__(self, unet: UNetConfig | None = None, edm: EDMConfig | None = None):
        super().__init__()
        self.unet_config = unet or UNetConfig()
        self.edm = edm or EDMConfig()
        self.net = CQTUNet(self.unet_config)
        self._cqts: dict[tuple[int, str], CQT] = {}

    @property
    def sample_rate(self) -> int:
        return self.unet_config.cqt.sample_rate

    def length_multiple(self) -> int:
        """Waveform lengths must be multiples of this (CQT hop x U-Net time stride)."""
        return self.unet_config.cqt.hop * self.net.time_multiple()

    def cqt(self, length: int, device: torch.device) -> CQT:
        key = (int(length), str(device))
        if key not in self._cqts:
            self._cqts[key] = CQT(self.unet_config.cqt, length).to(device)
        return self._cqts[key]

    def arch(self) -> dict:
        return {"unet": self.unet_config.to_dict(), "edm": self.edm.to_dict()}

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """Denoised estimate of ``x`` ``(B, N)`` at noise level ``sigma`` (scalar or ``(B,)``)."""
        sd = self.edm.sigma_data
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1)
        sigma = sigma.expand(x.shape[0]) if sigma.numel() == 1 else sigma
        s = sigma[:, None]
        c_skip = sd ** 2 / (s ** 2 + sd ** 2)
        c_out = s * sd / (s ** 2 + sd ** 2).sqrt()
        c_in = 1.0 / (s ** 2 + sd ** 2).sqrt()
        c_noise = sigma.log() / 4.0
        cqt = self.cqt(x.shape[-1], x.device)
        out = cqt.inverse(self.net(cqt(c_in * x), c_noise))
        return c_skip * x + c_out * out


def build_denoiser(arch: dict) -> CQTDenoiser:
    """A denoiser from checkpoint metadata ``arch`` (``{"unet": ..., "edm": ...}``)."""
    return CQTDenoiser(UNetConfig.from_dict(arch["unet"]), EDMConfig(**arch["edm"]))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def edm_loss(model: CQTDenoiser, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """EDM training loss on clean waveforms ``x0`` ``(B, N)``: sigma log-normal, weighted MSE."""
    e = model.edm
    b = x0.shape[0]
    ln_sigma = torch.randn(b, generator=generator, device=x0.device) * e.p_std + e.p_mean
    sigma = ln_sigma.exp().clamp(e.sigma_min, e.sigma_max)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device)
    denoised = model(x0 + sigma[:, None] * noise, sigma)
    weight = (sigma ** 2 + e.sigma_data ** 2) / (sigma * e.sigma_data) ** 2
    return (weight[:, None] * (denoised - x0).square()).mean()


def noise_schedule(edm: EDMConfig, steps: int, sigma_max: float | None = None,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """EDM's ``steps + 1`` noise levels from ``sigma_max`` down to ``sigma_min``, then 0."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    hi = (sigma_max if sigma_max is not None else edm.sigma_max) ** (1 / edm.rho)
    lo = edm.sigma_min ** (1 / edm.rho)
    if steps == 1:
        t = torch.tensor([hi ** edm.rho], dtype=torch.float64)
    else:
        i = torch.arange(steps, dtype=torch.float64)
        t = (hi + i / (steps - 1) * (lo - hi)) ** edm.rho
    return torch.cat([t, torch.zeros(1, dtype=torch.float64)]).to(device=device, dtype=torch.float32)


#: ``guidance(x0_hat) -> (B,)`` losses whose gradient steers sampling (reconstruction guidance).
Guidance = Callable[[torch.Tensor], torch.Tensor]
#: ``project(x0_hat) -> x0_hat`` replaces what the observation fixes (data consistency).
Projection = Callable[[torch.Tensor], torch.Tensor]


def _guided_denoise(model: CQTDenoiser, x: torch.Tensor, sigma: torch.Tensor, guidance: Guidance | None,
                    xi: float, project: Projection | None) -> torch.Tensor:
    """Denoised estimate, moved by normalised reconstruction guidance and/or projected."""
    if guidance is None or xi <= 0:
        with torch.no_grad():
            x0 = model(x, sigma)
    else:
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            x0 = model(xg, sigma)
            loss = guidance(x0)
            (grad,) = torch.autograd.grad(loss.sum(), xg)
        # CQT-Diff's normalisation: the guidance step has RMS xi * sigma per sample
        rms = grad.square().mean(dim=-1, keepdim=True).sqrt().clamp_min(1e-12)
        x0 = x0.detach() - xi * sigma.reshape(-1, 1) * grad / rms
    if project is not None:
        x0 = project(x0)
    return x0


def _randn(shape: tuple[int, int], generator: torch.Generator | Sequence[torch.Generator],
           device: torch.device | str) -> torch.Tensor:
    """Gaussian noise ``shape``; with one generator per row, each row is drawn from its own."""
    if isinstance(generator, torch.Generator):
        return torch.randn(shape, generator=generator, device=generator.device).to(device)
    if len(generator) != shape[0]:
        raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
    return torch.stack([torch.randn(shape[1:], generator=g, device=g.device) for g in generator]).to(device)


def sample(model: CQTDenoiser, shape: tuple[int, int], steps: int,
           generator: torch.Generator | Sequence[torch.Generator], *,
           device: torch.device | str = "cpu", x_init: torch.Tensor | None = None,
           sigma_start: float | torch.Tensor | None = None, init_sigma: float | torch.Tensor = 0.0,
           guidance: Guidance | None = None, xi: float = 0.0, project: Projection | None = None,
           order: int = 2, s_churn: float | None = None) -> torch.Tensor:
    """EDM stochastic sampler; returns ``(B, N)`` waveforms.

    Unconditional from ``sigma_max`` when ``x_init`` is None; otherwise starts from
    ``x_init`` plus noise that brings it to ``sigma_start`` (``init_sigma``: the noise level
    ``x_init`` already carries, e.g. a noisy recording's), a warm start for restoration.
    ``sigma_start`` and ``init_sigma`` may be ``(B,)`` tensors: each row then follows its
    own schedule. ``guidance`` / ``xi`` add reconstruction guidance, ``project`` a
    data-consistency step; ``order`` 1 is Euler, 2 Heun. All randomness comes from
    ``generator`` (same seed, same output); a sequence of generators, one per batch row,
    makes each row independent of how rows are batched.
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order}")
    e = model.edm
    b = shape[0]
    start = torch.full((b,), e.sigma_max, dtype=torch.float64) if sigma_start is None else \
        torch.as_tensor(sigma_start, dtype=torch.float64).reshape(-1).expand(b)
    t = torch.stack([noise_schedule(e, steps, float(s), device) for s in start])  # (B, steps + 1)
    n = t.shape[1] - 1
    churn = e.s_churn if s_churn is None else s_churn
    gamma_max = min(churn / n, math.sqrt(2.0) - 1.0)
    noise = _randn(shape, generator, device)
    if x_init is None:
        x = noise * t[:, :1]
    else:
        held = torch.as_tensor(init_sigma, dtype=torch.float32, device=t.device).reshape(-1, 1)
        x = x_init.to(device) + noise * (t[:, :1].square() - held.square()).clamp_min(0.0).sqrt()
    for i in range(n):
        t_cur, t_next = t[:, i], t[:, i + 1]
        gamma = torch.where((t_cur >= e.s_tmin) & (t_cur <= e.s_tmax), gamma_max, 0.0)
        t_hat = t_cur * (1 + gamma)
        if gamma_max > 0:
            eps = _randn(shape, generator, device) * e.s_noise
            x = x + (t_hat.square() - t_cur.square()).clamp_min(0.0).sqrt()[:, None] * eps
        x0 = _guided_denoise(model, x, t_hat, guidance, xi, project)
        d = (x - x0) / t_hat[:, None]
        x_next = x + (t_next - t_hat)[:, None] * d
        if order == 2 and bool(torch.all(t_next > 0)):
            x0n = _guided_denoise(model, x_next, t_next, guidance, xi, project)
            d2 = (x_next - x0n) / t_next[:, None]
            x_next = x + (t_next - t_hat)[:, None] * 0.5 * (d + d2)
        x = x_next.detach()
    return x
