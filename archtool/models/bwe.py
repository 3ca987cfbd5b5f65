"""Learned bandwidth extension: an SBR-style generator whose envelope comes from a 1D U-Net.

The missing band above a cutoff is rebuilt in the STFT domain from two excitations,
shaped to a spectral envelope that a small network predicts from the band below:

* **copy-up**: bins of the top of the known band shifted up by whole multiples of the
  analysis/synthesis ratio (``n_fft / hop`` bins), so the shift is a coherent frequency
  translation and harmonic structure carries into the new band (as in HE-AAC's SBR);
* **flat**: unit-magnitude bins with random phase (noise-like, for fricatives and air).

:class:`EnvelopeUNet` reads per-frame log band densities on a fixed mel-spaced grid of
``n_bands`` bands in Hz (the same grid at every sample rate, so one model serves 16,
22.05 and 44.1 kHz) and outputs, per band and frame, the target log density of the
generated band, the copy-up/flat mix, and an optional equalisation gain for the known
band (used only by the enhancement model). :class:`BandwidthExtender` does the STFT,
runs the network and synthesises. The generated spectrum only *fills up* to the target:
where the input already has energy above the cutoff (a soft transition band) less is
added.

Shapes: waveforms ``(B, N)`` float32; spectra ``(B, F, T)``; band tensors ``(B, n_bands, T)``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

LOG_EPS = 1e-10
GRID_MAX_HZ = 24000.0
HOP_S = 0.008


@dataclass(frozen=True)
class BweConfig:
    """Constructor arguments of :class:`BandwidthExtender` (stored in checkpoint metadata)."""

    n_bands: int = 48
    width: int = 64
    depth: int = 3
    kernel: int = 5
    eq: bool = False          # predict an equalisation gain for the known band
    eq_max_db: float = 15.0   # bound of that gain
    norm: bool = False        # GroupNorm in every block (keeps activations bounded in deep training)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stft_sizes(rate: int) -> tuple[int, int]:
    """``(n_fft, hop)`` for ``rate``: ~8 ms hop, window of four hops (same frame rate everywhere)."""
    hop = 2 * max(8, int(round(rate * HOP_S / 2)))
    return 4 * hop, hop


def _mel(hz: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _imel(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10 ** (mel / 2595.0) - 1.0)


def band_edges_hz(n_bands: int) -> np.ndarray:
    """``(n_bands + 1,)`` mel-spaced band edges from 0 Hz to 24 kHz."""
    return _imel(np.linspace(0.0, _mel(np.array(GRID_MAX_HZ)), n_bands + 1))


@lru_cache(maxsize=32)
def _band_matrices(n_bands: int, n_fft: int, rate: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pooling ``(n_bands, F)`` (bin -> band membership), interpolation ``(F, n_bands)``
    (band centres -> bins, linear in Hz, held flat beyond the end centres) and the
    band upper edges ``(n_bands,)`` in Hz."""
    edges = band_edges_hz(n_bands)
    freqs = np.arange(n_fft // 2 + 1) * rate / n_fft
    idx = np.clip(np.searchsorted(edges, freqs, side="right") - 1, 0, n_bands - 1)
    pool = np.zeros((n_bands, freqs.size), np.float32)
    pool[idx, np.arange(freqs.size)] = 1.0
    centres = 0.5 * (edges[:-1] + edges[1:])
    interp = np.zeros((freqs.size, n_bands), np.float32)
    for k, f in enumerate(freqs):
        j = int(np.clip(np.searchsorted(centres, f) - 1, 0, n_bands - 2))
        t = float(np.clip((f - centres[j]) / (centres[j + 1] - centres[j]), 0.0, 1.0))
        interp[k, j], interp[k, j + 1] = 1.0 - t, t
    return torch.from_numpy(pool), torch.from_numpy(interp), torch.from_numpy(edges[1:].astype(np.float32))


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, norm: bool = False):
        super().__init__()
        self.conv1 = nn.Conv1d(cin, cout, kernel, stride=stride, padding=kernel // 2)
        self.conv2 = nn.Conv1d(cout, cout, kernel, padding=kernel // 2)
        self.act1, self.act2 = nn.PReLU(cout), nn.PReLU(cout)
        self.norm1 = nn.GroupNorm(1, cout) if norm else nn.Identity()
        self.norm2 = nn.GroupNorm(1, cout) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.norm1(self.conv1(x)))
        return self.act2(self.norm2(self.conv2(x))) + x


class EnvelopeUNet(nn.Module):
    """1D U-Net over STFT frames: ``(B, 2*n_bands, T) -> (B, 3*n_bands, T)``.

    Input channels: normalised log10 band densities of the known band (0 where
    unknown) and the known-band mask. Output channels: target log10 density
    (normalised), copy-up/flat mix logit, equalisation gain (tanh units).
    """

    def __init__(self, n_bands: int, width: int, depth: int, kernel: int, norm: bool = False):
        super().__init__()
        self.depth = depth
        self.inp = _Block(2 * n_bands, width, kernel, norm=norm)
        chans = [width * min(2 ** i, 4) for i in range(depth + 1)]
        self.down = nn.ModuleList(_Block(chans[i], chans[i + 1], kernel, stride=2, norm=norm) for i in range(depth))
        self.up = nn.ModuleList(
            nn.ConvTranspose1d(chans[i + 1], chans[i], 4, stride=2, padding=1) for i in reversed(range(depth)))
        self.merge = nn.ModuleList(_Block(2 * chans[i], chans[i], kernel, norm=norm) for i in reversed(range(depth)))
        self.out = nn.Conv1d(width, 3 * n_bands, 1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        t = feats.shape[-1]
        mult = 2 ** self.depth
        pad = (-t) % mult
        x = F.pad(feats, (0, pad), mode="replicate") if pad else feats
        x = self.inp(x)
        skips = []
        for block in self.down:
            skips.append(x)
            x = block(x)
        for up, merge in zip(self.up, self.merge):
            x = up(x)
            x = merge(torch.cat([x, skips.pop()], dim=1))
        return self.out(x)[..., :t]


class BandwidthExtender(nn.Module):
    """Extend ``(B, N)`` waveforms above per-item cutoffs; see the module docstring."""

    def __init__(self, config: BweConfig | None = None, **kwargs: Any):
        super().__init__()
        self.config = config or BweConfig(**kwargs)
        c = self.config
        self.net = EnvelopeUNet(c.n_bands, c.width, c.depth, c.kernel, c.norm)

    # ----- analysis helpers -------------------------------------------------------------
    def stft(self, x: torch.Tensor, rate: int) -> torch.Tensor:
        n_fft, hop = stft_sizes(rate)
        win = torch.hann_window(n_fft, device=x.device, dtype=x.dtype)
        return torch.stft(x, n_fft, hop, window=win, center=True, return_complex=True)

    def istft(self, spec: torch.Tensor, rate: int, length: int) -> torch.Tensor:
        n_fft, hop = stft_sizes(rate)
        win = torch.hann_window(n_fft, device=spec.device, dtype=spec.real.dtype)
        return torch.istft(spec, n_fft, hop, window=win, center=True, length=length)

    def band_log_density(self, power: torch.Tensor, rate: int, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Mean power per bin in each band, log10: ``(B, F, T) -> (B, n_bands, T)``.

        ``weight`` ``(B, F, 1)`` restricts the mean to some bins (bands with none get LOG_EPS).
        """
        n_fft, _ = stft_sizes(rate)
        pool, _, _ = _band_matrices(self.config.n_bands, n_fft, rate)
        pool = pool.to(power.device)
        if weight is None:
            weight = torch.ones_like(power[:, :, :1])
        num = torch.einsum("bf,xft->xbt", pool, power * weight)
        den = torch.einsum("bf,xft->xbt", pool, weight.expand_as(power[:, :, :1]))
        return torch.log10(num / den.clamp_min(1e-6) + LOG_EPS)

    def to_bins(self, bands: torch.Tensor, rate: int) -> torch.Tensor:
        """Linear interpolation of band values onto bins: ``(B, n_bands, T) -> (B, F, T)``."""
        n_fft, _ = stft_sizes(rate)
        _, interp, _ = _band_matrices(self.config.n_bands, n_fft, rate)
        return torch.einsum("fb,xbt->xft", interp.to(bands.device), bands)

    def reference_level(self, spec: torch.Tensor, rate: int, cutoff_hz: torch.Tensor) -> torch.Tensor:
        """log10 of the mean power per bin below ``cutoff_hz`` ``(B,)`` over all frames of
        ``spec`` ``(B, F, T)``: ``(B, 1, 1)``, the level the network's input and output are
        relative to."""
        n_fft, _ = stft_sizes(rate)
        freqs = torch.arange(spec.shape[1], device=spec.device) * rate / n_fft
        below = (freqs[None, :] < cutoff_hz[:, None]).float()[..., None]
        power = spec.real ** 2 + spec.imag ** 2
        total = (power * below).sum(dim=(1, 2)) / (below.sum(dim=(1, 2)) * power.shape[-1]).clamp_min(1.0)
        return torch.log10(total + LOG_EPS)[:, None, None]

    def features(self, spec: torch.Tensor, rate: int, cutoff_hz: torch.Tensor,
                 ref: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Network input ``(B, 2*n_bands, T)``, the per-item reference level ``(B, 1, 1)``
        and the known-band mask ``(B, n_bands, 1)``.

        The reference (:meth:`reference_level`) is the item's mean power per bin below the
        cutoff (as in training, one per training segment) unless ``ref`` gives it: the
        ``bwe`` restorer measures it over a fixed window of the file around each segment,
        so that no output depends on how a long signal is cut."""
        n_fft, _ = stft_sizes(rate)
        _, _, upper = _band_matrices(self.config.n_bands, n_fft, rate)
        known = (upper.to(spec.device)[None, :] <= cutoff_hz[:, None]).float()[..., None]
        power = spec.real ** 2 + spec.imag ** 2
        logd = self.band_log_density(power, rate)
        if ref is None:
            ref = self.reference_level(spec, rate, cutoff_hz)
        norm = ((logd - ref).clamp(-8.0, 4.0)) * known
        feats = torch.cat([norm, known.expand_as(norm)], dim=1)
        return feats, ref, known

    # ----- synthesis ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor, rate: int, cutoff_hz: torch.Tensor | float, gain: float = 1.0,
                generator: torch.Generator | None = None, return_parts: bool = False,
                eq_mode: str = "dynamic", eq_amount: float = 1.0, phase: torch.Tensor | None = None,
                ref: torch.Tensor | None = None) -> Any:
        """Extend ``x`` ``(B, N)`` above ``cutoff_hz`` (scalar or ``(B,)``, Hz).

        Returns ``y`` ``(B, N)`` = equalised ``x`` plus the generated band (``gain`` scales
        the generated band; 0 returns the input band unchanged). With ``return_parts``
        returns a dict with ``y``, ``extension`` (the generated waveform alone), the
        predicted ``log_density`` ``(B, n_bands, T)`` (absolute log10) and ``known``.
        With ``config.eq``, ``eq_mode`` chooses how the known band is equalised:
        ``dynamic`` (per frame, as trained), ``static`` (the per-band mean over the
        signal, one fixed equaliser) or ``off``; ``eq_amount`` scales the gains in dB.
        ``phase`` ``(B or 1, F, T)`` (radians) replaces the random phases drawn from
        ``generator`` (see :func:`frame_phases`). ``ref`` ``(B, 1, 1)`` (log10) replaces the
        item's own reference level (see :meth:`features`).
        """
        b, n = x.shape
        n_fft, hop = stft_sizes(rate)
        if not torch.is_tensor(cutoff_hz):
            cutoff_hz = torch.full((b,), float(cutoff_hz), device=x.device)
        cutoff_hz = cutoff_hz.to(x.device, torch.float32).clamp(2 * rate / n_fft, rate / 2)
        spec = self.stft(x, rate)
        feats, ref, known = self.features(spec, rate, cutoff_hz, ref)
        out = self.net(feats)
        nb = self.config.n_bands
        log_target = 8.0 * torch.tanh(out[:, :nb] / 8.0) + ref
        mix = torch.sigmoid(out[:, nb:2 * nb]).clamp(1e-3, 1 - 1e-3)
        n_bins = spec.shape[1]
        kc = torch.ceil(cutoff_hz * n_fft / rate).long().clamp(2, n_bins)
        bins = torch.arange(n_bins, device=x.device)
        gen_mask = (bins[None, :] >= kc[:, None]).float()[..., None]          # (B, F, 1)

        ratio = n_fft // hop
        width = torch.clamp((kc // 2) // ratio * ratio, min=ratio)
        width = torch.minimum(width, (kc - 1) // ratio * ratio).clamp_min(ratio)
        offset = (bins[None, :] - kc[:, None]).clamp_min(0)
        src = kc[:, None] - width[:, None] + torch.remainder(offset, width[:, None])
        src = torch.where(bins[None, :] >= kc[:, None], src, bins[None, :]).clamp(0, n_bins - 1)
        copy = torch.gather(spec, 1, src[..., None].expand(-1, -1, spec.shape[-1]))
        copy_pow = copy.real ** 2 + copy.imag ** 2
        copy_norm = copy / torch.sqrt(10 ** self.to_bins(self.band_log_density(copy_pow, rate, gen_mask), rate) + 1e-12)
        if phase is None:
            if generator is None:
                generator = torch.Generator(device="cpu").manual_seed(0)
            phase = torch.rand(spec.shape, generator=generator).to(x.device) * (2 * math.pi)
        phase = phase.to(x.device, torch.float32).expand(spec.shape)
        flat = torch.polar(torch.ones_like(phase), phase)
        mix_bins = self.to_bins(mix, rate)
        excitation = torch.sqrt(1 - mix_bins) * copy_norm + torch.sqrt(mix_bins) * flat

        in_pow = spec.real ** 2 + spec.imag ** 2
        have = 10 ** self.to_bins(self.band_log_density(in_pow, rate, gen_mask), rate)
        want = 10 ** self.to_bins(log_target, rate)
        fill = torch.sqrt(torch.relu(want - have) + 1e-3 * want) * gen_mask * gain
        extension_spec = excitation * fill
        base = spec
        if self.config.eq and eq_mode != "off":
            eq_db = torch.tanh(out[:, 2 * nb:]) * self.config.eq_max_db * eq_amount
            if eq_mode == "static":
                eq_db = eq_db.mean(dim=-1, keepdim=True).expand_as(eq_db)
            eq_bins = 10 ** (self.to_bins(eq_db, rate) / 20.0)
            base = spec * torch.where(gen_mask.bool(), torch.ones_like(eq_bins), eq_bins)
        y_spec = base + extension_spec
        y = self.istft(y_spec, rate, n)
        if not return_parts:
            return y
        return {"y": y, "extension": self.istft(extension_spec, rate, n), "log_density": log_target,
                "known": known, "spec": y_spec}


def frame_phases(first_frame: int, n_frames: int, n_bins: int, seed: int = 0) -> torch.Tensor:
    """Pseudo-random phases ``(1, n_bins, n_frames)`` in [0, 2 pi) that depend only on the
    absolute frame index, the bin and ``seed``: chunks of a long file processed apart get the
    same phases where they overlap (with the STFT grid aligned to absolute positions)."""
    j = np.arange(first_frame, first_frame + n_frames, dtype=np.float64)[None, :]
    k = np.arange(n_bins, dtype=np.float64)[:, None]
    u = np.sin(j * 12.9898 + k * 78.233 + (seed % 100003) * 37.719) * 43758.5453
    return torch.from_numpy((2 * np.pi * (u - np.floor(u)))[None].astype(np.float32))


HIGHPASS_TRANSITION_HZ = 200.0   # width of the high-pass's transition band, just above the cutoff
HIGHPASS_ATTEN_DB = 150.0        # its stop-band attenuation (below the cutoff)


@lru_cache(maxsize=64)
def highpass_taps(rate: int, cutoff_hz: float) -> np.ndarray:
    """Odd-length linear-phase FIR high-pass ``(L,)`` float64 (Kaiser window design).

    Stop band: below ``cutoff_hz``, attenuated by at least :data:`HIGHPASS_ATTEN_DB`
    (below float32 rounding of the signal it is added to); pass band from
    ``cutoff_hz + HIGHPASS_TRANSITION_HZ`` up. The length depends on the rate (about
    50 ms of taps), not on the signal, so filtering is local: an output sample depends
    on the input within ``L // 2`` samples of it.
    """
    from scipy import signal

    numtaps, beta = signal.kaiserord(HIGHPASS_ATTEN_DB, HIGHPASS_TRANSITION_HZ / (rate / 2))
    numtaps |= 1  # odd: a type-I filter can pass Nyquist
    edge = min(cutoff_hz + HIGHPASS_TRANSITION_HZ / 2, 0.999 * rate / 2)
    return signal.firwin(numtaps, edge, window=("kaiser", beta), pass_zero=False, fs=rate)


def highpass_fir(signal_: np.ndarray, rate: int, cutoff_hz: float) -> np.ndarray:
    """Full linear convolution of ``signal_`` ``(..., N)`` with :func:`highpass_taps`
    (float64, FFT): ``(..., N + L - 1)``, sample ``i`` of the result centred on input sample
    ``i - L // 2``. Full (not cropped) so that filtering overlapping pieces and adding
    them gives the filtered sum of the pieces."""
    from scipy.signal import fftconvolve

    taps = highpass_taps(int(rate), float(cutoff_hz))
    x = np.asarray(signal_, np.float64)
    return fftconvolve(x, taps.reshape((1,) * (x.ndim - 1) + (-1,)), axes=-1)


def effective_cutoff_hz(audio: np.ndarray, rate: int, upper_hz: float | None = None,
                        min_drop_db: float = 20.0) -> float:
    """Estimate where the content of ``audio`` ``(C, N)`` or ``(N,)`` stops (Hz).

    Long-term average spectrum (2048-point FFT, 400 Hz smoothing, in dB). The steepest
    fall over 800 Hz between a sixteenth of ``upper_hz`` (default Nyquist) and
    ``upper_hz`` marks the edge; the cutoff is where the level has fallen 6 dB below the
    level 400 Hz under that edge. Without a fall of at least ``min_drop_db`` there is no
    cutoff and ``upper_hz`` is returned.
    """
    x = np.atleast_2d(np.asarray(audio, np.float64)).mean(axis=0)
    upper = float(upper_hz or rate / 2)
    n_fft = 2048
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::n_fft // 2]
    ltas = (np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1)) ** 2).mean(axis=0)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    smooth = max(1, int(round(400.0 / (rate / n_fft))))
    level = 10 * np.log10(np.convolve(ltas, np.ones(smooth) / smooth, mode="same") + 1e-20)
    d = max(1, int(round(400.0 / (rate / n_fft))))
    lo = max(2 * d, int(np.ceil(upper / 16 / (rate / n_fft))))
    hi = min(len(freqs) - 1 - d, int(np.floor(upper / (rate / n_fft))))
    if hi <= lo:
        return upper
    ks = np.arange(lo, hi + 1)
    drop = level[ks - d] - level[ks + d]
    k = int(ks[np.argmax(drop)])
    if drop.max() < min_drop_db:
        return upper
    ref = level[k - d]
    j = k - d
    while j < len(level) - 1 and level[j] >= ref - 6.0:
        j += 1
    return float(min(freqs[j], upper))
