"""Exemplar gap filling: copying the passage whose surroundings recur elsewhere."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import signal

from archtool.dsp.exemplar import exemplar_fill, find_exemplar
from archtool.metrics import snr_db
from archtool.restore.base import Step
from archtool.restore.chain import context_samples, run_steps
from archtool.restore.inpaint import exemplar_threshold, fill_report, inpaint
from archtool.restore.registry import get_restorer


def coloured(seconds: float, sr: int, seed: int) -> np.ndarray:
    """Coloured noise under a random envelope (nothing in it recurs), float64 ``(n,)``."""
    g = np.random.default_rng(seed)
    n = int(seconds * sr)
    knots = int(seconds * 8) + 2
    env = np.interp(np.arange(n), np.linspace(0, n, knots), g.uniform(0.1, 1.0, knots))
    x = signal.lfilter([1.0], [1.0, -0.9], g.standard_normal(n)) * env
    return 0.2 * x / np.abs(x).max()


def looped(sr: int, loop_s: float = 1.3, repeats: int = 5, seed: int = 0) -> np.ndarray:
    """A 'bar' of coloured noise played ``repeats`` times, float64 ``(n,)``."""
    return np.tile(coloured(loop_s, sr, seed), repeats)


def test_find_exemplar_locates_the_repeat_and_its_gain():
    sr = 22050
    loop = coloured(1.3, sr, 1)
    x = np.concatenate([loop, 0.5 * loop, loop])  # the middle bar is quieter
    s, e = int(1.3 * sr) + 9000, int(1.3 * sr) + 9000 + int(0.2 * sr)
    y = x.copy()
    y[s:e] = 0.0
    m = find_exemplar(y, s, e, sr)
    assert m is not None and abs(abs(m.source - s) - int(1.3 * sr)) == 0
    assert m.similarity > 0.999 and abs(m.gain_before - 0.5) < 1e-6 and abs(m.gain_after - 0.5) < 1e-6
    fill = exemplar_fill(y, s, e, m)
    assert snr_db(x[s:e], fill) > 100.0


def test_find_exemplar_respects_the_excluded_spans_and_needs_context():
    sr = 16000
    x = looped(sr, loop_s=1.0, repeats=3)
    s, e = int(1.4 * sr), int(1.6 * sr)
    y = x.copy()
    y[s:e] = 0.0
    free = find_exemplar(y, s, e, sr)
    assert free is not None and free.similarity > 0.999
    # every other recurrence covered by another gap: the best left is a poor match
    others = [(free.source - 100, free.source + 100), (s + sr - 100, s + sr + 100), (s - sr - 100, s - sr + 100)]
    blocked = find_exemplar(y, s, e, sr, exclude=others)
    assert blocked is None or blocked.similarity < 0.5
    for a, b in others:
        assert blocked is None or blocked.source + (e - s) + 4000 <= a or blocked.source - 4000 >= b
    assert find_exemplar(y, 100, 200, sr) is None  # no full context on the left


def test_auto_copies_a_repeated_bar_and_leaves_the_rest_untouched():
    sr = 22050
    x = np.stack([looped(sr, seed=2), 0.5 * looped(sr, seed=2)]).astype(np.float32)  # stereo, panned
    s, e = int(3.0 * sr), int(3.4 * sr)
    y = x.copy()
    y[:, s:e] = 0.0
    out, recs = inpaint(y, sr, [[s / sr, e / sr]])  # no U-Net needed: the exemplar is DSP
    rec = recs[0]
    assert rec["method"] == "exemplar" and rec["similarity"] > 0.99
    assert abs(rec["source_s"] - (s / sr - 1.3)) < 1e-3 or abs(rec["source_s"] - (s / sr + 1.3)) < 1e-3
    assert "recur" in rec["reason"]
    for ch in range(2):
        assert snr_db(x[ch, s:e], out[ch, s:e]) > 15.0  # the copy is exact; the 10 ms Janssen ramps are not
    assert np.array_equal(out[:, :s], y[:, :s]) and np.array_equal(out[:, e:], y[:, e:])
    assert fill_report({"intervals_s": [[s / sr, e / sr]]}, sr)[0]["exemplar_if_similarity_at_least"] == 0.8
    assert exemplar_threshold(25.0) == 0.95 and exemplar_threshold(100.0) == exemplar_threshold(1000.0) == 0.8


def test_auto_does_not_copy_where_nothing_recurs():
    sr = 16000
    x = coloured(6.0, sr, 3)[None].astype(np.float32)
    s, e = int(3.0 * sr), int(3.2 * sr)
    y = x.copy()
    y[:, s:e] = 0.0
    _, recs = inpaint(y, sr, [[s / sr, e / sr]], method="auto", ar_max_ms=1000.0)
    assert recs[0]["method"] == "ar"
    _, recs = inpaint(y, sr, [[s / sr, e / sr]])
    assert recs[0]["method"] != "exemplar"


def test_explicit_exemplar_without_a_candidate_falls_back_to_ar():
    sr = 16000
    x = coloured(1.0, sr, 4)[None].astype(np.float32)
    s, e = int(0.4 * sr), int(0.6 * sr)  # 0.4 s each side: no room for a span of 0.2 + 2 x 0.25 s
    y = x.copy()
    y[:, s:e] = 0.0
    out, recs = inpaint(y, sr, [[s / sr, e / sr]], method="exemplar")
    assert recs[0]["method"] == "ar" and "no passage" in recs[0]["reason"]
    assert snr_db(x[0, s:e], out[0, s:e]) > -1.0


def test_engine_trims_each_step_to_the_context_the_remaining_steps_need(monkeypatch):
    """After inpainting (long context), a later step sees only the core plus its own context,
    and the core's bytes are those of the untrimmed run."""
    sr = 8000
    seen: list[int] = []
    declick = get_restorer("declick")

    class Recording:
        name = "test_recording"
        kinds = ()
        context_s = declick.context_s

        def process(self, audio, sample_rate, params, device="cpu"):
            seen.append(audio.shape[-1])
            return declick.process(audio, sample_rate, params, device)

    from archtool.restore import registry

    registry._load_all()
    monkeypatch.setitem(registry._RESTORERS, "test_recording", Recording)
    clean = looped(sr, loop_s=1.0, repeats=30)[None].astype(np.float32)
    x = clean.copy()
    x[:, int(14.5 * sr):int(14.7 * sr)] = 0.0  # a dropout in the core
    steps = [Step("inpaint", {"intervals_s": [[14.5, 14.7]]}), Step("test_recording", {})]
    ctx = context_samples(steps, sr)
    left, n = ctx, 2 * sr
    ext = x[:, 13 * sr - ctx:15 * sr + ctx]
    trimmed = run_steps(ext, sr, steps, offset=13 * sr - ctx, core=(left, n))
    assert seen[-1] == n + 2 * int(np.ceil(declick.context_s * sr))
    full = run_steps(ext, sr, steps, offset=13 * sr - ctx)[:, left:left + n]
    assert seen[-1] == ext.shape[-1]
    assert np.array_equal(trimmed, full)
    a, b = int(1.5 * sr), int(1.7 * sr)  # the dropout, in core samples
    assert snr_db(clean[0, 13 * sr + a:13 * sr + b], trimmed[0, a:b]) > 15.0


@pytest.mark.parametrize("sr", [16000])
def test_exemplar_fill_of_a_chunk_matches_the_whole_file(sr):
    x = looped(sr, loop_s=1.1, repeats=25)[None].astype(np.float32)
    gaps = [[12.0, 12.3]]
    restorer = get_restorer("inpaint")
    whole = restorer.process(torch.from_numpy(x), sr, {"intervals_s": gaps}).numpy()
    ctx = int(restorer.context_s * sr)
    cut = int(12.1 * sr)  # inside the gap
    first = restorer.process(torch.from_numpy(x[:, :cut + ctx]), sr, {"intervals_s": gaps}).numpy()
    second = restorer.process(torch.from_numpy(x[:, cut - ctx:]), sr,
                              {"intervals_s": gaps, "chunk_offset": cut - ctx}).numpy()
    assert np.array_equal(np.concatenate([first[:, :cut], second[:, ctx:]], axis=1), whole)
    assert snr_db(x[0, int(12.0 * sr):int(12.3 * sr)], whole[0, int(12.0 * sr):int(12.3 * sr)]) > 15.0


def test_engine_blocks_give_the_bytes_of_one_pass():
    """Blocks of 4 s with the chain's context (inpainting's 7.25 s, declick's) against one pass
    over the whole file: gaps near and across block edges, exemplar copies included. Each block
    fills only the gaps whose fill it keeps, and never copies from a gap it does not fill."""
    from conftest import run_in_engine_blocks

    sr = 16000
    x = looped(sr, loop_s=1.1, repeats=20)[None].astype(np.float32)
    gaps = [[3.0, 3.2], [7.95, 8.05], [12.5, 12.6], [15.99, 16.3]]
    for a, b in gaps:
        x[:, int(a * sr):int(b * sr)] = 0.0
    steps = [Step("inpaint", {"intervals_s": gaps}), Step("declick", {})]
    whole = run_steps(x, sr, steps)
    assert np.array_equal(run_in_engine_blocks(x, sr, steps, block_s=4.0), whole)
    clean = looped(sr, loop_s=1.1, repeats=20)
    for a, b in gaps:
        s, e = int(a * sr), int(b * sr)
        assert snr_db(clean[s:e], whole[0, s:e]) > 8.0  # exact copies; the 10 ms Janssen ramps are not


def test_a_repeat_too_quiet_for_the_gain_limit_is_not_a_match():
    """The only recurrence is 40 dB down: its shape matches perfectly, but no allowed gain
    (at most x4) could bring a copy to level, so it must not be chosen (nor digital silence)."""
    sr = 16000
    loop = coloured(1.0, sr, 7)
    x = np.concatenate([np.zeros(sr), 0.01 * loop, 0.01 * loop, loop, coloured(1.0, sr, 8)])
    s, e = int(3.4 * sr), int(3.6 * sr)  # inside the loud copy of the loop
    y = x.copy()
    y[s:e] = 0.0
    m = find_exemplar(y, s, e, sr)
    assert m is None or min(m.similarity_before, m.similarity_after) < 0.5
