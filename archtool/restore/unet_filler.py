"""The spectrogram U-Net as a gap filler (:class:`UNetFiller`).

For the STFT frames a gap touches, the network (:mod:`archtool.models.unet_inpaint`)
predicts magnitudes from the masked spectrogram around it; they are capped per bin by the
loudest the known frames reached (:func:`cap_to_context`), and the phase is reconstructed
inside the gap only (fast Griffin-Lim with the known samples held fixed, started from a
given fill, e.g. the Janssen one). Any sample rate: the gap's neighbourhood is resampled
to the model's rate and the fill resampled back. How the fill is then combined with the
Janssen fill is :mod:`archtool.restore.gap_fills`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio

from archtool.dsp.janssen import ar_order_for, bidirectional_extrapolate
from archtool.errors import CheckpointError
from archtool.models.checkpoint import load_checkpoint
from archtool.models.unet_inpaint import (InpaintUNet, SpecConfig, build_model, from_features,
                                          istft, known_rms, stft, to_features)

GL_ITERATIONS = 60  # gap-only fast Griffin-Lim iterations of the ``unet`` and ``blend`` recipes
CONTEXT_FRAMES = 64  # known STFT frames the network sees on each side of a gap (at least)


def cap_to_context(pred: torch.Tensor, mag: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Predicted magnitudes ``(F, T)`` capped, per bin, at the loudest the ``reference``
    frames (``(T,)`` bool: known frames of the window) reached in that bin (``mag`` ``(F, T)``).

    A safety bound, not a model: a network asked about material unlike its training data
    (a steady pure tone, say) can over-predict a bin several-fold, which would put a burst
    louder than anything around it into the gap. Without reference frames, no cap.
    """
    if not bool(reference.any()):
        return pred
    return torch.minimum(pred, mag[:, reference].amax(dim=1, keepdim=True))


@dataclass
class UNetFiller:
    """A loaded U-Net and its STFT layout; fills one gap of a 1-D signal."""

    model: InpaintUNet
    spec: SpecConfig
    source: str

    @classmethod
    def load(cls, path: str | Path) -> "UNetFiller":
        """Load a checkpoint written by ``archtool train inpaint`` (weights only)."""
        state, meta = load_checkpoint(path)
        if meta.get("model") != "unet_inpaint":
            raise CheckpointError(f"{path}: not an inpainting checkpoint (model={meta.get('model')!r})")
        model = build_model(meta.get("arch"))
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not fit the stored architecture ({exc})") from None
        model.eval()
        return cls(model, SpecConfig(**meta["spec"]), str(path))

    @torch.no_grad()
    def fill_native(self, y: np.ndarray, start: int, stop: int, iterations: int = GL_ITERATIONS,
                    phase: str = "gap", init: np.ndarray | None = None,
                    mag_range: tuple[float, float] = (1.0, 1.0), momentum: float = 0.99,
                    magnitudes_from: np.ndarray | None = None, anchor_ms: float = 0.0) -> np.ndarray:
        """Fill ``y[start:stop]`` (``y`` 1-D at the model rate); returns the whole window, float64.

        ``phase="gap"`` (default): fast Griffin-Lim that changes only gap samples,
        starting from ``init`` (the gap's first estimate, ``(stop - start,)``; default
        a bidirectional AR prediction, which continues the surrounding phase).
        ``mag_range=(lo, hi)``: each iteration clamps the magnitude of every gap frame's
        bin into ``[lo, hi]`` times the predicted one (``(1, 1)``: impose the prediction;
        ``(lo, inf)`` with an AR ``init``: keep what the AR fill carries and only raise
        the bins where it has decayed below ``lo`` of the predicted level).
        ``phase="plain"`` (for comparison): random initial phase and plain Griffin-Lim
        over the frames touching the gap, known samples not imposed during the iterations.
        ``magnitudes_from`` (a signal like ``y``, gap included): take the gap frames' target
        magnitudes from its STFT instead of the network's (uncapped). With the clean signal
        this measures how far the phase reconstruction alone gets: a diagnostic, not a fill.
        ``anchor_ms`` (> 0): near the gap edges, trust the starting fill's magnitudes over the
        network's: each frame's target is ``w * |start| + (1 - w) * predicted`` with
        ``w = exp(-d / anchor_ms)``, ``d`` the ms from the frame centre to the nearer gap edge
        (1 for frames centred outside the gap). The Janssen fill is right near the edges and
        decays inside; the network's magnitudes are smooth guesses, and with exact magnitudes
        the phase reconstruction finds a far more coherent fill (benchmarks/inpaint.py --oracle).
        """
        spec = self.spec
        n = y.shape[0]
        known = np.ones(n, dtype=bool)
        known[start:stop] = False
        x0 = np.where(known, y, 0.0)
        first = x0.copy()
        if init is None:
            first[start:stop] = bidirectional_extrapolate(x0, start, stop, spec.sample_rate,
                                                          order=min(ar_order_for(stop - start, spec.sample_rate),
                                                                    int(0.01 * spec.sample_rate)))
        else:
            first[start:stop] = init
        xt = torch.from_numpy(x0).float()
        spec0 = stft(xt, spec)
        frames = spec0.shape[-1]
        centres = np.arange(frames) * spec.hop
        half = spec.n_fft // 2
        unknown = (centres + half > start) & (centres - half < stop)
        mask = torch.from_numpy((~unknown).astype(np.float32))[None]
        if magnitudes_from is not None:
            target = stft(torch.from_numpy(np.asarray(magnitudes_from)).float(), spec).abs()[: spec.bins]
        else:
            mag = spec0.abs()[: spec.bins][None]
            ref = known_rms(mag, mask)
            pred = self.model.predict(to_features(mag, ref), mask)
            # the ceiling ignores the frames whose analysis window reaches past the signal's ends
            # (centred STFT padding: a cut mid-note leaks into every bin there)
            edge = half // spec.hop
            interior = (~unknown) & (np.arange(frames) >= edge) & (np.arange(frames) < frames - edge)
            target = cap_to_context(from_features(pred, ref)[0], mag[0], torch.from_numpy(interior))
        if magnitudes_from is None and anchor_ms > 0:
            start_mag = stft(torch.from_numpy(first).float(), spec).abs()[: spec.bins]
            dist_ms = np.maximum(np.minimum(centres - start, stop - centres), 0) * 1000.0 / spec.sample_rate
            w = torch.from_numpy(np.exp(-dist_ms / float(anchor_ms))).float()[None]
            target = w * start_mag + (1.0 - w) * target
        target = torch.cat([target, torch.zeros(1, frames)], dim=0)  # Nyquist bin: silent
        # Griffin-Lim runs on a sub-window: the gap and one window length on each side
        # (the frames that touch the gap and the known samples they overlap).
        f0 = max(0, (start - spec.n_fft) // spec.hop)
        g0, g1 = f0 * spec.hop, min(n, stop + spec.n_fft)
        sub_n = g1 - g0
        known_t = torch.from_numpy(known[g0:g1])
        x_known = torch.from_numpy(x0[g0:g1]).float()
        c = stft(torch.from_numpy(first[g0:g1]).float(), spec)
        sub_frames = c.shape[-1]
        sub_centres = g0 + np.arange(sub_frames) * spec.hop
        unk = torch.from_numpy((sub_centres + half > start) & (sub_centres - half < stop))
        tgt = target[:, f0:f0 + sub_frames]
        if tgt.shape[-1] < sub_frames:
            tgt = torch.cat([tgt, torch.zeros(tgt.shape[0], sub_frames - tgt.shape[-1])], dim=1)

        lo, hi = float(mag_range[0]), float(mag_range[1])

        def impose(c: torch.Tensor) -> torch.Tensor:
            """Predicted magnitudes (clamped into mag_range) on unknown frames, current phase kept."""
            mag = c.abs()
            unit = c / mag.clamp_min(1e-12)
            if lo == hi == 1.0:
                new = tgt
            else:
                new = torch.maximum(mag, lo * tgt)
                if np.isfinite(hi):
                    new = torch.minimum(new, hi * tgt)
            return torch.where(unk[None, :], new * unit, c)

        def project(c: torch.Tensor) -> torch.Tensor:
            """Impose the magnitudes, then the known samples."""
            x = istft(impose(c), spec, sub_n)
            return stft(torch.where(known_t, x_known, x), spec)

        if phase == "plain":
            gen = torch.Generator().manual_seed(0)
            rand = torch.exp(2j * torch.pi * torch.rand(c.shape, generator=gen))
            c = torch.where(unk[None, :], rand, c)
            for _ in range(int(iterations)):
                c = stft(istft(impose(c), spec, sub_n), spec)
            t_prev = c
        else:
            t_prev = c
            for _ in range(int(iterations)):
                t = project(c)
                c = t + momentum * (t - t_prev)
                t_prev = t
        sub = istft(impose(t_prev), spec, sub_n).double().numpy()
        out = np.array(y, dtype=np.float64)
        out[g0:g1] = sub
        return np.where(known, y, out)

    def fill(self, x: np.ndarray, start: int, stop: int, sample_rate: int,
             iterations: int = GL_ITERATIONS, phase: str = "gap", init: np.ndarray | None = None,
             mag_range: tuple[float, float] = (1.0, 1.0), momentum: float = 0.99,
             magnitudes_from: np.ndarray | None = None, anchor_ms: float = 0.0) -> np.ndarray:
        """Fill ``x[start:stop]`` of a 1-D signal at any rate; returns the gap ``(stop - start,)``.

        ``init`` (optional, ``(stop - start,)`` at ``sample_rate``), ``mag_range``,
        ``magnitudes_from`` (a signal like ``x``, at ``sample_rate``) and ``anchor_ms`` as in
        :meth:`fill_native`.
        """
        spec = self.spec
        gap = stop - start
        ctx = int(max(CONTEXT_FRAMES * spec.hop * sample_rate / spec.sample_rate, 0.5 * gap))
        lo, hi = max(0, start - ctx), min(x.shape[0], stop + ctx)
        win = np.asarray(x[lo:hi], dtype=np.float64).copy()
        win[start - lo:stop - lo] = 0.0
        oracle = None if magnitudes_from is None else np.asarray(magnitudes_from, dtype=np.float64)[lo:hi]
        if sample_rate == spec.sample_rate:
            return self.fill_native(win, start - lo, stop - lo, iterations, phase, init,
                                    mag_range, momentum, oracle, anchor_ms)[start - lo:stop - lo]
        up = torchaudio.functional.resample(torch.from_numpy(win).float(), sample_rate, spec.sample_rate)
        ratio = spec.sample_rate / sample_rate
        margin = 16  # resampling filter smear around the zeroed gap
        a = max(0, int(np.floor((start - lo) * ratio)) - margin)
        b = min(up.shape[0], int(np.ceil((stop - lo) * ratio)) + margin)
        up_init = None
        if init is not None:
            seeded = win.copy()
            seeded[start - lo:stop - lo] = init
            up_init = torchaudio.functional.resample(torch.from_numpy(seeded).float(), sample_rate,
                                                     spec.sample_rate).double().numpy()[a:b]
        if oracle is not None:
            oracle = torchaudio.functional.resample(torch.from_numpy(oracle).float(), sample_rate,
                                                    spec.sample_rate).double().numpy()
        filled = self.fill_native(up.double().numpy(), a, b, iterations, phase, up_init, mag_range, momentum,
                                  oracle, anchor_ms)
        down = torchaudio.functional.resample(torch.from_numpy(filled).float(), spec.sample_rate, sample_rate)
        down = down.double().numpy()
        if down.shape[0] < win.shape[0]:
            down = np.pad(down, (0, win.shape[0] - down.shape[0]))
        return down[start - lo:stop - lo]
