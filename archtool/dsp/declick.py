"""Impulsive-noise removal (clicks and crackle): AR-residual detection and LSAR repair.

Detection (Godsill & Rayner 1998, ch. 5): on blocks of ``block`` samples an AR(p) model is
fitted to the signal; a click shows up as a burst in the prediction error, much larger
than the block's robust residual scale (1.4826 x median absolute residual). Flagged
samples are widened a little (a click excites ``p`` residual samples after it, and its
onset is smeared by a sample or two), then repaired by least-squares AR interpolation
(:func:`archtool.dsp.ar.ar_interpolate`). Two passes catch small clicks that a big one
masked in the first pass' model.

Stereo (groove walls): a click present on one channel only is repaired from the other
channel where that channel is clean and the two are coherent: the left channel is
modelled as ``g * right + d`` around the click, and only the small difference ``d`` is
interpolated by LSAR, which is far more accurate than interpolating the channel itself.

Block boundaries are fixed on an absolute sample grid (``offset``: index of the first
sample of ``x`` in the whole file), so processing a long file in overlapping chunks gives
the same result as processing it whole.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from archtool.dsp.ar import ar_estimate_frames, ar_interpolate, missing_runs

__all__ = ["ClickSettings", "Detection", "detect_clicks", "declick_channel", "declick"]


@dataclass(frozen=True)
class ClickSettings:
    """Detection and repair settings.

    Attributes:
        threshold: detection threshold in robust residual standard deviations.
        order: AR order at 44.1 kHz (scaled with the sample rate, 10..64).
        block_s: analysis block length in seconds.
        max_len_ms: longest run repaired; longer flagged runs are left alone (they are
            programme transients or gaps for inpainting, not clicks).
        sub_block: samples per sub-block of the local residual scale.
        periodic_boost: the threshold is multiplied by ``1 + periodic_boost * c`` where
            ``c`` is the residual's normalised pitch-lag correlation (voiced speech, tones).
        low_threshold: hysteresis threshold: a detected click extends over adjacent
            samples above this many robust standard deviations.
        short_ms, long_factor: runs longer than ``short_ms`` are kept only when their
            residual peaks at ``long_factor`` x the threshold or more.
        pre: samples added before each flagged run.
        post_ms: milliseconds added after each flagged run (smooth click tails are well
            predicted by the model, so their residual hides them).
        merge: runs closer than this many samples are joined.
        passes: detection/repair passes.
    """

    threshold: float = 10.0
    order: int = 32
    block_s: float = 0.046
    max_len_ms: float = 3.0
    pre: int = 2
    post_ms: float = 0.3
    merge: int = 6
    passes: int = 2
    sub_block: int = 256
    low_threshold: float = 3.5
    periodic_boost: float = 2.0
    short_ms: float = 1.5
    long_factor: float = 3.0

    def scaled(self, sample_rate: int) -> tuple[int, int]:
        """(AR order, block length in samples, a multiple of ``sub_block``) for ``sample_rate``."""
        order = int(np.clip(round(self.order * sample_rate / 44100), 10, 64))
        block = max(int(round(self.block_s * sample_rate)), 8 * order)
        block = max(1, int(round(block / self.sub_block))) * self.sub_block
        return order, block


def _frames(x: np.ndarray, starts: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``x[starts[f] : starts[f] + length]`` (zeros outside ``x``) and their in-range mask."""
    n = x.shape[0]
    idx = starts[:, None] + np.arange(length)[None, :]
    inside = (idx >= 0) & (idx < n)
    return np.where(inside, x[np.clip(idx, 0, max(n - 1, 0))], 0.0), inside


def _residual_frames(x: np.ndarray, a: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Prediction errors of ``x`` on ``[starts[f], starts[f] + length)`` with model ``a[f]``
    (zero where the model's history would reach before the start of ``x``). One grouped
    convolution (a filter per frame) does all frames at once."""
    import torch

    p = a.shape[1]
    fr, _ = _frames(x, starts - p, length + p)
    # conv1d correlates: the reversed prediction-error filter [-a_p .. -a_1, 1].
    b = np.concatenate([np.ones((a.shape[0], 1)), -a], axis=1)[:, ::-1].copy()
    res = torch.nn.functional.conv1d(torch.from_numpy(fr)[None], torch.from_numpy(b)[:, None, :],
                                     groups=a.shape[0])[0, :, :length].numpy()
    # No full history before sample p of x (and nothing outside x): no meaningful residual.
    idx = starts[:, None] + np.arange(length)[None, :]
    res[(idx < p) | (idx >= x.shape[0])] = 0.0
    return res


def _scale_frames(abs_res: np.ndarray, sig_rms: np.ndarray, sub: int) -> np.ndarray:
    """Per-sample robust residual scale for frames ``(F, L)`` with ``L`` a multiple of ``sub``:
    1.4826 x median |residual| per sub-block, the largest of each sub-block and its two
    neighbours (a quiet sub-block next to an onset must not make the onset look like a
    click), floored at -50 dB re the frame's signal RMS and at 1e-5 (-100 dBFS)."""
    F, L = abs_res.shape
    k = L // sub
    med = 1.4826 * np.median(abs_res.reshape(F, k, sub), axis=2)
    padded = np.pad(med, ((0, 0), (1, 1)))
    nb = np.maximum(med, np.maximum(padded[:, 2:], padded[:, :-2]))
    floor = np.maximum(3e-3 * sig_rms, 1e-5)[:, None]
    return np.repeat(np.maximum(nb, floor), sub, axis=1)


def _long_term(res_ext: np.ndarray, hist: int, tmin: int, tmax: int,
               min_corr: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Residual of a 3-tap pitch predictor fitted per frame, and the pitch correlation.

    Args:
        res_ext: AR residual frames ``(F, hist + L)`` whose first ``hist`` (> tmax + 1)
            samples are history.

    Returns:
        ``(res2 (F, L), corr (F,))``; frames without periodicity (normalised
        autocorrelation below ``min_corr`` at every lag ``tmin..tmax``) get their plain
        residual back and ``corr`` 0.
    """
    F, Lx = res_ext.shape
    nfft = 1 << int(np.ceil(np.log2(2 * Lx)))
    R = np.fft.rfft(res_ext, nfft, axis=1)
    ac = np.fft.irfft(R * np.conj(R), nfft, axis=1)[:, : tmax + 2]
    lag = tmin + np.argmax(ac[:, tmin : tmax + 1], axis=1)
    rows = np.arange(F)
    corr = np.where(ac[:, 0] > 0, ac[rows, lag] / np.maximum(ac[:, 0], 1e-30), 0.0)

    def taps(first: int) -> np.ndarray:
        j = np.arange(first, Lx)[None, :] - lag[:, None]
        return np.stack([np.take_along_axis(res_ext, j + d, axis=1) for d in (1, 0, -1)], axis=2)

    X = taps(tmax + 2)  # least-squares taps over the frame (history included)
    yv = res_ext[:, tmax + 2 :]
    G = np.einsum("fmi,fmj->fij", X, X)
    G += (1e-9 * (np.trace(G, axis1=1, axis2=2) + 1e-20))[:, None, None] * np.eye(3)
    c = np.linalg.solve(G, np.einsum("fmi,fm->fi", X, yv)[..., None])[..., 0]
    pred = np.einsum("fmi,fi->fm", taps(hist), c)
    res2 = res_ext[:, hist:] - pred
    periodic = corr >= min_corr
    res2 = np.where(periodic[:, None], res2, res_ext[:, hist:])
    return res2, np.where(periodic, corr, 0.0)


@dataclass
class Detection:
    """Result of :func:`detect_clicks`: the mask and the block models (for the repair)."""

    mask: np.ndarray
    coeffs: np.ndarray
    block_starts: np.ndarray


def detect_clicks(x: np.ndarray, sample_rate: int, settings: ClickSettings = ClickSettings(),
                  offset: int = 0, exclude: np.ndarray | None = None) -> Detection:
    """Find samples corrupted by clicks in the 1-D signal ``x``.

    All blocks are processed at once (batched autocorrelation and Levinson-Durbin).

    Args:
        x: shape ``(n,)``.
        sample_rate: Hz.
        settings: detection settings.
        offset: absolute index of ``x[0]`` in the file (aligns the block grid).
        exclude: optional mask of samples not to trust for model estimation.

    Returns:
        :class:`Detection` with ``mask`` shape ``(n,)``, per-block AR ``coeffs`` ``(F, p)``
        and ``block_starts`` ``(F,)`` (the first may be negative).
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    order, block = settings.scaled(sample_rate)
    sub = settings.sub_block if block % settings.sub_block == 0 else block
    starts = np.arange(-(offset % block), n, block)
    half = block // 2
    tmin, tmax = int(sample_rate / 500), int(sample_rate / 60)
    max_len = int(round(settings.max_len_ms * 1e-3 * sample_rate))
    hist = tmax + 2
    wlen = block + 2 * half

    win, valid = _frames(x, starts - half, wlen)
    if exclude is not None:
        valid &= ~_frames(exclude.astype(np.float64), starts - half, wlen)[0].astype(bool)
    core, core_inside = _frames(x, starts, block)
    sig_rms = np.sqrt((core**2).sum(axis=1) / np.maximum(core_inside.sum(axis=1), 1))
    a, _ = ar_estimate_frames(win, order, valid=valid)
    res = _residual_frames(x, a, starts, block)
    scale = _scale_frames(np.abs(res), sig_rms, sub)
    # Robust model: refit ignoring candidate clicks (loose threshold, widened by the
    # longest click), so the model describes the programme and the whole click shows.
    loose = np.abs(res) > 0.5 * settings.threshold * scale
    if loose.any():
        cand = np.zeros((len(starts), wlen), dtype=bool)
        fi, si = np.nonzero(loose)
        for d in range(-settings.pre, max_len):
            cand[fi, np.clip(si + half + d, 0, wlen - 1)] = True
        keep_valid = valid & ~cand
        refit = loose.any(axis=1) & (keep_valid.sum(axis=1) >= 4 * order)
        if refit.any():
            a2, _ = ar_estimate_frames(win[refit], order, valid=keep_valid[refit])
            a[refit] = a2
            res[refit] = _residual_frames(x, a2, starts[refit], block)
            scale[refit] = _scale_frames(np.abs(res[refit]), sig_rms[refit], sub)
    flag = np.abs(res) > settings.threshold * scale
    low = np.abs(res) > settings.low_threshold * scale
    cands = flag.any(axis=1)
    if cands.any():
        # Periodic excitation (glottal pulses, bowed or reed tones) leaves pulses in the
        # AR residual. A 3-tap long-term predictor removes part of them (not clicks), and
        # the more periodic the block, the higher the threshold.
        res_ext = _residual_frames(x, a[cands], starts[cands] - hist, block + hist)
        res2, corr = _long_term(res_ext, hist, tmin, tmax)
        th = settings.threshold * (1.0 + settings.periodic_boost * corr)[:, None]
        scale2 = _scale_frames(np.abs(res2), sig_rms[cands], sub)
        flag[cands] &= (np.abs(res[cands]) > th * scale[cands]) & (np.abs(res2) > th * scale2)
    mask = _unframe(flag, starts, n)
    if not mask.any():
        return Detection(mask, a, starts)
    ratio = _unframe(np.abs(res) / (settings.threshold * scale), starts, n)
    low = _unframe(low, starts, n)
    # Hysteresis: a click found at the high threshold extends over the neighbouring
    # samples above the low one. Widen (onset smear before, tail after), join runs closer
    # than `merge`, keep groups that contain a high-threshold sample, drop over-long ones.
    out = np.zeros(n, dtype=bool)
    post = max(2, int(round(settings.post_ms * 1e-3 * sample_rate)))
    prev_stop = None
    for r0, r1 in missing_runs(low | mask):
        a0, a1 = max(0, r0 - settings.pre), min(n, r1 + post)
        if prev_stop is not None and a0 - prev_stop < settings.merge:
            a0 = prev_stop
        out[a0:a1] = True
        prev_stop = a1
    keep = np.zeros(n, dtype=bool)
    short = int(round(settings.short_ms * 1e-3 * sample_rate))
    for r0, r1 in missing_runs(out):
        if r1 - r0 > max_len or not mask[r0:r1].any():
            continue
        # Long events need stronger evidence: loud voiced onsets and plucks give long,
        # moderately large residual bursts; real long clicks give very large ones.
        if r1 - r0 > short and ratio[r0:r1].max() < settings.long_factor:
            continue
        keep[r0:r1] = True
    return Detection(keep, a, starts)


def _unframe(fr: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """Inverse of non-overlapping framing: ``(F, block)`` -> ``(n,)``."""
    lo = -int(starts[0])
    return fr.reshape(-1)[lo : lo + n].copy()


def lsar_blocks(x: np.ndarray, missing: np.ndarray, coeffs: np.ndarray, block_starts: np.ndarray,
                max_batch_m: int = 256) -> np.ndarray:
    """LSAR fill of ``missing`` with per-block models, many clusters solved at once.

    Same result as ``ar_interpolate(x, missing, coeffs=coeffs, block_starts=block_starts)``
    (clusters: runs closer than ``p`` joined; each uses the model of the block its first
    sample falls in): clusters away from the ends with at most ``max_batch_m`` missing
    samples are solved in batches of equal padded size (one ``numpy.linalg.solve`` per
    batch instead of one per cluster, which matters for dense crackle); the others go
    through :func:`archtool.dsp.ar.ar_interpolate`. Returns float64 ``(n,)``.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    p = coeffs.shape[1]
    runs = missing_runs(missing)
    if len(runs) == 0:
        return x.copy()
    # Clusters: runs separated by more than p samples start a new cluster.
    new = np.concatenate(([True], runs[1:, 0] - runs[:-1, 1] > p))
    cid = np.cumsum(new) - 1
    c_start = runs[new, 0]
    c_stop = np.zeros(int(cid[-1]) + 1, dtype=np.int64)
    np.maximum.at(c_stop, cid, runs[:, 1])
    pos_all = np.flatnonzero(missing)
    pc = np.searchsorted(c_start, pos_all, side="right") - 1  # cluster of each missing sample
    m_c = np.bincount(pc, minlength=c_start.shape[0])
    interior = (c_start >= p) & (c_stop - 1 < n - p) & (m_c <= max_batch_m)
    out = x.copy()
    out[missing] = 0.0
    # Per-cluster model and the autocorrelation of its prediction-error filter.
    f = np.clip(np.searchsorted(block_starts, c_start, side="right") - 1, 0, coeffs.shape[0] - 1)
    b = np.concatenate([np.ones((coeffs.shape[0], 1)), -coeffs], axis=1)
    rb_blocks = np.stack([np.correlate(row, row, mode="full")[p:] for row in b]) if len(b) else b
    rest = missing.copy()
    if interior.any():
        sel = interior[pc]
        pos = pos_all[sel]
        cl = pc[sel]
        rb = rb_blocks[f[cl]]  # (K, p + 1) per missing sample
        # rhs_i = -sum_d rb[|d|] x0[pos_i + d] over the known (zeroed-missing) neighbourhood.
        d = np.arange(-p, p + 1)
        win = out[pos[:, None] + d[None, :]]
        rhs = -(win * rb[:, np.abs(d)]).sum(axis=1)
        # Index of each missing sample within its cluster.
        first = np.searchsorted(cl, cl, side="left")
        k_in = np.arange(cl.shape[0]) - first
        ids = np.flatnonzero(interior)
        sizes = m_c[ids]
        for lo_m, hi_m in ((1, 8), (9, 32), (33, 96), (97, max_batch_m)):
            group = ids[(sizes >= lo_m) & (sizes <= hi_m)]
            if group.size == 0:
                continue
            G, M = group.size, int(m_c[group].max())
            gi = np.full(c_start.shape[0], -1)
            gi[group] = np.arange(G)
            in_g = gi[cl] >= 0
            g_of = gi[cl[in_g]]
            kk = k_in[in_g]
            # Padding positions: distinct and far (> p) from each other and from the signal.
            P = np.broadcast_to(-10 * (p + 1) * (np.arange(M) + 1), (G, M)).copy()
            P[g_of, kk] = pos[in_g]
            R = np.zeros((G, M))
            R[g_of, kk] = rhs[in_g]
            rbg = rb_blocks[f[group]]  # (G, p + 1)
            dist = np.abs(P[:, :, None] - P[:, None, :])
            A = np.where(dist <= p, np.take_along_axis(rbg[:, None, :].repeat(M, 1), np.minimum(dist, p), axis=2), 0.0)
            valid = np.zeros((G, M), dtype=bool)
            valid[g_of, kk] = True
            diag = np.arange(M)
            A[:, diag, diag] = np.where(valid, A[:, diag, diag] + 1e-9 * (rbg[:, :1] + 1e-12), 1.0)
            sol = np.linalg.solve(A, R[..., None])[..., 0]
            out[pos[in_g]] = sol[g_of, kk]
        rest[pos] = False
    if rest.any():
        filled = ar_interpolate(out, rest, coeffs=coeffs, block_starts=block_starts)
        out[rest] = filled[rest]
    return out


def declick_channel(x: np.ndarray, sample_rate: int, settings: ClickSettings = ClickSettings(),
                    offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Detect and repair clicks in one channel.

    Returns:
        ``(repaired, mask)``: float64 array shaped like ``x`` and the union of repaired samples.
    """
    y = np.asarray(x, dtype=np.float64).copy()
    total = np.zeros(y.shape[0], dtype=bool)
    for _ in range(max(1, settings.passes)):
        det = detect_clicks(y, sample_rate, settings, offset, exclude=total if total.any() else None)
        m = det.mask & ~total
        if not m.any():
            break
        y = lsar_blocks(y, m, det.coeffs, det.block_starts)
        total |= m
    return y, total


def _cross_fill(xc: np.ndarray, xo: np.ndarray, mc: np.ndarray, mo: np.ndarray, yc: np.ndarray,
                order: int, ctx: int, min_coherence: float = 0.7) -> np.ndarray:
    """Re-fill one-sided clicks of channel c from channel o where that is better.

    ``xc``/``xo``: channels (o already repaired), ``mc``/``mo``: their click masks,
    ``yc``: channel c after plain LSAR. Returns the improved channel c.
    """
    out = yc.copy()
    n = xc.shape[0]
    runs = missing_runs(mc)
    for r0, r1 in runs:
        if mo[r0:r1].any():
            continue  # both walls damaged here: keep the single-channel repair
        lo, hi = max(0, r0 - ctx), min(n, r1 + ctx)
        clean = ~(mc[lo:hi] | mo[lo:hi])
        if clean.sum() < 4 * order:
            continue
        c, o = xc[lo:hi][clean], xo[lo:hi][clean]
        oo = float(np.dot(o, o))
        cc = float(np.dot(c, c))
        if oo <= 0 or cc <= 0:
            continue
        g = float(np.dot(c, o)) / oo
        coh = g * g * oo / cc  # fraction of c's energy explained by g*o
        if coh < min_coherence:
            continue
        d = yc[lo:hi] - g * xo[lo:hi]
        miss = mc[lo:hi].copy()
        miss[: r0 - lo] = False
        miss[r1 - lo :] = False
        dfill = ar_interpolate(d, miss, order)
        out[r0:r1] = g * xo[r0:r1] + dfill[r0 - lo : r1 - lo]
    return out


def declick(audio: np.ndarray, sample_rate: int, settings: ClickSettings = ClickSettings(),
            offset: int = 0, stereo_link: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Declick ``audio`` of shape ``(channels, n)``.

    Returns:
        ``(repaired (channels, n) float64, masks (channels, n) bool)``.
    """
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 2:
        raise ValueError(f"declick expects (channels, samples), got shape {audio.shape}")
    outs, masks = [], []
    for ch in audio:
        y, m = declick_channel(ch, sample_rate, settings, offset)
        outs.append(y)
        masks.append(m)
    out = np.stack(outs)
    mask = np.stack(masks)
    if stereo_link and audio.shape[0] == 2 and mask.any():
        order, block = settings.scaled(sample_rate)
        fixed = out.copy()
        for c, o in ((0, 1), (1, 0)):
            if mask[c].any():
                fixed[c] = _cross_fill(audio[c], out[o], mask[c], mask[o], out[c], order, block // 2)
        out = fixed
    return out, mask
