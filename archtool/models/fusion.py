"""Spectral fusion of a blind restorer's output with a DSP estimate.

Op-GAN (archtool.models.opgan) is strongest on heavy blends and weakest where little is
wrong: on a nearly clean input its own distortion outweighs what it removes, and on white
noise alone the DSP denoiser often does better. This small network looks at three
short-time spectra of the same excerpt, the input ``X``, Op-GAN's output ``G`` and the DSP
denoiser's output ``D``, and predicts for every time-frequency bin two real weights:

    Y = X + a * (G - X) + b * (D - X),   a in [1 - A, 1 + A],  b in [-B, B]

so it can keep Op-GAN's correction, shrink it where the input was already clean, push it
further where Op-GAN under-corrects, or borrow from the DSP estimate. With zero output
(its initialisation) it returns ``G`` exactly. Features are log power ratios, so the
fusion does not depend on the excerpt's level.

Two bodies (``FusionConfig.arch``):

- ``cnn``: three dilated 2-D convolutions (7 frames of context each side, a few thousand
  parameters);
- ``unet-tcn``: a frequency U-Net whose bottleneck is a dilated temporal convolution stack
  (about 0.3 s of context each side at 16 kHz), which also sets a third weight, a gain
  ``c`` in [0, 2] on the mixed bin (``Y = c * (...)``), so it can suppress what neither
  estimate removed. Its context is finite, so chunked processing stays exact.

Shapes: spectra are complex ``(B, F, T)``; waveforms ``(B, N)`` float32.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class FusionConfig:
    """Architecture and STFT of a fusion network (stored in its checkpoint)."""

    n_fft: int = 512
    hop: int = 128
    channels: int = 12
    a_range: float = 1.5  # a = 1 + a_range * tanh(.)
    b_range: float = 1.0  # b = b_range * tanh(.)
    arch: str = "cnn"  # or "unet-tcn"
    hidden: int = 96  # unet-tcn: width of the temporal stack
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16)  # unet-tcn: temporal stack

    def __post_init__(self):
        if self.arch not in ("cnn", "unet-tcn"):
            raise ValueError(f"unknown fusion arch {self.arch!r} (cnn, unet-tcn)")
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dilations"] = list(self.dilations)
        return d

    @property
    def outputs(self) -> int:
        return 2 if self.arch == "cnn" else 3

    @property
    def receptive_frames(self) -> int:
        """Frames each output bin sees on either side."""
        if self.arch == "cnn":
            return 1 + 2 + 4  # 3 time taps at dilations 1, 2, 4
        # 4 encoder layers (1 frame each), the temporal stack, 3 decoder layers, 1 spare frame
        return 4 + sum(self.dilations) + 4


class _TemporalBlock(nn.Module):
    """Residual dilated 1-D convolution over frames."""

    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)
        self.act = nn.GELU()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.act(self.conv(h))


def transposed_freq_conv(conv: nn.ConvTranspose2d, h: torch.Tensor) -> torch.Tensor:
    """``conv(h)`` for the decoder's kernel-(5, 3), stride-(2, 1), padding-(2, 1) transposed
    convolution, computed as one ordinary 3x3 convolution at the input's resolution.

    With ``n = 2m`` the even output bins are ``w4 h[m-1] + w2 h[m] + w0 h[m+1]`` and the odd
    ones ``w3 h[m] + w1 h[m+1]`` (taps along frequency; along time the kernel is flipped).
    Both phases come out of one convolution with twice the output channels and are
    interleaved: the same result to float rounding, about 2-3x faster on CPU than PyTorch's
    transposed convolution, and differentiable in the same weights."""
    if (conv.kernel_size, conv.stride, conv.padding, conv.output_padding, conv.dilation, conv.groups) != (
            (5, 3), (2, 1), (2, 1), (0, 0), (1, 1), 1):
        raise ValueError("transposed_freq_conv needs kernel (5, 3), stride (2, 1), padding (2, 1)")
    w = conv.weight.flip(-1)  # (in, out, 5, 3): time taps in correlation order
    zero = torch.zeros_like(w[:, :, 0])
    even = torch.stack([w[:, :, 4], w[:, :, 2], w[:, :, 0]], 2)
    odd = torch.stack([zero, w[:, :, 3], w[:, :, 1]], 2)
    kernel = torch.cat([even, odd], 1).transpose(0, 1)  # (2 out, in, 3, 3)
    bias = None if conv.bias is None else torch.cat([conv.bias, conv.bias])
    y = F.conv2d(h, kernel, bias, padding=1)
    b, two_c, bins, t = y.shape
    y = y.view(b, 2, two_c // 2, bins, t).permute(0, 2, 3, 1, 4).reshape(b, two_c // 2, 2 * bins, t)
    return y[:, :, :2 * bins - 1]


class _UNetTCN(nn.Module):
    """``(B, 3, F, T)`` -> ``(B, outputs, F, T)``: strided frequency encoder, temporal stack on
    the flattened bottleneck, transposed-convolution decoder with skips. ``F`` must be
    ``8k + 1`` (257 for a 512-point FFT)."""

    def __init__(self, cfg: FusionConfig, freqs: int):
        super().__init__()
        if (freqs - 1) % 8:
            raise ValueError(f"unet-tcn fusion needs n_fft // 2 + 1 = 8k + 1 bins, got {freqs}")
        c = cfg.channels
        widths = (c, c, 2 * c, 2 * c)
        self.enc = nn.ModuleList([nn.Conv2d(3, widths[0], (5, 3), padding=(2, 1))] + [
            nn.Conv2d(widths[i], widths[i + 1], (5, 3), stride=(2, 1), padding=(2, 1)) for i in range(3)])
        self.bottom_bins = (freqs - 1) // 8 + 1
        flat = widths[3] * self.bottom_bins
        self.squeeze = nn.Conv1d(flat, cfg.hidden, 1)
        self.temporal = nn.Sequential(*[_TemporalBlock(cfg.hidden, d) for d in cfg.dilations])
        self.expand = nn.Conv1d(cfg.hidden, flat, 1)
        self.dec = nn.ModuleList([
            nn.ConvTranspose2d(widths[i + 1], widths[i], (5, 3), stride=(2, 1), padding=(2, 1))
            for i in reversed(range(3))])
        self.head = nn.Conv2d(widths[0], cfg.outputs, 1)
        self.act = nn.GELU()

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        skips = []
        h = f
        for conv in self.enc:
            h = self.act(conv(h))
            skips.append(h)
        b, ch, fr, t = h.shape
        z = self.temporal(self.act(self.squeeze(h.reshape(b, ch * fr, t))))
        h = h + self.expand(z).reshape(b, ch, fr, t)
        for conv, skip in zip(self.dec, reversed(skips[:-1])):
            h = self.act(transposed_freq_conv(conv, h)) + skip
        return self.head(h)


class SpectralFusion(nn.Module):
    """Per-bin mixing weights from (log |X|, log |G/X|, log |D/X|) by a small network."""

    def __init__(self, cfg: FusionConfig = FusionConfig()):
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        if cfg.arch == "cnn":
            self.net = nn.Sequential(
                nn.Conv2d(3, ch, (5, 3), padding=(2, 1)), nn.GELU(),
                nn.Conv2d(ch, ch, (5, 3), padding=(4, 2), dilation=(2, 2)), nn.GELU(),
                nn.Conv2d(ch, ch, (5, 3), padding=(8, 4), dilation=(4, 4)), nn.GELU(),
                nn.Conv2d(ch, 2, 1))
            head = self.net[-1]
        else:
            self.net = _UNetTCN(cfg, cfg.n_fft // 2 + 1)
            head = self.net.head
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)

    @staticmethod
    def features(X: torch.Tensor, G: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
        """``(B, 3, F, T)``: input log power and the two estimates' log power ratios to it."""
        def log_power(V: torch.Tensor) -> torch.Tensor:
            return torch.log10(V.real ** 2 + V.imag ** 2 + 1e-8)

        lx = log_power(X)
        return torch.stack([lx / 4, (log_power(G) - lx) / 2, (log_power(D) - lx) / 2], 1)

    def weights(self, X: torch.Tensor, G: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
        """The network's raw outputs ``(B, outputs, F, T)`` for these spectra."""
        return self.net(self.features(X, G, D))

    def mix(self, X: torch.Tensor, G: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
        """Fused complex spectrum ``(B, F, T)``."""
        return self.mix_weights(X, G, D, self.weights(X, G, D))

    def mix_weights(self, X: torch.Tensor, G: torch.Tensor, D: torch.Tensor,
                    w: torch.Tensor) -> torch.Tensor:
        """Apply the network's raw outputs ``w`` ``(B, outputs, F, T)`` to the spectra."""
        a = 1 + self.cfg.a_range * torch.tanh(w[:, 0])
        b = self.cfg.b_range * torch.tanh(w[:, 1])
        y = X + a * (G - X) + b * (D - X)
        if w.shape[1] > 2:
            y = y * (1 + torch.tanh(w[:, 2]))
        return y

    def stft(self, v: torch.Tensor) -> torch.Tensor:
        return torch.stft(v, self.cfg.n_fft, self.cfg.hop, window=self.window, return_complex=True)

    def istft(self, V: torch.Tensor, length: int) -> torch.Tensor:
        return torch.istft(V, self.cfg.n_fft, self.cfg.hop, window=self.window, length=length)

    def forward(self, x: torch.Tensor, g: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Waveforms ``(B, N)`` in, fused waveform ``(B, N)`` out."""
        return self.istft(self.mix(self.stft(x), self.stft(g), self.stft(d)), x.shape[-1])


@torch.no_grad()
def widen_temporal(net: SpectralFusion, narrow_state: dict[str, torch.Tensor], narrow_hidden: int) -> None:
    """Load a unet-tcn fusion with a narrower temporal stack into the wider ``net``, keeping its output.

    The old units keep their weights; the new ones keep ``net``'s fresh initialisation for their
    inputs, and every weight from a new unit into an old unit or into ``expand`` is zero, so the
    widened network computes exactly what the narrow one did and training grows the new units
    from there (function-preserving widening, as in Net2Net)."""
    cfg = net.cfg
    if cfg.arch != "unet-tcn" or not 0 < narrow_hidden <= cfg.hidden:
        raise ValueError(f"can only widen a unet-tcn temporal stack to hidden >= {narrow_hidden}")
    own = net.state_dict()
    h = narrow_hidden
    for name, old in narrow_state.items():
        new = own[name]
        if new.shape == old.shape:
            new.copy_(old)
        elif name.startswith("net.squeeze."):  # (hidden, flat, 1) / (hidden,)
            new[:h] = old
        elif name.startswith("net.expand.weight"):  # (flat, hidden, 1)
            new.zero_()
            new[:, :h] = old
        elif name.startswith("net.temporal.") and name.endswith("weight"):  # (hidden, hidden, 3)
            new[:h, :h] = old
            new[:h, h:] = 0
        elif name.startswith("net.temporal.") and name.endswith("bias"):
            new[:h] = old
        else:
            raise ValueError(f"cannot widen parameter {name}: {tuple(old.shape)} -> {tuple(new.shape)}")
    net.load_state_dict(own)


@torch.no_grad()
def fuse_long(model: SpectralFusion, x: torch.Tensor, g: torch.Tensor, d: torch.Tensor,
              chunk: int = 16000 * 8) -> torch.Tensor:
    """Fuse ``(C, N)`` signals of any length in chunks with context crops.

    Each chunk is processed with enough context on both sides that the kept part equals
    what a single pass would give, so memory stays bounded on long files."""
    n = x.shape[-1]
    if n == 0:
        return g.clone()
    hop = model.cfg.hop
    context = (model.cfg.receptive_frames + 2) * hop + model.cfg.n_fft
    chunk = max(chunk - chunk % hop, hop * 8)
    out = torch.empty_like(g)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        lo, hi = max(0, start - context), min(n, stop + context)  # lo stays on the hop grid
        y = model(x[:, lo:hi], g[:, lo:hi], d[:, lo:hi])
        out[:, start:stop] = y[:, start - lo:stop - lo]
    return out
