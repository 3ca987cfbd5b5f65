"""ITU-R BS.1770-4 loudness and true peak, streamed over blocks, and normalisation.

:class:`LoudnessMeter` accumulates K-weighted energies in 100 ms sub-blocks, so
memory does not grow with file length, and gives the same integrated loudness as
pyloudnorm (whose filter design it reuses). :class:`TruePeakMeter` measures the
peak of a 4x oversampled signal. :class:`PeakLimiter` is a look-ahead limiter
applied, block by block with context, only when a gain would push the true peak
over the ceiling.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal
from scipy.ndimage import minimum_filter1d, uniform_filter1d

DEFAULT_TARGET_LUFS = -23.0
DEFAULT_TRUE_PEAK_DBTP = -1.0
ABSOLUTE_GATE_LUFS = -70.0
BLOCK_S, HOP_S = 0.4, 0.1
OVERSAMPLE = 4
# BS.1770 channel weights (L, R, C, Ls, Rs); further channels weigh 1.0.
_CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)


def _k_weighting(sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The two K-weighting stages (pyloudnorm's design) combined into one filter."""
    import pyloudnorm

    meter = pyloudnorm.Meter(sample_rate)
    b, a = np.array([1.0]), np.array([1.0])
    for stage in meter._filters.values():
        b = np.convolve(b, np.asarray(stage.b, dtype=np.float64) * stage.passband_gain)
        a = np.convolve(a, np.asarray(stage.a, dtype=np.float64))
    return b, a


def _as_block(block: np.ndarray) -> np.ndarray:
    """float64 ``(channels, n)`` view of a block (a 1-D block is one channel)."""
    block = np.asarray(block, dtype=np.float64)
    return block[None] if block.ndim == 1 else block


def _channel_weights(channels: int) -> np.ndarray:
    return np.array([_CHANNEL_WEIGHTS[i] if i < len(_CHANNEL_WEIGHTS) else 1.0 for i in range(channels)])


class LoudnessMeter:
    """Streaming integrated loudness (LUFS) of ``(channels, n)`` float blocks."""

    def __init__(self, sample_rate: int, channels: int):
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self._b, self._a = _k_weighting(self.sample_rate)
        self._zi = np.zeros((self.channels, max(len(self._a), len(self._b)) - 1))
        self._n = 0  # samples seen
        self._k = 1  # index of the next sub-block boundary to record
        self._acc = np.zeros(self.channels)  # energy since the last recorded boundary
        # cumulative energy at each 100 ms boundary, rows [0, _count) of a buffer that doubles
        # when full (one row per boundary: 16 bytes a second of stereo, not a Python object each)
        self._buf = np.zeros((1024, self.channels))
        self._count = 1

    @property
    def _sums(self) -> np.ndarray:
        return self._buf[:self._count]

    def _record(self, row: np.ndarray) -> None:
        if self._count == self._buf.shape[0]:
            self._buf = np.concatenate([self._buf, np.zeros_like(self._buf)])
        self._buf[self._count] = row
        self._count += 1

    def _boundary(self, k: int) -> int:
        # pyloudnorm's bounds: int(T_g * (j * step) * rate) with T_g=0.4, step=0.25
        return int(BLOCK_S * (k * 0.25) * self.sample_rate)

    def update(self, block: np.ndarray) -> None:
        block = _as_block(block)
        if block.shape[1] == 0:
            return
        y, self._zi = signal.lfilter(self._b, self._a, block, axis=1, zi=self._zi)
        y *= y
        start, end = self._n, self._n + block.shape[1]
        running = self._buf[self._count - 1] + self._acc  # cumulative energy at the block's start
        pos = 0
        while self._boundary(self._k) <= end:  # record the cumulative energy at each boundary
            b = self._boundary(self._k) - start
            if b > pos:
                running = running + y[:, pos:b].sum(axis=1)
                pos = b
            self._record(running)
            self._k += 1
        self._acc = running + y[:, pos:].sum(axis=1) - self._buf[self._count - 1]
        self._n = end

    @property
    def duration_s(self) -> float:
        return self._n / self.sample_rate

    def block_energies(self) -> np.ndarray:
        """Mean-square K-weighted energy per 400 ms block, shape ``(channels, blocks)``."""
        total_s = self._n / self.sample_rate
        if total_s < BLOCK_S:
            return np.zeros((self.channels, 0))
        n_blocks = int(np.round((total_s - BLOCK_S) / (BLOCK_S * 0.25))) + 1
        sums = np.concatenate([self._sums, (self._sums[-1] + self._acc)[None]])  # (boundaries+1, C)
        bounds = np.array([self._boundary(k) for k in range(self._count)] + [self._n])
        lo = np.array([self._boundary(j) for j in range(n_blocks)])
        hi = np.minimum(np.array([self._boundary(j + 4) for j in range(n_blocks)]), self._n)
        cum_lo = np.array([np.interp(lo, bounds, sums[:, c]) for c in range(self.channels)])
        cum_hi = np.array([np.interp(hi, bounds, sums[:, c]) for c in range(self.channels)])
        return (cum_hi - cum_lo) / (BLOCK_S * self.sample_rate)

    def _short_term(self) -> np.ndarray:
        """Short-term (3 s) K-weighted power every 100 ms, weighted over channels."""
        sums = np.concatenate([self._sums, (self._sums[-1] + self._acc)[None]])
        g = _channel_weights(self.channels)
        span = 30  # sub-blocks of 100 ms
        if sums.shape[0] - 1 < span:
            return np.zeros(0)
        diff = sums[span:] - sums[:-span]
        return (diff * g[None]).sum(axis=1) / (3.0 * self.sample_rate)

    def stats(self, gain_db: float = 0.0) -> dict[str, float]:
        """Integrated loudness, loudness range (EBU Tech 3342), max momentary and short-term.

        ``gain_db`` gives the figures of the signal scaled by that gain, exactly: every block
        energy scales by the same factor, so a linear gain needs no second measurement.
        """
        scale = 10 ** (gain_db / 10)
        z = self.block_energies() * scale
        g = _channel_weights(self.channels)[:, None]
        with np.errstate(divide="ignore"):
            momentary = -0.691 + 10 * np.log10((g * z).sum(axis=0)) if z.shape[1] else np.zeros(0)
            short = -0.691 + 10 * np.log10(self._short_term() * scale)
        lra = math.nan
        st = short[short >= ABSOLUTE_GATE_LUFS]
        if st.size:
            rel = -0.691 + 10 * np.log10(np.mean(10 ** ((st + 0.691) / 10))) - 20.0
            st = st[st >= rel]
            if st.size:
                lo, hi = np.percentile(st, [10, 95])
                lra = float(hi - lo)
        return {
            "integrated_lufs": self.integrated(gain_db),
            "loudness_range_lu": lra,
            "max_momentary_lufs": float(momentary.max()) if momentary.size else -math.inf,
            "max_short_term_lufs": float(short.max()) if short.size else -math.inf,
        }

    def integrated(self, gain_db: float = 0.0) -> float:
        """Gated integrated loudness in LUFS (of the signal scaled by ``gain_db``); ``-inf`` if
        silent or shorter than 400 ms."""
        z = self.block_energies() * 10 ** (gain_db / 10)
        if z.shape[1] == 0:
            return -math.inf
        g = _channel_weights(self.channels)[:, None]
        with np.errstate(divide="ignore"):
            block_lufs = -0.691 + 10 * np.log10((g * z).sum(axis=0))
        above_abs = block_lufs >= ABSOLUTE_GATE_LUFS
        if not above_abs.any():
            return -math.inf
        rel_gate = -0.691 + 10 * np.log10((g[:, 0] * z[:, above_abs].mean(axis=1)).sum()) - 10.0
        gated = (block_lufs > rel_gate) & above_abs
        if not gated.any():
            return -math.inf
        return float(-0.691 + 10 * np.log10((g[:, 0] * z[:, gated].mean(axis=1)).sum()))


def _oversampling_filter() -> np.ndarray:
    # 4x interpolation low-pass of odd length: a Nyquist filter (every 4th tap from the
    # centre is zero), so phase 0 reproduces the original samples exactly.
    return signal.firwin(49, 1.0 / OVERSAMPLE, window=("kaiser", 6.0)) * OVERSAMPLE


_OS_FILTER = _oversampling_filter()
_OS_DELAY = (len(_OS_FILTER) - 1) // 2  # in oversampled samples (24 = 6 input samples)
_OS_HISTORY = (len(_OS_FILTER) - 1) // OVERSAMPLE  # input samples of left context (12)
# Largest L1 norm of one polyphase branch: bounds |oversampled| / |sample peak|.
_OS_GAIN_BOUND = max(np.abs(_OS_FILTER[p::OVERSAMPLE]).sum() for p in range(OVERSAMPLE))


_OS_PHASES = [_OS_FILTER[p::OVERSAMPLE].copy() for p in range(OVERSAMPLE)]
# Phase 0 of a Nyquist filter has one tap (the others are rounding noise, ~1e-17): it is a
# scaled, delayed copy of the input, computed without a convolution.
_OS_PHASES[0][np.abs(_OS_PHASES[0]) < 1e-12] = 0.0
_PHASE0_TAP = int(np.flatnonzero(_OS_PHASES[0])[0]) if np.count_nonzero(_OS_PHASES[0]) == 1 else None


def _phase_outputs(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Oversampled values as polyphase convolutions: ``out[c, m - start, p]`` is the output
    ``4 m + p`` of upsampling row ``c`` of ``x``, for ``start <= m < stop``."""
    out = np.empty((x.shape[0], max(0, stop - start), OVERSAMPLE))
    k = _PHASE0_TAP
    fast0 = k is not None and start - k >= 0 and stop - k <= x.shape[1]
    for c in range(x.shape[0]):
        for p, h in enumerate(_OS_PHASES):
            if p == 0 and fast0:
                out[c, :, 0] = h[k] * x[c, start - k:stop - k]
            else:
                out[c, :, p] = np.convolve(x[c], h)[start:stop]
    return out


# Phases 1-3 (and phase 0 unless it is a single tap, handled as a scaled copy of the input)
# as float32 taps over windows ``x[m - 12 .. m]``, applied as shifted multiply-adds. This is
# several times faster than a float64 convolution per phase, and unlike a BLAS product it
# spawns no threads, which spin badly when other processes share the cores.
_OS_TAPS = _OS_HISTORY + 1
_TAP_PHASES = [[(i, np.float32(w)) for i, w in enumerate(np.pad(_OS_PHASES[p], (0, _OS_TAPS - len(_OS_PHASES[p])))[::-1])
                if w != 0.0] for p in range(OVERSAMPLE) if not (p == 0 and _PHASE0_TAP is not None)]
_STRETCH = 1 << 14


def _max_abs_oversampled(x: np.ndarray) -> float:
    """Largest ``|.|`` of the oversampled outputs ``4 m + p`` for ``_OS_HISTORY <= m < n``
    (those whose whole filter support lies inside ``x``, shape ``(channels, n)``)."""
    n = x.shape[1]
    peak = 0.0
    if _PHASE0_TAP is not None:
        k = _PHASE0_TAP
        peak = abs(float(_OS_PHASES[0][k])) * float(np.abs(x[:, _OS_HISTORY - k:n - k]).max(initial=0.0))
    xf = x.astype(np.float32)
    for a in range(0, n - _OS_HISTORY, _STRETCH):
        s = xf[:, a:min(n, a + _STRETCH + _OS_HISTORY)]
        m = s.shape[1] - _OS_HISTORY
        for taps in _TAP_PHASES:
            (i0, w0), rest = taps[0], taps[1:]
            acc = w0 * s[:, i0:i0 + m]
            for i, w in rest:
                acc += w * s[:, i:i + m]
            peak = max(peak, float(np.abs(acc).max()))
    return peak


def oversampled_peaks(x: np.ndarray) -> np.ndarray:
    """Per input sample, the largest ``|.|`` among its 4 oversampled phases (any channel).

    ``x`` is ``(channels, n)``; values within 6 samples of either edge see zeros
    beyond the edge, so callers pass enough context and crop.
    """
    x = x.astype(np.float64)
    delay = _OS_DELAY // OVERSAMPLE  # 6 input samples
    return np.abs(_phase_outputs(x, delay, delay + x.shape[1])).max(axis=(0, 2))


class TruePeakMeter:
    """Streaming true peak (dBTP) of the 4x-oversampled signal.

    Successive blocks tile the oversampled signal exactly (12 samples of history
    give each output its full filter support); the end is flushed with zeros.
    Blocks that cannot raise the maximum (sample peak times the filter's gain bound
    below it) are skipped, which keeps long files fast.
    """

    def __init__(self, channels: int):
        self.channels = channels
        self._history = np.zeros((channels, _OS_HISTORY))
        self._peak = 0.0
        self.sample_peak = 0.0

    def _valid_peak(self, ext: np.ndarray) -> float:
        # outputs 4m+p for m in [history, len): each has its full filter support inside ext
        if ext.shape[1] <= _OS_HISTORY:
            return 0.0
        return _max_abs_oversampled(ext)

    SUB_BLOCK = 1 << 14

    def update(self, block: np.ndarray) -> None:
        block = _as_block(block)
        if block.shape[1] == 0:
            return
        ext = np.concatenate([self._history, block], axis=1)
        self.sample_peak = max(self.sample_peak, float(np.abs(block).max()))
        # Sub-blocks of outputs [a, b) need ext[a - history : b]; visit the loudest first and
        # skip those whose local sample peak times the filter's gain bound cannot beat the max.
        h, n, size = _OS_HISTORY, ext.shape[1], self.SUB_BLOCK
        starts = list(range(h, n, size))
        bounds = [float(np.abs(ext[:, a - h:min(a + size, n)]).max()) * _OS_GAIN_BOUND for a in starts]
        for i in np.argsort(bounds)[::-1]:
            if bounds[i] <= self._peak:
                break
            a = starts[i]
            b = min(a + size, n)
            self._peak = max(self._peak, self._valid_peak(ext[:, a - h:b]))
        self._history = ext[:, -h:]

    @property
    def peak(self) -> float:
        """Linear true peak, including the filter tail after the last sample."""
        tail = np.concatenate([self._history, np.zeros_like(self._history)], axis=1)
        return max(self._peak, self._valid_peak(tail), self.sample_peak)

    @property
    def dbtp(self) -> float:
        p = self.peak
        return 20 * math.log10(p) if p > 0 else -math.inf


@dataclass(frozen=True)
class GainDecision:
    """What normalisation will do to a file, decided from its pass-1 measures."""

    gain_db: float
    limit: bool
    note: str = ""

    @property
    def gain(self) -> float:
        return 10 ** (self.gain_db / 20)


def decide_gain(loudness_lufs: float, true_peak_dbtp: float, target_lufs: float = DEFAULT_TARGET_LUFS,
                ceiling_dbtp: float = DEFAULT_TRUE_PEAK_DBTP) -> GainDecision:
    """Gain to reach ``target_lufs``; ``limit`` when that gain would exceed the ceiling.

    Silent and too-short signals (loudness ``-inf``) keep their level, with a note.
    """
    if not math.isfinite(loudness_lufs):
        return GainDecision(0.0, False, "silent or shorter than 400 ms: level kept")
    gain_db = target_lufs - loudness_lufs
    return GainDecision(gain_db, math.isfinite(true_peak_dbtp) and true_peak_dbtp + gain_db > ceiling_dbtp)


class PeakLimiter:
    """Look-ahead limiter that keeps the 4x-oversampled peak under ``ceiling_dbtp``.

    Non-causal and stateless: :meth:`gain_curve` needs :attr:`context` samples of
    signal on each side of the span it returns, which the caller supplies, so any
    block split gives the same result.
    """

    def __init__(self, sample_rate: int, ceiling_dbtp: float = DEFAULT_TRUE_PEAK_DBTP,
                 attack_ms: float = 5.0, hold_ms: float = 20.0, margin_db: float = 0.1,
                 iterations: int = 8):
        self.ceiling = 10 ** ((ceiling_dbtp - margin_db) / 20)
        self.attack = max(1, int(sample_rate * attack_ms / 1000))
        self.hold = max(1, int(sample_rate * hold_ms / 1000))
        self.iterations = iterations
        self.context = iterations * (self.hold + 2 * self.attack + _OS_HISTORY)

    def _smooth(self, need: np.ndarray) -> np.ndarray:
        held = minimum_filter1d(need, size=2 * (self.hold + self.attack) + 1, mode="nearest")
        return uniform_filter1d(held, size=2 * self.attack + 1, mode="nearest")

    def gain_curve(self, x: np.ndarray) -> np.ndarray:
        """Per-sample gain (<= 1) for ``x`` ``(channels, n)``, already scaled by the makeup gain.

        Each iteration measures the oversampled peak of the limited signal itself, so the
        inter-sample peaks that a gain ramp creates are caught too.
        """
        x = x.astype(np.float64)
        gain = np.ones(x.shape[1])
        for _ in range(self.iterations):
            peak = oversampled_peaks(x * gain[None])
            need = np.minimum(1.0, self.ceiling / np.maximum(peak, 1e-12))
            if need.min() >= 1.0:
                break
            gain = gain * self._smooth(need)
        return gain


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness of a whole ``(channels, samples)`` array, in LUFS."""
    meter = LoudnessMeter(sample_rate, audio.shape[0])
    meter.update(audio)
    return meter.integrated()


def true_peak_dbtp(audio: np.ndarray) -> float:
    """True peak of a whole ``(channels, samples)`` array, in dBTP."""
    meter = TruePeakMeter(audio.shape[0])
    meter.update(audio)
    return meter.dbtp


MAX_MAKEUP_DB = 6.0


def settle_gain(render_loudness, decision: GainDecision, target_lufs: float,
                tolerance_lu: float = 0.05, max_iterations: int = 4) -> tuple[float, str]:
    """Refine a limited gain so the limited output lands on the target.

    Limiting lowers loudness, so the gain is raised until ``render_loudness(gain_db)``
    (the loudness of the gained and limited signal) is within ``tolerance_lu``; the
    extra gain is capped at MAX_MAKEUP_DB so material is never crushed to hit a number.
    Returns ``(gain_db, note)``.
    """
    gain_db = decision.gain_db
    if not decision.limit:
        return gain_db, decision.note
    measured = render_loudness(gain_db)
    for _ in range(max_iterations):
        error = target_lufs - measured
        if abs(error) <= tolerance_lu or not math.isfinite(measured):
            break
        new_gain = min(gain_db + error, decision.gain_db + MAX_MAKEUP_DB)
        if new_gain <= gain_db + 1e-6 and error > 0:
            break
        gain_db = new_gain
        measured = render_loudness(gain_db)
    note = "limited to keep the true-peak ceiling"
    if abs(target_lufs - measured) > tolerance_lu:
        note += f"; loudness {measured:.1f} LUFS (target not reachable without more than {MAX_MAKEUP_DB:.0f} dB of limiting)"
    return gain_db, note


def normalize_loudness(audio: np.ndarray, sample_rate: int, target_lufs: float = DEFAULT_TARGET_LUFS,
                       ceiling_dbtp: float = DEFAULT_TRUE_PEAK_DBTP) -> tuple[np.ndarray, float, str]:
    """In-memory normalisation: gain to the target, limiting only if the ceiling needs it.

    Returns ``(normalised audio, gain_db, note)``.
    """
    x = audio.astype(np.float64)
    decision = decide_gain(integrated_loudness(x, sample_rate), true_peak_dbtp(x), target_lufs, ceiling_dbtp)
    limiter = PeakLimiter(sample_rate, ceiling_dbtp)

    def render(gain_db: float) -> np.ndarray:
        y = x * 10 ** (gain_db / 20)
        return y * limiter.gain_curve(y)[None] if decision.limit else y

    gain_db, note = settle_gain(lambda g: integrated_loudness(render(g), sample_rate), decision, target_lufs)
    return render(gain_db).astype(np.float32), gain_db, note
