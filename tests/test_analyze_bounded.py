"""Bounded memory of the streamed analysis: the feature accumulator's state does not grow
with the duration once its history is full, and the findings stay those of the exact run."""
from __future__ import annotations

import numpy as np

from archtool.analyze._bounded import EventStore, LevelRecords, LowRuns, SampledRows, SegmentStore
from archtool.analyze.analyzer import features_of_audio, findings_from_features, rule_findings
from archtool.analyze.features import FeatureAccumulator

SR = 16000


def _long_programme(dur: float, seed: int = 3, sr: int = SR) -> np.ndarray:
    """A mono programme: harmonic notes with pauses, white noise at ~20 dB SNR, 60 Hz hum
    and 4 clicks per second (float32, (1, n))."""
    rng = np.random.default_rng(seed)
    n = int(sr * dur)
    x = np.zeros(n)
    t0 = 0
    while t0 < n:
        L = int(sr * rng.uniform(0.2, 0.4))
        f0 = rng.uniform(120, 300)
        t = np.arange(L) / sr
        tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 10))
        e = min(n, t0 + L)
        x[t0:e] += (0.2 * tone * np.minimum(1, t / 0.01) * np.exp(-t / 0.15))[: e - t0]
        t0 += L + int(sr * rng.uniform(0.05, 0.2))
    x += 0.01 * rng.standard_normal(n) + 0.01 * np.sin(2 * np.pi * 60.0 * np.arange(n) / sr)
    for p in rng.choice(n - 10, int(4 * dur), replace=False):
        x[p: p + 3] += rng.choice([-1, 1]) * 0.5
    return x[None].astype(np.float32)


def _state(dur: float, history_s: float, sr: int = 8000) -> int:
    x = _long_programme(dur, sr=sr)
    acc = FeatureAccumulator(sr, 1, chunk_s=2.0, history_s=history_s, loudness=False)
    for i in range(0, x.shape[1], sr):
        acc.update(x[:, i:i + sr])
    acc.finish()
    return acc.state_nbytes()


def test_state_does_not_grow_with_duration():
    durations = (30.0, 60.0, 120.0)
    bounded = [_state(d, history_s=1.0) for d in durations]
    exact = [_state(d, history_s=1e6) for d in durations]
    # unbounded, the per-frame series and events grow with the duration (the test
    # measures something): by > 300 kB from 30 s to 2 minutes of 8 kHz audio
    assert exact[2] - exact[0] > 300_000, exact
    # bounded, the state at 2 minutes is that at 30 s within 5 % (the stores halve in steps)
    assert max(bounded) <= 1.05 * min(bounded), bounded
    assert bounded[2] - bounded[0] < 0.05 * (exact[2] - exact[0]), (bounded, exact)


def test_bounded_findings_match_the_exact_run():
    """48 s analysed with 8 s of history (the series keep 1 s segments, a sample) against
    the exact run: the detectors' verdicts agree, SNR within 1 dB, click rate within 15 %,
    hum at the same frequency."""
    x = _long_programme(48.0)
    fe = rule_findings(features_of_audio(x, SR, chunk_s=2.0))
    fb_feat = features_of_audio(x, SR, chunk_s=2.0, history_s=8.0)
    assert not fb_feat.series_exact
    fb = rule_findings(fb_feat)
    for k in ("noise", "clicks", "crackle", "hum", "rumble", "gaps", "clipping", "dc_offset", "bandlimit"):
        assert fe[k].detected == fb[k].detected, (k, fe[k].measures, fb[k].measures)
    assert fe["clicks"].detected and fe["hum"].detected and fe["noise"].detected
    assert abs(fe["noise"].measures["snr_db"] - fb["noise"].measures["snr_db"]) < 1.0
    re, rb = fe["clicks"].measures["rate_per_s"], fb["clicks"].measures["rate_per_s"]
    assert abs(re - rb) <= 0.15 * re, (re, rb)
    assert abs(fe["hum"].measures["fundamental_hz"] - fb["hum"].measures["fundamental_hz"]) < 0.05
    # the whole analysis runs on the sampled series
    assert len(findings_from_features(fb_feat)) == 13


def test_short_files_are_analysed_exactly():
    """Below the history the stores keep every row: identical features."""
    x = _long_programme(6.0)
    a = features_of_audio(x, SR, chunk_s=2.0)
    b = features_of_audio(x, SR, chunk_s=2.0, history_s=6.5)
    assert b.series_exact and b.click_weight == 1
    for name in ("frame_db", "band_db", "env_db", "wow_drift_cents", "click_times_s", "noise_psd"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name


def test_segment_store_keeps_whole_segments_uniformly():
    s = SegmentStore(1, 16, segments=4)  # segments of 4 rows, at most 16 rows
    for i in range(0, 100, 7):
        s.append(np.arange(i, min(i + 7, 100)))
    v = s.values()[:, 0]
    assert v.size <= 16 and not s.exact
    seg = v.astype(int) // 4
    assert np.all(seg % s.stride == 0)                       # every stride-th segment ...
    assert all(np.array_equal(v[seg == k], np.arange(4 * k, min(4 * k + 4, 100))) for k in set(seg))  # ... whole


def test_level_records_and_low_runs_are_exact():
    rng = np.random.default_rng(0)
    x = rng.normal(-50.0, 12.0, 20000)
    rec, low = LevelRecords(), LowRuns(-60.0, 10 ** 6, min_len=2)
    for i in range(0, x.size, 1777):
        rec.append(x[i:i + 1777])
        low.append(x[i:i + 1777])
    for level in (-80.0, -50.0, -25.0, -5.0):
        above = np.flatnonzero(x > level)
        assert rec.first_above(level) == above[0] and rec.last_above(level) == above[-1]
    assert rec.first_above(100.0) is None
    assert len(rec.first) + len(rec.last) < 200  # records, not the series
    d = np.diff(np.concatenate([[0], (x < -60.0).astype(int), [0]]))
    runs = [(a, b) for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)) if b - a >= 2]
    got = low.finish()
    assert [(a, b) for a, b, *_ in got] == runs
    assert all(np.array_equal(v, x[a:b]) for a, b, _, v in got)


def test_event_store_and_sampled_rows_keep_a_uniform_sample():
    e = EventStore(("t",), 64)
    for i in range(0, 1000, 37):
        e.append(t=np.arange(i, min(i + 37, 1000), dtype=float))
    t = e.column("t")
    assert t.size <= 64 and np.all(t % e.step == 0) and t.size * e.step >= 1000 - e.step
    r = SampledRows(10)
    for i in range(100):
        r.append(i)
    assert len(r) <= 10 and r.rows == list(range(0, 100, r.step))
