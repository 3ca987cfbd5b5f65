"""Coherent frequency modulation of partial tracks: a wow measure that survives clicks.

Wow scales every frequency in the recording by the same slowly varying ratio
``1 + d cos(2 pi f t + phi)`` (d = 0.3-1 %, f = 0.3-2 Hz: 5-17 cents). Here the spectral
peaks of the ~8 kHz mid-rate mix (0.128 s Hann frames, hop 64 ms, 100-3400 Hz, within 30 dB
of the frame's strongest) get their instantaneous frequency from the phase advance over one
hop, and peaks continuing one another from frame to frame (same bin or one bin away,
within ``LINK_CENTS``) are joined into partial tracks. Every track is a segment with its own
pitch (a free offset, so notes and harmonics of any pitch fit); on the track's cents
deviations from their own weighted mean, one sinusoid ``a cos + b sin`` at a rate of
``GRID_HZ`` is fitted by weighted least squares jointly over every track of the block, with
the same regressors residualised per track. ``drss`` is the weighted variance it explains.
The fit is made twice: with a free offset per track (order 0), and with a free offset and
slope per track (order 1: a glide or a slow intonation trend within a note is not wow, but
neither is the part of a slow wow that a straight line through one short track absorbs).
Note changes, vibrato on single notes, noise peaks and the isolated frames a click spoils
are not coherent across tracks at one rate and phase, so they explain little; wow does.
Outliers are clipped at ``CLIP_SCALES`` robust scales before the fit.

:class:`FMAccumulator` takes the mid-rate signal in blocks of any length, processes whole
frames (the last frame is carried to the next block as the predecessor of its first
frame, so no hop is lost; tracks restart at block boundaries), fits every block and
accumulates the per-rate sums, so memory is fixed. Over several blocks the rates' explained
variances add up incoherently (a wow whose phase wanders still counts).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft

WINDOW_S = 0.128             # analysis frame (power of two samples nearest this)
HOP_DIV = 2                  # hop = frame / 2 (64 ms at 8 kHz)
BAND_HZ = (100.0, 3400.0)    # partials considered
PEAK_REL = 1e-3              # within 30 dB of the frame's strongest peak in the band
LINK_CENTS = 25.0            # a peak continues a track when within this of its last frequency
MIN_TRACK = 3                # frames a track needs to count (3 hops: ~0.19 s)
MIN_POINTS = 20              # tracked peaks a block needs to be fitted
CLIP_SCALES = 4.0            # deviations clipped at this many robust scales
GRID_HZ = np.round(np.arange(0.25, 3.0001, 0.1), 4)  # candidate wow rates (Hz)


EMPTY_MEASURES = {"fraction": 0.0, "relative": 0.0, "rate_hz": 0.0, "depth_cents": 0.0, "points": 0, "tracks": 0}


@dataclass
class FMSummary:
    """Accumulated fits over a file. ``G = len(GRID_HZ)``; row ``o`` of each array is the fit
    of order ``o`` (0: free offset per track, 1: free offset and slope).

    ``drss`` (2, G) weighted variance (cents^2 x weight) the sinusoid at each rate explains,
    summed over blocks; ``rss0`` (2,) the weighted variance of the tracks' deviations from
    their own offsets (and slopes); ``amp2k`` (2, G) and ``k`` (2, G) give the amplitude at
    each rate as sqrt(amp2k / k) (blocks weighted by the regressors' energy); ``points`` and
    ``tracks`` count what was fitted."""

    grid: np.ndarray
    drss: np.ndarray
    rss0: np.ndarray
    amp2k: np.ndarray
    k: np.ndarray
    points: int
    tracks: int

    def measures(self, order: int = 0) -> dict:
        """``fraction``: best share of the track variance one wow sinusoid explains (0..1);
        ``relative``: that share over its median across the rates; ``rate_hz``; ``depth_cents``
        (the fitted amplitude at that rate); ``points``, ``tracks``. ``order`` picks the fit."""
        if self.rss0[order] <= 0 or self.points < MIN_POINTS:
            return {**EMPTY_MEASURES, "points": int(self.points), "tracks": int(self.tracks)}
        frac = self.drss[order] / self.rss0[order]
        j = int(np.argmax(frac))
        k = self.k[order, j]
        amp = math.sqrt(self.amp2k[order, j] / k) if k > 0 else 0.0
        return {"fraction": float(frac[j]), "relative": float(frac[j] / (np.median(frac) + 1e-9)),
                "rate_hz": float(self.grid[j]), "depth_cents": float(amp),
                "points": int(self.points), "tracks": int(self.tracks)}


def fm_measures(summary: FMSummary | None, order: int = 0) -> dict:
    """``summary.measures(order)``, or zeros (``EMPTY_MEASURES``) when there is no summary."""
    return dict(EMPTY_MEASURES) if summary is None else summary.measures(order)


class FMAccumulator:
    """Streamed partial tracking and coherent-FM fit on a mid-rate (~8 kHz) mono signal."""

    def __init__(self, rate: float):
        self.rate = float(rate)
        self.n = int(2 ** np.round(np.log2(WINDOW_S * self.rate)))
        self.hop = self.n // HOP_DIV
        self.win = np.hanning(self.n + 1)[:-1].astype(np.float32)
        fb = self.rate / self.n
        self.k0 = max(3, int(BAND_HZ[0] / fb))
        self.k1 = max(self.k0 + 1, min(self.n // 2 - 3, int(min(BAND_HZ[1], 0.45 * self.rate) / fb)))
        self.buf = np.zeros(0, dtype=np.float32)
        self.frames_done = 0  # frames whose start lies before the buffer's start
        g = GRID_HZ.size
        self.drss = np.zeros((2, g))
        self.rss0 = np.zeros(2)
        self.amp2k = np.zeros((2, g))
        self.k = np.zeros((2, g))
        self.points = 0
        self.tracks = 0

    def update(self, mid: np.ndarray) -> None:
        """Add mid-rate samples (1-D float)."""
        y = np.concatenate([self.buf, np.asarray(mid, np.float32)]) if self.buf.size else np.asarray(mid, np.float32)
        N, H = self.n, self.hop
        if y.shape[0] < N + H:
            self.buf = y
            return
        nfr = 1 + (y.shape[0] - N) // H
        frames = np.lib.stride_tricks.sliding_window_view(y, N)[::H][:nfr]
        t0 = self.frames_done * H / self.rate
        self._block(frames, t0)
        # keep the last frame (predecessor of the next block's first) and what follows it
        self.buf = y[(nfr - 1) * H:].copy()
        self.frames_done += nfr - 1

    def nbytes(self) -> int:
        """Bytes held (the carried frame and the fixed per-rate sums)."""
        return int(self.buf.nbytes + self.drss.nbytes + self.amp2k.nbytes + self.k.nbytes)

    def summary(self) -> FMSummary:
        return FMSummary(GRID_HZ.copy(), self.drss.copy(), self.rss0.copy(), self.amp2k.copy(), self.k.copy(),
                         int(self.points), int(self.tracks))

    # ------------------------------------------------------------------
    def _block(self, frames: np.ndarray, t0: float) -> None:
        pts = self._points(frames)
        if pts is None:
            return
        t, c, tid, w = pts
        t = t + t0
        fit = coherent_fit(t, c, tid, w)
        if fit is None:
            return
        for o, (drss, rss0, amp, en, ntr) in enumerate(fit):
            self.drss[o] += drss
            self.rss0[o] += rss0
            self.amp2k[o] += amp ** 2 * en
            self.k[o] += en
        self.points += t.size
        self.tracks += ntr

    def _points(self, frames: np.ndarray):
        """Tracked peaks of the frames 1.. of a block: times (s, block-relative), cents,
        track ids, weights (amplitudes); None when too few."""
        N, H = self.n, self.hop
        k0, k1 = self.k0, self.k1
        X = sfft.rfft(frames * self.win, axis=1)[:, k0 - 2: k1 + 2]
        P = X.real ** 2 + X.imag ** 2
        m = P[1:, 2:-2]
        if m.shape[0] < MIN_TRACK:
            return None
        pk = (m >= P[1:, 1:-3]) & (m > P[1:, 3:-1]) & (m >= P[1:, :-4]) & (m > P[1:, 4:])
        pk &= m > m.max(axis=1, keepdims=True) * PEAK_REL
        ti, ki = np.nonzero(pk)  # sorted by frame, then bin
        if ti.size < MIN_POINTS:
            return None
        kb = (k0 + ki).astype(np.float64)
        z = X[1 + ti, ki + 2] * np.conj(X[ti, ki + 2])
        dphi = np.angle(z) - 2 * np.pi * kb * H / N
        dphi = (dphi + np.pi) % (2 * np.pi) - np.pi
        fi = kb + dphi * N / (2 * np.pi * H)
        keep = np.abs(fi - kb) < 0.5  # a sinusoid's frequency lies inside its own bin
        ti, ki, fi = ti[keep], ki[keep], fi[keep]
        if ti.size < MIN_POINTS:
            return None
        w = np.sqrt(m[ti, ki]).astype(np.float64)
        cents = 1200.0 * np.log2(fi * (self.rate / N))
        F, B = m.shape
        n = ti.size
        idx = np.full((F, B + 2), -1, dtype=np.int64)
        idx[ti, ki + 1] = np.arange(n)
        parent = np.arange(n)
        unset = ti > 0
        prev_t = np.maximum(ti - 1, 0)
        for o in (0, -1, 1):  # the same partial one frame earlier: same bin, then a neighbour
            cand = idx[prev_t, ki + 1 + o]
            ok = unset & (cand >= 0)
            ok[ok] &= np.abs(cents[ok] - cents[cand[ok]]) < LINK_CENTS
            parent[ok] = cand[ok]
            unset &= ~ok
        root = parent
        while True:  # pointer doubling: every peak to the first peak of its track
            nxt = root[root]
            if np.array_equal(nxt, root):
                break
            root = nxt
        counts = np.bincount(root, minlength=n)
        long_ = counts[root] >= MIN_TRACK
        if np.count_nonzero(long_) < MIN_POINTS:
            return None
        t = (ti[long_] + 1) * H / self.rate + N / (2 * self.rate)
        return t, cents[long_], root[long_], w[long_]


def coherent_fit(t: np.ndarray, c: np.ndarray, tid: np.ndarray, w: np.ndarray, grid: np.ndarray = GRID_HZ):
    """Weighted least-squares fit of one sinusoid per rate of ``grid`` to the cents ``c``
    (n,) at times ``t`` (s), each track ``tid`` with a free offset (order 0), and with a free
    offset and slope (order 1); weights ``w`` (n,).

    Returns, per order, (drss (G,), rss0, amplitude (G,) cents, regressor energy (G,),
    tracks), or None when too few points."""
    if c.size < MIN_POINTS:
        return None
    order = np.argsort(tid, kind="stable")
    t, c, tid, w = t[order], c[order], tid[order], w[order]
    starts = np.flatnonzero(np.concatenate([[True], tid[1:] != tid[:-1]]))
    w = w / w.mean()
    wsum = np.add.reduceat(w, starts)
    grp = np.repeat(np.arange(starts.size), np.diff(np.append(starts, c.size)))

    tmean = np.add.reduceat(w * t, starts) / wsum
    tc = t - tmean[grp]
    stt = np.maximum(np.add.reduceat(w * tc * tc, starts), 1e-12)

    def centred(v: np.ndarray) -> np.ndarray:  # (n,) or (n, G): minus the weighted track means
        if v.ndim == 1:
            return v - (np.add.reduceat(w * v, starts) / wsum)[grp]
        return v - (np.add.reduceat(w[:, None] * v, starts, axis=0) / wsum[:, None])[grp]

    def detrended(v: np.ndarray) -> np.ndarray:  # centred v minus its weighted slope per track
        if v.ndim == 1:
            return v - tc * (np.add.reduceat(w * tc * v, starts) / stt)[grp]
        return v - tc[:, None] * (np.add.reduceat((w * tc)[:, None] * v, starts, axis=0) / stt[:, None])[grp]

    sw = np.sqrt(w)
    ph = (2 * np.pi * t)[:, None] * grid[None, :]
    r = centred(c)
    C = centred(np.cos(ph))
    S = centred(np.sin(ph))
    out = []
    for order in (0, 1):
        if order == 1:
            r, C, S = detrended(r), detrended(C), detrended(S)
        out.append(_sine_fit(r, C, S, sw) + (int(starts.size),))
    return out


def _sine_fit(r: np.ndarray, C: np.ndarray, S: np.ndarray, sw: np.ndarray):
    """Least squares of the residuals ``r`` (n,) on the residualised regressors ``C``, ``S``
    (n, G), rows weighted by ``sw`` squared, ``r`` clipped at ``CLIP_SCALES`` robust scales:
    (explained variance (G,), residual variance, amplitude (G,), regressor energy (G,))."""
    scale = float(np.median(np.abs(r))) / 0.6745 + 1e-3
    r0 = np.clip(r, -CLIP_SCALES * scale, CLIP_SCALES * scale) * sw
    C = C * sw[:, None]
    S = S * sw[:, None]
    cc = np.einsum("ij,ij->j", C, C)
    ss = np.einsum("ij,ij->j", S, S)
    cs = np.einsum("ij,ij->j", C, S)
    hc = r0 @ C
    hs = r0 @ S
    det = cc * ss - cs * cs
    ok = det > 1e-9 * (cc * ss + 1e-30)
    safe = np.where(ok, det, 1.0)
    a = np.where(ok, (ss * hc - cs * hs) / safe, 0.0)
    b = np.where(ok, (cc * hs - cs * hc) / safe, 0.0)
    drss = np.maximum(a * hc + b * hs, 0.0)
    return drss, float(r0 @ r0), np.hypot(a, b), 0.5 * (cc + ss)
