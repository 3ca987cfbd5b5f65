"""Streamed feature extraction: one pass over a file, bounded memory, shared by all detectors.

:class:`FeatureAccumulator` takes float32 ``(channels, n)`` blocks of any size (e.g. from
``archtool.audio.io.BlockReader``), processes them in chunks of ``chunk_s`` seconds, and
keeps only compact summaries: per-frame scalars (a few floats per STFT frame and per 5 ms
envelope block), averaged spectra, a noise-floor spectrum, impulsive events and per-channel
statistics, never the samples. Memory is bounded (archtool.analyze._bounded): the per-frame
series and events are kept whole up to ``HISTORY_S`` (30 minutes), then as a uniform sample
(whole segments of the series, every n-th event), while what must cover every sample (the
gap detector's quiet runs, level extremes, clipping and silence runs, histograms, averaged
spectra) is kept exactly in fixed-size or event-sized form. Files up to ``HISTORY_S`` are
analysed exactly.

Per chunk, the mono mix goes through one ~40 ms STFT at the full rate (levels, bands, noise
floor, and the AR model of the click detector), and through one anti-alias filter down to
~8 kHz that feeds the wow pitch tracker (0.25 s STFT), the coherent-FM fit of the partial
tracks (archtool.analyze.wow_fm, 0.128 s frames) and a second decimation to ~1 kHz for hum,
rumble and DC.

:meth:`FeatureAccumulator.finish` returns a :class:`Features`, which the detectors
(one module per defect kind) read. All spectra use a periodic Hann window
(``scipy.signal.get_window("hann", n_fft)``) and an unnormalised ``numpy.fft.rfft``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sfft
from scipy import signal

from archtool.analyze._bounded import EventStore, LevelRecords, LowRuns, SampledRows, SegmentStore
from archtool.analyze.wow_fm import FMAccumulator, FMSummary

# Analysis parameters (derived from the sample rate in FeatureAccumulator.__init__).
CHUNK_S = 10.0
ENV_BLOCK_S = 0.005          # gap envelope resolution
MID_RATE_TARGET = 8000.0     # first decimation (Hz): pitch tracking for wow, then hum/rumble
LOW_RATE_TARGET = 1000.0     # decimated rate for hum/rumble (Hz)
LOW_CUTOFF_HZ = 420.0        # anti-alias cutoff before decimation
LOW_NFFT = 1 << 15           # fixed hum/rumble frequency grid (~0.03 Hz bins at 1 kHz)
HUM_SEG = 1024               # segment length (low-rate samples, ~1 s) for line stationarity
HUM_SEG_BINS = 430           # keep bins up to ~420 Hz
HUM_SEG_LINE_DB = 6.0        # a line in a segment: this far over the segment's +-4 Hz median
NOISE_PERCENTILE = 10.0      # percentile of time-smoothed frame power per bin
NOISE_SMOOTH_FRAMES = 5
LPC_ORDER = 20
CLICK_SCALE_BLOCK = 64       # samples per residual-scale block
CLICK_THRESHOLD = 6.0        # residual outlier threshold, in local robust scale units
SILENCE_LEVEL = 1e-6         # |x| at or below this is digital silence
MIN_SILENCE_RUN_S = 0.001    # shorter runs are not recorded
WOW_BAND_HZ = (100.0, 3400.0)  # partials tracked for wow (at the mid rate)
WOW_WINDOW_S = 0.25          # pitch-tracking STFT window (fine frequency resolution)
WOW_HOP_DIV = 4              # hop = window / 4 (~60 ms)
WOW_LAGS = (1, 4)            # frames between the two instantaneous frequencies compared
WOW_PEAK_REL = 1e-3          # partials within 30 dB of the frame's strongest
BANDS_HZ = ((0, 300), (300, 1000), (1000, 4000), (4000, 8000), (8000, 1e9))
DECAY_BANDS = 12             # log-spaced bands, 150 Hz .. min(8 kHz, 0.45 x rate), for decay rates
DECAY_WINDOW_S = 0.1         # least-squares slope of each band's level over this span
DECAY_GATE_DB = 20.0         # slopes counted only from levels this far above the band's chunk floor
SLOPE_EDGES = np.arange(-1500.0, 1500.1, 10.0)  # decay-rate histogram bins (dB/s)
HISTORY_S = 1800.0           # per-frame series kept whole up to this duration (then sampled segments)
GAP_CEILING_DBFS = -60.0     # envelope runs below this are kept for the gap detector
EVENTS_PER_S = 100.0         # residual events kept exactly for HISTORY_S at this rate (then sampled)
ZERO_RUNS_MAX = 65536        # digital-silence runs recorded (later ones are counted only)


def _noise_bias(frames: int) -> float:
    """Ratio of the noise estimator to the true mean power, for white Gaussian noise.

    The estimator is the ``NOISE_PERCENTILE``-th order statistic, per bin, of the
    periodogram averaged over ``NOISE_SMOOTH_FRAMES`` 50 %-overlapping Hann frames, over
    ``frames`` frames. Measured by simulation with a fixed generator (tests check the
    SNR estimate on noise of known level).
    """
    rng = np.random.default_rng(12345)
    n_fft, hop = 512, 256
    reps = max(1, 6000 // max(frames, 1))
    x = rng.standard_normal(hop * (frames * reps + 1) + n_fft)
    win = signal.get_window("hann", n_fft)
    fr = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop][: frames * reps + 1]
    p = np.abs(np.fft.rfft(fr * win, axis=1))[:, 5:-5] ** 2
    ratios = []
    for i in range(reps):
        seg = p[i * frames: (i + 1) * frames]
        ps = _smooth_frames(seg, NOISE_SMOOTH_FRAMES)
        kth = int(round(NOISE_PERCENTILE / 100.0 * (ps.shape[0] - 1)))
        ratios.append(np.partition(ps, kth, axis=0)[kth])
    return float(np.median(np.concatenate(ratios)) / np.mean(p))


def _smooth_frames(p: np.ndarray, k: int) -> np.ndarray:
    """Moving average over ``k`` frames (axis 0), 'valid' part only."""
    if p.shape[0] < k:
        return p
    from scipy.ndimage import uniform_filter1d

    h = k // 2
    return uniform_filter1d(p, size=k, axis=0, mode="nearest")[h: p.shape[0] - (k - 1 - h)]


_NOISE_BIAS: dict[int, float] = {}


def noise_bias_k(frames: int) -> float:
    """Cached :func:`_noise_bias` for estimates over ``frames`` smoothed frames (bucketed)."""
    key = int(min(frames, 400) if frames < 64 else 64 * round(min(frames, 1024) / 64))
    if key not in _NOISE_BIAS:
        _NOISE_BIAS[key] = _noise_bias(max(key, 1) + NOISE_SMOOTH_FRAMES - 1)
    return _NOISE_BIAS[key]


@dataclass
class Features:
    """Compact summary of one file, shared by all detectors.

    Shapes: ``F`` STFT frames, ``K = n_fft // 2 + 1`` bins, ``E`` envelope blocks,
    ``C`` channels, ``B`` = len(BANDS_HZ).
    """

    sample_rate: int
    channels: int
    n_samples: int
    n_fft: int
    hop: int
    freqs: np.ndarray              # (K,) Hz
    mean_power: np.ndarray         # (K,) mean |rfft(w x)|^2 over non-silent frames
    noise_psd: np.ndarray          # (K,) bias-corrected noise power per bin, same scale
    frame_db: np.ndarray           # (F,) frame power dB re full-scale sine-free mean square
    band_db: np.ndarray            # (F, B) frame power per band, dB
    frame_peakiness: np.ndarray    # (F,) spectral flatness-like measure (dB)
    env_db: np.ndarray             # (E,) mean square per ENV_BLOCK_S block, dB
    env_hop_s: float               # seconds per env_db row
    env_levels: LevelRecords       # where the envelope first / last exceeds a level (exact)
    env_low_runs: list             # [(start, end, max dB, values or None)] envelope runs below
                                   # GAP_CEILING_DBFS, in env blocks of the whole file (exact)
    low_rate: float
    low_freqs: np.ndarray          # (LOW_NFFT//2+1,) Hz
    low_psd: np.ndarray            # (LOW_NFFT//2+1,) averaged periodogram of the decimated mix
    click_times_s: np.ndarray      # (M,) residual outlier events
    click_ratio: np.ndarray        # (M,) event peak / local residual scale
    click_width: np.ndarray        # (M,) outlier samples in the event
    click_isolation: np.ndarray    # (M,) event peak / largest residual 1.5-10 ms around it
    click_amplitude: np.ndarray    # (M,) residual peak / chunk RMS of the signal
    click_weight: int              # events each stored event stands for (1 unless a long file
                                   # filled the bounded event store: then a uniform sample)
    wow_rate: float                # frame rate of the pitch-drift tracks (Hz)
    wow_drift_cents: np.ndarray    # (W, len(WOW_LAGS)) weighted median pitch change of the
                                   # stable partials over each lag, cents (NaN: too few partials)
    wow_partials: np.ndarray       # (W,) partials matched at the shortest lag
    hum_seg_count: int             # ~1 s segments of the decimated mix
    hum_seg_line_count: np.ndarray  # (HUM_SEG_BINS,) segments in which a bin (or a neighbour)
                                   # stands >= HUM_SEG_LINE_DB over its +-4 Hz median
    residual_rms: float            # overall robust residual scale
    slope_hist: np.ndarray         # (len(SLOPE_EDGES)-1,) counts of band-level slopes (dB/s) over
                                   # DECAY_WINDOW_S, from levels >= DECAY_GATE_DB over the band floor
    slope_hist_hi: np.ndarray      # (same,) the subset starting >= 40 dB over the band floor
    slope_hist_lo: np.ndarray      # (same,) all windows starting >= 10 dB over the band floor
    mean: np.ndarray               # (C,) DC per channel
    mean_square: np.ndarray        # (C,)
    mono_mean_square: float
    peak_pos: np.ndarray           # (C,) max sample
    peak_neg: np.ndarray           # (C,) min sample
    clip_counts: np.ndarray        # (C, 2) samples at +peak / -peak in flat runs of >= 2
    clip_runs: np.ndarray          # (C, 2) number of flat runs at +peak / -peak
    near_peak: np.ndarray          # (C,) samples with |x| >= 0.95 x channel peak (from histogram)
    abs_hist: np.ndarray           # (C, H) histogram of |x| on [0, 2)
    zero_runs_s: list[tuple[float, float]]  # digital silence runs >= 1 ms (all channels), seconds
                                   # (the first ZERO_RUNS_MAX)
    loudness_lufs: float | None
    true_peak_dbtp: float | None
    chunk_noise: list[np.ndarray] = field(default_factory=list)
    series_exact: bool = True      # False when a long file's per-frame series (frame_db, band_db,
                                   # frame_peakiness, env_db, wow tracks) hold a
                                   # uniform sample of whole segments joined end to end
    wow_fm: FMSummary | None = None  # coherent FM of the partial tracks (archtool.analyze.wow_fm),
                                   # accumulated over the whole file (fixed size)
    mean_power_clear: np.ndarray | None = None  # (K,) as mean_power, over the live frames that
                                   # touch no digital-silence run (== mean_power without such runs)
    noise_psd_clear: np.ndarray | None = None   # (K,) as noise_psd, from those frames (None when
                                   # no frame is clear of them)

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    def noise_power(self) -> float:
        """Time-domain mean square of the estimated noise (from ``noise_psd``)."""
        return _spectrum_to_ms(self.noise_psd, self.n_fft)

    def band_mask(self, lo: float, hi: float) -> np.ndarray:
        return (self.freqs >= lo) & (self.freqs < hi)


def _bin_weights(k: int) -> np.ndarray:
    w = np.full(k, 2.0)
    w[0] = 1.0
    w[-1] = 1.0
    return w


_WIN_CACHE: dict[int, tuple[np.ndarray, float]] = {}


def hann(n_fft: int) -> tuple[np.ndarray, float]:
    """Periodic Hann window (float32) and its energy ``sum(w^2)``."""
    if n_fft not in _WIN_CACHE:
        w = signal.get_window("hann", n_fft).astype(np.float32)
        _WIN_CACHE[n_fft] = (w, float(np.sum(w.astype(np.float64) ** 2)))
    return _WIN_CACHE[n_fft]


def _spectrum_to_ms(psd: np.ndarray, n_fft: int) -> float:
    """Mean square of a stationary signal whose expected periodogram is ``psd``."""
    _, wss = hann(n_fft)
    return float(np.sum(_bin_weights(psd.shape[0]) * psd) / (n_fft * wss))


def analysis_n_fft(sample_rate: int) -> int:
    """STFT size: the power of two nearest 40 ms (2048 at 44.1/48 kHz, 512 at 16 kHz)."""
    return int(2 ** np.round(np.log2(sample_rate * 0.04)))


def _db(x, floor=1e-20):
    return 10.0 * np.log10(np.maximum(x, floor))


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of True runs in a boolean vector."""
    d = np.diff(np.concatenate([[0], mask.view(np.int8) if mask.dtype == bool else mask, [0]]).astype(np.int8))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)



def _levinson_batch(r: np.ndarray, p: int) -> np.ndarray:
    """Levinson-Durbin on many autocorrelation rows at once.

    ``r``: (B, p+1) autocorrelations. Returns predictor coefficients ``a`` (B, p) with
    x[n] ~ sum_k a[k-1] x[n-k]. Rows with non-positive energy give zeros.
    """
    B = r.shape[0]
    a = np.zeros((B, p))
    err = r[:, 0].copy()
    ok = err > 0
    err[~ok] = 1.0
    for i in range(p):
        acc = r[:, i + 1] - np.einsum("bj,bj->b", a[:, :i], r[:, i:0:-1]) if i else r[:, 1].copy()
        k = acc / err
        k = np.clip(k, -0.9999, 0.9999)
        if i:
            a[:, :i] = a[:, :i] - k[:, None] * a[:, i - 1::-1]
        a[:, i] = k
        err = err * (1.0 - k * k)
    a[~ok] = 0.0
    return a


def _blockwise_residual(x: np.ndarray, a: np.ndarray, L: int, p: int, n: int) -> np.ndarray:
    """Prediction error of ``x[p:p+n]`` with coefficients ``a[b]`` for samples of block b."""
    nb = a.shape[0]
    xp = np.pad(x, (0, nb * L + p - x.shape[0])) if x.shape[0] < nb * L + p else x
    xp = xp.astype(np.float32, copy=False)
    # weights for x[n-p..n]
    coef = np.concatenate([-a[:, ::-1], np.ones((nb, 1))], axis=1).astype(np.float32)
    # e[b, t] = sum_j coef[b, j] x[b*L + t + j]: one multiply-add per lag over (nb, L) views
    # of x (no (samples x lags) copy); x index p+t is the current sample. float32: the
    # residual only has to be compared with a threshold of several local scales
    e = np.zeros((nb, L), dtype=np.float32)
    tmp = np.empty((nb, L), dtype=np.float32)
    for j in range(p + 1):
        np.multiply(coef[:, j:j + 1], xp[j: j + nb * L].reshape(nb, L), out=tmp)
        e += tmp
    return e.reshape(-1)[:n]


class FeatureAccumulator:
    """Accumulate :class:`Features` over ``(channels, n)`` float32 blocks.

    Args:
        sample_rate: Hz.
        channels: number of channels of every block.
        chunk_s: processing chunk length in seconds (memory bound ~ chunk x channels).
        loudness: also run the BS.1770 loudness and true-peak meters.
        history_s: duration for which per-frame series, residual events (at up to
            ``EVENTS_PER_S``) and per-chunk estimates are all kept. Past it the stores keep
            a uniform sample (series: whole segments of history_s / 8; events and chunk
            estimates: every other one, then every 4th ...), so memory stays bounded
            whatever the duration; files shorter than this are analysed exactly.
    """

    def __init__(self, sample_rate: int, channels: int, *, chunk_s: float = CHUNK_S,
                 loudness: bool = True, history_s: float = HISTORY_S):
        self.sr = int(sample_rate)
        self.channels = int(channels)
        self.n_fft = analysis_n_fft(self.sr)
        self.hop = self.n_fft // 2
        self.chunk = max(self.hop, int(round(chunk_s * self.sr / self.hop)) * self.hop)
        self.win, self.wss = hann(self.n_fft)
        self.freqs = np.fft.rfftfreq(self.n_fft, 1.0 / self.sr)
        self.bin_w = _bin_weights(self.freqs.size)
        self.bin_w32 = self.bin_w.astype(np.float32)
        self.flat_sel = (self.freqs > 100) & (self.freqs < 0.45 * self.sr)
        k = np.arange(self.freqs.size)
        self.cos_lags = (self.bin_w[:, None] * np.cos(2 * np.pi * k[:, None] * np.arange(LPC_ORDER + 1)[None, :]
                                                      / self.n_fft)) / self.n_fft
        self.band_matrix = np.stack([((self.freqs >= lo) & (self.freqs < hi)) * self.bin_w
                                     for lo, hi in BANDS_HZ], axis=1).astype(np.float32)
        self.env_block = max(1, int(round(ENV_BLOCK_S * self.sr)))
        # decay rates: level of DECAY_BANDS log-spaced bands, slope over DECAY_WINDOW_S
        top = min(8000.0, 0.45 * self.sr)
        edges = np.geomspace(150.0, top, DECAY_BANDS + 1)
        self.decay_matrix = np.stack([((self.freqs >= lo) & (self.freqs < hi)) * self.bin_w
                                      for lo, hi in zip(edges[:-1], edges[1:])], axis=1).astype(np.float32)
        W = max(3, int(round(DECAY_WINDOW_S * self.sr / self.hop)))
        t = (np.arange(W) - (W - 1) / 2.0) * self.hop / self.sr
        self.slope_kernel = (t / np.sum(t * t)).astype(np.float32)  # dB per frame window -> dB/s
        self.slope_hist = np.zeros(SLOPE_EDGES.size - 1, dtype=np.int64)
        self.slope_hist_hi = np.zeros(SLOPE_EDGES.size - 1, dtype=np.int64)
        self.slope_hist_lo = np.zeros(SLOPE_EDGES.size - 1, dtype=np.int64)
        self.decay_tail: np.ndarray | None = None  # last W-1 frames of band levels (continuity)
        # decimation: full rate -> ~8 kHz (pitch tracking) -> ~1 kHz (hum/rumble)
        self.mid_dec = max(1, int(self.sr // MID_RATE_TARGET))
        self.mid_rate = self.sr / self.mid_dec
        self.mid_sos = signal.butter(8, 0.4 * self.mid_rate, fs=self.sr, output="sos") if self.mid_dec > 1 else None
        self.mid_zi = None if self.mid_sos is None else np.zeros((self.mid_sos.shape[0], 2))
        self.mid_phase = 0
        self.dec = max(1, int(self.mid_rate // LOW_RATE_TARGET))
        self.low_rate = self.mid_rate / self.dec
        self.low_sos = signal.butter(8, min(LOW_CUTOFF_HZ, 0.45 * self.low_rate), fs=self.mid_rate, output="sos")
        self.low_zi = np.zeros((self.low_sos.shape[0], 2))
        self.low_phase = 0
        # pitch tracking for wow, on the mid-rate signal
        self.wow_nfft = int(2 ** np.round(np.log2(WOW_WINDOW_S * self.mid_rate)))
        self.wow_hop = self.wow_nfft // WOW_HOP_DIV
        self.wow_win = signal.get_window("hann", self.wow_nfft).astype(np.float32)
        wf = np.fft.rfftfreq(self.wow_nfft, 1.0 / self.mid_rate)
        kb = np.flatnonzero((wf >= WOW_BAND_HZ[0]) & (wf <= min(WOW_BAND_HZ[1], 0.42 * self.mid_rate)))
        self.wow_k0, self.wow_k1 = int(max(kb[0], 2)), int(kb[-1] + 1)
        self.wow_buf = np.zeros(0, dtype=np.float32)
        self.wow_prev: np.ndarray | None = None  # last complex spectrum row (band bins +-2)
        self.wow_hist: np.ndarray | None = None  # peak frequencies of the last max(WOW_LAGS) frames
        # bounded stores (see archtool.analyze._bounded): exact up to history_s, then halved
        wow_fr = self.mid_rate / self.wow_hop
        self.wow_series = SegmentStore(len(WOW_LAGS) + 1, int(history_s * wow_fr))
        self.wow_fm = FMAccumulator(self.mid_rate)  # coherent FM of partial tracks (wow)
        # buffers
        self.buf = np.zeros((self.channels, 0), dtype=np.float32)
        self.prev_tail = np.zeros(0, dtype=np.float32)  # mono samples before the chunk (for LPC/STFT)
        self.pos = 0  # samples consumed into chunks
        # accumulators
        self.frames = SegmentStore(2 + len(BANDS_HZ), int(history_s * self.sr / self.hop))  # dB, bands, flatness
        env_cap = int(history_s / (self.env_block / self.sr))
        self.env = SegmentStore(1, env_cap)
        self.env_levels = LevelRecords()
        self.env_low = LowRuns(GAP_CEILING_DBFS, env_cap, min_len=2)
        self.power_sum = np.zeros(self.freqs.size)
        self.power_frames = 0
        # the same over the frames that touch no digital-silence run (dropout edges)
        self.power_sum_clear = np.zeros(self.freqs.size)
        self.power_frames_clear = 0
        chunks_cap = max(4, int(history_s / max(chunk_s, 1e-3)))
        self.chunk_noise = SampledRows(chunks_cap)
        self.chunk_noise_clear = SampledRows(chunks_cap)
        self.low_psd_sum = np.zeros(LOW_NFFT // 2 + 1)
        self.low_weight = 0.0
        self.hum_segs = 0
        self.hum_line_count = np.zeros(HUM_SEG_BINS, dtype=np.int64)
        self.events = EventStore(("t", "ratio", "width", "iso", "amp"), int(max(256.0, history_s * EVENTS_PER_S)))
        self.chunk_ms = 0.0
        self.res_scale = SampledRows(max(16, 4 * chunks_cap))
        self.sum = np.zeros(self.channels)
        self.sumsq = np.zeros(self.channels)
        self.mono_sumsq = 0.0
        self.peak_pos = np.full(self.channels, -np.inf)
        self.peak_neg = np.full(self.channels, np.inf)
        # flat runs at the running extremes: level, samples in runs, runs ([c, 0] at +peak,
        # [c, 1] at -peak), merged chunk by chunk (a chunk at a new extreme replaces them)
        self.clip_level = np.zeros((self.channels, 2))
        self.clip_cnt = np.zeros((self.channels, 2), dtype=np.int64)
        self.clip_nruns = np.zeros((self.channels, 2), dtype=np.int64)
        self.clip_seen = False
        self.hist_edges = np.linspace(0.0, 2.0, 4001)
        self.abs_hist = np.zeros((self.channels, 4000), dtype=np.int64)
        self.zero_runs: list[tuple[int, int]] = []
        self.zero_runs_dropped = 0
        self.zero_open: int | None = None  # start sample of a run still open at the chunk end
        self.min_zero_run = max(2, int(round(MIN_SILENCE_RUN_S * self.sr)))
        self.n = 0
        self.loud = self.tp = None
        if loudness:
            from archtool.audio.loudness import LoudnessMeter, TruePeakMeter

            self.loud = LoudnessMeter(self.sr, self.channels)
            self.tp = TruePeakMeter(self.channels)

    # ------------------------------------------------------------------ feeding
    def update(self, block: np.ndarray) -> None:
        """Add a ``(channels, n)`` block (any n)."""
        block = np.asarray(block, dtype=np.float32)
        if block.ndim == 1:
            block = block[None]
        if block.shape[0] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {block.shape[0]}")
        if block.shape[1] == 0:
            return
        self.n += block.shape[1]
        if self.loud is not None:
            self.loud.update(block)
            self.tp.update(block)
        self.buf = np.concatenate([self.buf, block], axis=1) if self.buf.shape[1] else block
        while self.buf.shape[1] >= self.chunk:
            self._process(self.buf[:, : self.chunk], final=False)
            self.buf = self.buf[:, self.chunk:]

    def finish(self) -> Features:
        """Process what is buffered and return the :class:`Features`."""
        if self.buf.shape[1] or self.pos == 0:
            self._process(self.buf, final=True)
            self.buf = np.zeros((self.channels, 0), dtype=np.float32)
        return self._features()

    # ------------------------------------------------------------------ per chunk
    def _process(self, x: np.ndarray, final: bool) -> None:
        start = self.pos
        n = x.shape[1]
        self._channel_stats(x, start, final)
        mono = x.mean(axis=0) if self.channels > 1 else x[0]
        ss = float(np.dot(mono.astype(np.float64), mono))
        self.mono_sumsq += ss
        self.chunk_ms = ss / max(n, 1)
        for e in self._envelope(mono):
            self.env.append(e)
            self.env_levels.append(e)
            self.env_low.append(e)
        power = self._stft(mono)
        self._mid(mono)
        self._clicks(mono, start, power)
        self.prev_tail = mono[-max(self.n_fft, LPC_ORDER * 4):].copy()
        self.pos += n

    def _channel_stats(self, x: np.ndarray, start: int, final: bool) -> None:
        x64 = x.astype(np.float64)
        self.sum += x64.sum(axis=1)
        self.sumsq += np.einsum("ij,ij->i", x64, x64)
        cmax, cmin = x.max(axis=1), x.min(axis=1)
        self.peak_pos = np.maximum(self.peak_pos, cmax)
        self.peak_neg = np.minimum(self.peak_neg, cmin)
        ax = np.abs(x)
        nbins = self.hist_edges.size - 1
        scale = np.float32(nbins / (self.hist_edges[-1] - self.hist_edges[0]))
        for c in range(self.channels):
            # uniform bins: the bin index by arithmetic (no sorting, no edge search); values
            # beyond the last edge are left out, as np.histogram does
            idx = (ax[c] * scale).astype(np.int32)
            self.abs_hist[c] += np.bincount(idx[idx < nbins], minlength=nbins)
        # flat runs at this chunk's extremes (kept per chunk; merged against global peaks)
        cnt_p = np.zeros(self.channels, dtype=np.int64)
        cnt_n = np.zeros(self.channels, dtype=np.int64)
        run_p = np.zeros(self.channels, dtype=np.int64)
        run_n = np.zeros(self.channels, dtype=np.int64)
        for c in range(self.channels):
            for level, sign, cnt, runs in ((cmax[c], 1, cnt_p, run_p), (cmin[c], -1, cnt_n, run_n)):
                if level == 0:
                    continue
                tol = max(abs(float(level)) * 1e-4, 1e-7)
                at = np.abs(x[c] - level) <= tol
                if np.count_nonzero(at) < 2:
                    continue
                s, e = _runs(at)
                long = (e - s) >= 2
                cnt[c] = int(np.sum((e - s)[long]))
                runs[c] = int(np.count_nonzero(long))
        self._merge_clip(cmax, cmin, cnt_p, cnt_n, run_p, run_n)
        # digital silence runs (all channels)
        silent = np.all(np.abs(x) <= SILENCE_LEVEL, axis=0)
        s, e = _runs(silent)
        if self.zero_open is not None and (s.size == 0 or s[0] != 0):
            # a run left open at the previous chunk's end stopped exactly at the boundary
            self._zero_run(self.zero_open, start)
            self.zero_open = None
        for a, b in zip(s, e):
            a_abs, b_abs = start + int(a), start + int(b)
            if a == 0 and self.zero_open is not None:
                a_abs = self.zero_open
                self.zero_open = None
            if b == x.shape[1] and not final:
                self.zero_open = a_abs
                continue
            self._zero_run(a_abs, b_abs)

    def _merge_clip(self, cmax, cmin, cnt_p, cnt_n, run_p, run_n) -> None:
        """Keep the flat-run counts at the running extremes: a chunk whose extreme equals
        the running one (within 1e-4 relative) adds its counts; a higher one replaces them."""
        for c in range(self.channels):
            for j, level, cnt, runs in ((0, float(cmax[c]), cnt_p[c], run_p[c]), (1, -float(cmin[c]), cnt_n[c], run_n[c])):
                cur = self.clip_level[c, j]
                tol = max(max(abs(cur), abs(level)) * 1e-4, 1e-7)
                if not self.clip_seen or level > cur + tol:
                    self.clip_level[c, j], self.clip_cnt[c, j], self.clip_nruns[c, j] = level, cnt, runs
                elif abs(level - cur) <= tol:
                    self.clip_level[c, j] = max(cur, level)
                    self.clip_cnt[c, j] += cnt
                    self.clip_nruns[c, j] += runs
        self.clip_seen = True

    def _zero_run(self, a: int, b: int) -> None:
        # runs shorter than MIN_SILENCE_RUN_S are zero crossings of a quiet signal, not silence
        if b - a >= self.min_zero_run:
            if len(self.zero_runs) < ZERO_RUNS_MAX:
                self.zero_runs.append((a, b))
            else:
                self.zero_runs_dropped += 1

    def _envelope(self, mono: np.ndarray) -> list[np.ndarray]:
        """Mean square (dB) per ENV_BLOCK_S block of this chunk (and of a final partial block)."""
        out = []
        m = mono.shape[0] // self.env_block
        if m:
            blocks = mono[: m * self.env_block].reshape(m, self.env_block)
            out.append(_db(np.einsum("ij,ij->i", blocks, blocks) / self.env_block))
        rest = mono.shape[0] - m * self.env_block
        if rest and mono.shape[0] < self.chunk:  # final partial block
            tail = mono[m * self.env_block:]
            out.append(_db(np.array([float(np.dot(tail, tail)) / rest])))
        return out

    def _stft(self, mono: np.ndarray) -> np.ndarray:
        """Frame powers of this chunk, shape (F, K); frame i is centred on chunk sample i*hop."""
        # The last (n_fft - hop) samples of the previous chunk lead in, so frames are
        # continuous across chunks.
        lead = self.prev_tail[-(self.n_fft - self.hop):] if self.prev_tail.size else \
            np.zeros(self.n_fft - self.hop, np.float32)
        y = np.concatenate([lead, mono])
        if y.shape[0] < self.n_fft:
            y = np.pad(y, (0, self.n_fft - y.shape[0]))
        frames = np.lib.stride_tricks.sliding_window_view(y, self.n_fft)[:: self.hop]
        spec = sfft.rfft(frames * self.win, axis=1)
        p = spec.real ** 2 + spec.imag ** 2  # float32 (F, K)
        tot = p @ self.bin_w32 / (self.n_fft * self.wss)
        frame_db = _db(tot)
        band_db = _db(p @ self.band_matrix / (self.n_fft * self.wss))
        ps = p[:, self.flat_sel]
        lp = np.log(np.maximum(ps, 1e-20))
        flat = 10 / np.log(10) * (lp.mean(axis=1) - np.log(np.maximum(ps.mean(axis=1), 1e-20)))
        self.frames.append(np.concatenate([frame_db[:, None], band_db, flat[:, None]], axis=1))
        self._decay_rates(p)
        live = tot > 1e-11  # > -110 dBFS: digital silence and zeroed frames are excluded
        nl = int(np.count_nonzero(live))
        if nl:
            pl = p[live]
            psum = pl.sum(axis=0, dtype=np.float64)
            self.power_sum += psum
            self.power_frames += nl
            est = self._noise_estimate(pl)
            self.chunk_noise.append(est)
            synthetic = 0 if self.prev_tail.size else self.n_fft - self.hop  # the zero lead-in
            cut = self._touches_silence(y, frames.shape[0], synthetic, lead.shape[0] + mono.shape[0]) & live
            if not cut.any():
                self.power_sum_clear += psum
                self.power_frames_clear += nl
                self.chunk_noise_clear.append(est)
            elif nl - int(np.count_nonzero(cut)):
                pc = p[live & ~cut]
                self.power_sum_clear += pc.sum(axis=0, dtype=np.float64)
                self.power_frames_clear += pc.shape[0]
                self.chunk_noise_clear.append(self._noise_estimate(pc))
        return p

    @staticmethod
    def _noise_estimate(pl: np.ndarray) -> np.ndarray:
        """Bias-corrected low percentile per bin of the time-smoothed frame powers (K,)."""
        ps = _smooth_frames(pl, NOISE_SMOOTH_FRAMES).T.copy()  # (K, F') contiguous rows
        kth = int(round(NOISE_PERCENTILE / 100.0 * (ps.shape[1] - 1)))
        return (np.partition(ps, kth, axis=1)[:, kth] / noise_bias_k(ps.shape[1])).astype(np.float64)

    def _touches_silence(self, y: np.ndarray, nframes: int, first: int, end: int) -> np.ndarray:
        """(F,) bool: STFT frame i (samples ``y[i*hop : i*hop+n_fft]``) holds part of a
        digital-silence run (``|x| <= SILENCE_LEVEL`` for >= MIN_SILENCE_RUN_S) of the
        signal ``y[first:end]`` (the zero lead-in before the file and the padding after it
        are not the file's silence)."""
        sil = np.abs(y) <= SILENCE_LEVEL
        sil[:first] = False
        sil[end:] = False
        out = np.zeros(nframes, dtype=bool)
        if not sil.any():
            return out
        s, e = _runs(sil)
        long = (e - s) >= self.min_zero_run
        if not long.any():
            return out
        mark = np.zeros(y.shape[0] + 1, dtype=np.int64)
        np.add.at(mark, s[long], 1)
        np.add.at(mark, e[long], -1)
        cs = np.concatenate([[0], np.cumsum(np.cumsum(mark)[:-1] > 0)])
        starts = np.arange(nframes) * self.hop
        return (cs[np.minimum(starts + self.n_fft, y.shape[0])] - cs[np.minimum(starts, y.shape[0])]) > 0

    def _decay_rates(self, p: np.ndarray) -> None:
        """Histogram the slopes (dB/s) of each decay band's level over DECAY_WINDOW_S.

        A reverberant room cannot decay faster than 60 dB per RT60, so the steepest falls of
        a dry recording (abrupt offsets, several hundred dB/s) are missing in a reverberant
        one; the negative side of this histogram measures that. Only windows starting
        ``DECAY_GATE_DB`` above the band's floor in this chunk (its 10th percentile) count,
        so noise-floor fluctuation does not pass for decay.
        """
        lv = 10.0 * np.log10(p @ self.decay_matrix + 1e-20)  # (F, NB) dB
        W = self.slope_kernel.size
        if self.decay_tail is not None:
            lv = np.concatenate([self.decay_tail, lv], axis=0)
        self.decay_tail = lv[-(W - 1):].copy()
        if lv.shape[0] < W:
            return
        slope = np.lib.stride_tricks.sliding_window_view(lv, W, axis=0) @ self.slope_kernel  # (F-W+1, NB)
        start = lv[: slope.shape[0]]
        over = start - np.percentile(lv, 10, axis=0)[None, :]
        live = start > -100.0
        rng = (SLOPE_EDGES[0], SLOPE_EDGES[-1])
        nb = SLOPE_EDGES.size - 1
        self.slope_hist += np.histogram(slope[(over >= DECAY_GATE_DB) & live], bins=nb, range=rng)[0]
        self.slope_hist_lo += np.histogram(slope[(over >= 0.5 * DECAY_GATE_DB) & live], bins=nb, range=rng)[0]
        self.slope_hist_hi += np.histogram(slope[(over >= 2 * DECAY_GATE_DB) & live], bins=nb, range=rng)[0]

    def _mid(self, mono: np.ndarray) -> None:
        """Decimate to the mid rate (~8 kHz) and feed the pitch tracker and the low path."""
        if self.mid_sos is None:
            mid = mono.astype(np.float64)
        else:
            y, self.mid_zi = signal.sosfilt(self.mid_sos, mono.astype(np.float64), zi=self.mid_zi)
            first = (-self.mid_phase) % self.mid_dec
            mid = y[first:: self.mid_dec]
            self.mid_phase = (self.mid_phase + mono.shape[0]) % self.mid_dec
        mid32 = mid.astype(np.float32)
        self._wow(mid32)
        self.wow_fm.update(mid32)
        self._low(mid)

    def _wow(self, mid: np.ndarray) -> None:
        """Pitch drift of the stable partials (cents), from phase-vocoder instantaneous
        frequencies of spectral peaks at WOW_BAND_HZ, compared ``WOW_LAGS`` frames apart.

        A speed change scales every partial by the same ratio; the weighted median over the
        partials present in both frames rejects note changes and noise peaks.
        """
        y = np.concatenate([self.wow_buf, mid]) if self.wow_buf.size else mid
        N, H = self.wow_nfft, self.wow_hop
        if y.shape[0] < N:
            self.wow_buf = y
            return
        nfr = 1 + (y.shape[0] - N) // H
        frames = np.lib.stride_tricks.sliding_window_view(y, N)[::H][:nfr]
        self.wow_buf = y[nfr * H:].copy()
        k0, k1 = self.wow_k0, self.wow_k1
        spec = sfft.rfft(frames * self.wow_win, axis=1)[:, k0 - 2: k1 + 2]
        prev = spec[:-1] if self.wow_prev is None else np.concatenate([self.wow_prev[None], spec[:-1]])
        self.wow_prev = spec[-1].copy()
        cur = spec[-prev.shape[0]:] if prev.shape[0] else spec[:0]  # the very first frame has no predecessor
        if cur.shape[0] == 0:
            return
        pw = cur.real ** 2 + cur.imag ** 2
        m = pw[:, 2:-2]
        pk = (m >= pw[:, 1:-3]) & (m >= pw[:, 3:-1]) & (m >= pw[:, :-4]) & (m >= pw[:, 4:])
        pk &= m > pw.max(axis=1, keepdims=True) * WOW_PEAK_REL
        ti, ki = np.nonzero(pk)
        # instantaneous frequency (bins) of the peaks from the phase advance over one hop
        kb = (k0 + ki).astype(np.float64)
        z = cur[ti, ki + 2] * np.conj(prev[ti, ki + 2])
        dphi = np.angle(z) - 2 * np.pi * kb * H / N
        dphi = (dphi + np.pi) % (2 * np.pi) - np.pi
        fi = kb + dphi * N / (2 * np.pi * H)
        keep = np.abs(fi - kb) < 0.5  # a sinusoid's frequency lies inside its own bin
        ti, ki, fi = ti[keep], ki[keep], fi[keep]
        wts = np.sqrt(m[ti, ki]).astype(np.float64)
        nb = k1 - k0
        L = max(WOW_LAGS)
        nh = self.wow_hist.shape[0] if self.wow_hist is not None else 0
        fmap = np.full((nh + cur.shape[0], nb + 2), np.nan)
        if nh:
            fmap[:nh] = self.wow_hist
        fmap[nh + ti, ki + 1] = fi
        F = cur.shape[0]
        out = np.full((F, len(WOW_LAGS)), np.nan)
        cnt = np.zeros(F)
        for j, lag in enumerate(WOW_LAGS):
            r = nh + ti - lag
            okr = r >= 0
            rr = np.maximum(r, 0)
            ref = fmap[rr, ki + 1]
            for o in (-1, 1):  # the same partial lag frames earlier, one bin away
                ref = np.where(np.isnan(ref), fmap[rr, ki + 1 + o], ref)
            with np.errstate(invalid="ignore", divide="ignore"):
                c = 1200.0 * np.log2(fi / ref)
            valid = okr & np.isfinite(c) & (np.abs(c) < 100.0)
            tv, cv, wv = ti[valid], c[valid], wts[valid]
            n_ok = np.bincount(tv, minlength=F)
            if tv.size:
                # weighted median per frame: sort by (frame, cents), then the first entry whose
                # cumulative weight within its frame reaches half of the frame's total
                order = np.lexsort((cv, tv))
                tv, cv, wv = tv[order], cv[order], wv[order]
                cw = np.cumsum(wv)
                frames_ok = np.flatnonzero(n_ok >= 2)
                starts = np.searchsorted(tv, frames_ok, side="left")
                ends = np.searchsorted(tv, frames_ok, side="right")
                before = np.where(starts > 0, cw[np.maximum(starts - 1, 0)], 0.0)
                half = before + 0.5 * (cw[ends - 1] - before)
                idx = np.clip(np.searchsorted(cw, half, side="left"), starts, ends - 1)
                out[frames_ok, j] = cv[idx]
            if j == 0:
                cnt = n_ok.astype(np.float64)
        self.wow_series.append(np.concatenate([out, cnt[:, None]], axis=1))
        self.wow_hist = fmap[-L:].copy()

    def _low(self, mid: np.ndarray) -> None:
        y, self.low_zi = signal.sosfilt(self.low_sos, mid, zi=self.low_zi)
        first = (-self.low_phase) % self.dec
        low = y[first:: self.dec]
        self.low_phase = (self.low_phase + mid.shape[0]) % self.dec
        if low.size < 16:
            return
        # per-segment line prominence (stationarity of hum lines), ~1 Hz bins up to ~420 Hz
        L = HUM_SEG
        ns = low.size // L
        if ns:
            segs = low[: ns * L].reshape(ns, L) * np.hanning(L)
            sp = 10 * np.log10(np.abs(np.fft.rfft(segs, axis=1)) ** 2 + 1e-30)
            from scipy.ndimage import median_filter

            base = median_filter(sp, size=(1, 9), mode="nearest")
            prom = (sp - base)[:, : HUM_SEG_BINS].astype(np.float32)
            from scipy.ndimage import maximum_filter1d

            self.hum_line_count += np.count_nonzero(maximum_filter1d(prom, size=3, axis=1) >= HUM_SEG_LINE_DB, axis=0)
            self.hum_segs += ns
        seg = low[: LOW_NFFT]
        w = np.hanning(seg.size)
        spec = np.abs(np.fft.rfft(seg * w, LOW_NFFT)) ** 2 / (np.sum(w ** 2) * self.low_rate)
        self.low_psd_sum += spec * seg.size
        self.low_weight += seg.size

    def _clicks(self, mono: np.ndarray, start: int, power: np.ndarray) -> None:
        p = LPC_ORDER
        lead = self.prev_tail[-p:] if self.prev_tail.size >= p else np.zeros(p, np.float32)
        x = np.concatenate([lead, mono]).astype(np.float64)
        n = mono.shape[0]
        L = self.hop
        nb = int(np.ceil(n / L))
        # autocorrelation of each Hann frame from its power spectrum (the circular wrap
        # is negligible at lags <= p because the window vanishes at its ends); block b
        # (samples b*L .. b*L+L) sits between frames b and b+1.
        rf = power.astype(np.float64) @ self.cos_lags  # (F, p+1)
        nxt = np.concatenate([rf[1:], rf[-1:]], axis=0)
        r = (rf + nxt)[:nb]
        if r.shape[0] < nb:
            r = np.concatenate([r, np.repeat(r[-1:], nb - r.shape[0], axis=0)], axis=0)
        r[:, 0] = r[:, 0] * (1.0 + 1e-6) + 1e-12
        a = _levinson_batch(r, p)
        # residual e[n] = x[n] - sum a_k x[n-k], coefficients switching per block
        e = _blockwise_residual(x, a, L, p, n)
        ae = np.abs(e)
        S = CLICK_SCALE_BLOCK
        m = int(np.ceil(n / S))
        aep = np.pad(ae, (0, m * S - n))
        blk_med = aep.reshape(m, S).mean(axis=1) * 0.8453  # mean|e| -> median|e| for Gaussian e
        # local scale: the median over ~20 ms of block medians, robust to the clicks themselves
        span = max(3, int(round(0.02 * self.sr / S)) | 1)
        from scipy.ndimage import median_filter

        scale = median_filter(blk_med, size=span, mode="nearest") / 0.6745
        med_scale = float(np.median(scale))
        self.res_scale.append(med_scale)
        # floor: near-silent passages must not turn quantisation steps into "clicks"
        scale = np.maximum(scale, 0.1 * med_scale) + 1e-9
        # outliers: |e| beyond CLICK_THRESHOLD local scales (compared block-wise, no full-rate copy)
        out = (aep.reshape(m, S) > (CLICK_THRESHOLD * scale)[:, None]).reshape(-1)[:n]
        if not out.any():
            return
        # merge outliers closer than 1 ms into one event
        gap = max(1, int(0.001 * self.sr))
        idxs = np.flatnonzero(out)
        first = np.concatenate([[0], np.flatnonzero(np.diff(idxs) > gap) + 1])
        last = np.concatenate([first[1:], [idxs.size]])
        seg_id = np.repeat(np.arange(first.size), last - first)
        rv = ae[idxs] / scale[idxs // S]
        # index of the maximum ratio within each group
        order = np.lexsort((-rv, seg_id))
        peak_idx = idxs[order[first]]
        # isolation: event peak over the largest |e| 1..10 ms around it (glottal pulses and
        # other periodic excitation have neighbours of similar size; clicks do not)
        Bm = max(1, int(0.0005 * self.sr))
        mb = int(np.ceil(n / Bm))
        bmax = np.pad(ae, (0, mb * Bm - n)).reshape(mb, Bm).max(axis=1)
        g = max(1, int(round(0.0015 * self.sr / Bm)))
        h = max(1, int(round(0.004 * self.sr / Bm)))
        from scipy.ndimage import maximum_filter1d

        mf = maximum_filter1d(bmax, size=2 * h + 1, mode="constant", cval=0.0)
        b = peak_idx // Bm
        left = mf[np.clip(b - g - h, 0, mb - 1)]
        right = mf[np.clip(b + g + h, 0, mb - 1)]
        iso = ae[peak_idx] / (np.maximum(left, right) + 1e-12)
        self.events.append(t=(start + peak_idx) / self.sr, ratio=ae[peak_idx] / scale[peak_idx // S],
                           width=(last - first).astype(np.float64), iso=iso,
                           amp=ae[peak_idx] / (np.sqrt(self.chunk_ms) + 1e-12))

    # ------------------------------------------------------------------ result
    def _features(self) -> Features:
        n = max(self.n, 1)
        chunk_noise = list(self.chunk_noise.rows)
        if chunk_noise:
            cn = np.stack(chunk_noise)
            noise = cn[0] if cn.shape[0] == 1 else np.percentile(cn, 25, axis=0)
        else:
            noise = np.zeros(self.freqs.size)
        mean_power = self.power_sum / max(self.power_frames, 1)
        clear_rows = list(self.chunk_noise_clear.rows)
        noise_clear = None
        if clear_rows:
            cc = np.stack(clear_rows)
            noise_clear = cc[0] if cc.shape[0] == 1 else np.percentile(cc, 25, axis=0)
        mean_power_clear = self.power_sum_clear / self.power_frames_clear if self.power_frames_clear else None
        # clipping: the flat-run counts at the global extremes
        clip_counts = np.zeros((self.channels, 2), dtype=np.int64)
        clip_runs = np.zeros((self.channels, 2), dtype=np.int64)
        for c in range(self.channels):
            for j, peak in ((0, float(self.peak_pos[c])), (1, -float(self.peak_neg[c]))):
                if abs(self.clip_level[c, j] - peak) <= max(abs(peak) * 1e-4, 1e-7):
                    clip_counts[c, j] = self.clip_cnt[c, j]
                    clip_runs[c, j] = self.clip_nruns[c, j]
        peak_abs = np.maximum(np.abs(self.peak_pos), np.abs(self.peak_neg))
        centres = 0.5 * (self.hist_edges[1:] + self.hist_edges[:-1])
        near = np.array([int(self.abs_hist[c][centres >= 0.95 * peak_abs[c]].sum()) if peak_abs[c] > 0 else 0
                         for c in range(self.channels)])
        loud = tp = None
        if self.loud is not None:
            lv = self.loud.integrated()
            loud = lv if np.isfinite(lv) else None
            tv = self.tp.dbtp
            tp = tv if np.isfinite(tv) else None
        fr = self.frames.values()
        nb = len(BANDS_HZ)
        wow = self.wow_series.values()
        ev = self.events
        res = list(self.res_scale.rows)
        return Features(
            sample_rate=self.sr, channels=self.channels, n_samples=self.n, n_fft=self.n_fft,
            hop=self.hop, freqs=self.freqs, mean_power=mean_power, noise_psd=noise,
            frame_db=fr[:, 0].copy(), band_db=fr[:, 1:1 + nb].copy(), frame_peakiness=fr[:, 1 + nb].copy(),
            env_db=self.env.values()[:, 0].copy(),
            env_hop_s=self.env_block / self.sr, env_levels=self.env_levels, env_low_runs=self.env_low.finish(),
            low_rate=self.low_rate,
            low_freqs=np.fft.rfftfreq(LOW_NFFT, 1.0 / self.low_rate),
            low_psd=self.low_psd_sum / max(self.low_weight, 1.0),
            click_times_s=ev.column("t"), click_ratio=ev.column("ratio"), click_width=ev.column("width"),
            click_isolation=ev.column("iso"), click_amplitude=ev.column("amp"), click_weight=ev.step,
            wow_rate=self.mid_rate / self.wow_hop,
            wow_drift_cents=wow[:, : len(WOW_LAGS)].copy(), wow_partials=wow[:, len(WOW_LAGS)].copy(),
            hum_seg_count=int(self.hum_segs), hum_seg_line_count=self.hum_line_count.copy(),
            residual_rms=float(np.median(res)) if res else 0.0,
            slope_hist=self.slope_hist.copy(), slope_hist_hi=self.slope_hist_hi.copy(),
            slope_hist_lo=self.slope_hist_lo.copy(),
            mean=self.sum / n, mean_square=self.sumsq / n, mono_mean_square=self.mono_sumsq / n,
            peak_pos=self.peak_pos, peak_neg=self.peak_neg, clip_counts=clip_counts,
            clip_runs=clip_runs, near_peak=near, abs_hist=self.abs_hist,
            zero_runs_s=[(a / self.sr, b / self.sr) for a, b in self.zero_runs],
            loudness_lufs=loud, true_peak_dbtp=tp, chunk_noise=chunk_noise,
            series_exact=self.frames.exact and self.env.exact and self.wow_series.exact,
            wow_fm=self.wow_fm.summary(),
            mean_power_clear=mean_power_clear, noise_psd_clear=noise_clear,
        )

    def state_nbytes(self) -> int:
        """Bytes held by the accumulator's growing stores (per-frame series, events,
        per-chunk estimates, silence runs) and fixed summaries; bounded by ``history_s``."""
        fixed = (self.power_sum.nbytes + self.power_sum_clear.nbytes + self.low_psd_sum.nbytes
                 + self.abs_hist.nbytes + self.slope_hist.nbytes * 3 + self.hum_line_count.nbytes
                 + self.buf.nbytes + self.wow_fm.nbytes())
        rows = sum(r.nbytes for r in self.chunk_noise.rows) + sum(r.nbytes for r in self.chunk_noise_clear.rows) \
            + 8 * len(self.res_scale.rows)
        return int(fixed + rows + self.frames.nbytes + self.env.nbytes
                   + self.wow_series.nbytes + self.events.nbytes + 16 * len(self.zero_runs)
                   + self.env_levels.nbytes + self.env_low.nbytes)
