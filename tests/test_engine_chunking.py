"""Chunked processing through the engine: context chunks, absolute chunk offsets, no seams."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from archtool.audio.io import OutputSpec, read_audio, write_audio
from archtool.degrade import apply_unit
from archtool.engine.chunking import apply_with_context
from archtool.engine.pipeline import Job, process_file
from archtool.engine.settings import RestoreSettings
from conftest import speech_like


@pytest.mark.parametrize("block,context", [(1, 5), (37, 0), (500, 64), (10_000, 300)])
def test_context_chunks_reproduce_a_whole_signal_filter(rng, block, context):
    x = rng.standard_normal((2, 4001))
    kernel = np.hanning(2 * context + 1) if context else np.ones(1)

    def fn(e: np.ndarray) -> np.ndarray:  # centred FIR of half-length `context`, any input length
        return np.stack([np.convolve(c, kernel)[context:context + len(c)] for c in e])

    whole = fn(x)
    blocks = (x[:, s:s + 613] for s in range(0, x.shape[1], 613))
    chunked = np.concatenate(list(apply_with_context(blocks, fn, block, context)), axis=1)
    np.testing.assert_allclose(chunked, whole, atol=1e-12)


def test_chunked_restoration_matches_unchunked_within_60_db(tmp_path: Path):
    rng = np.random.default_rng(7)
    x = speech_like(6.0, 16000)
    x, _ = apply_unit("hum", x, 16000, {"freq_hz": 50, "snr_db": 20}, rng)
    x, _ = apply_unit("clicks", x, 16000, {"rate_hz": 6}, rng)
    x, _ = apply_unit("noise", x, 16000, {"snr_db": 25}, rng)
    src = tmp_path / "in" / "degraded.wav"
    src.parent.mkdir()
    write_audio(src, x, 16000, OutputSpec("wav", 32, True))
    outs = {}
    for name, block_s in (("small", 0.37), ("whole", 60.0)):
        out = tmp_path / name
        out.mkdir()
        res = process_file(Job(src, "degraded.wav", "degraded"), RestoreSettings(block_s=block_s), out, resume=False)
        assert res["status"] == "ok", res["error"]
        assert res["steps"], "the auto preset should plan restoration for hum, clicks and noise"
        outs[name], _ = read_audio(out / res["output"])
    diff = outs["small"].astype(np.float64) - outs["whole"]
    ratio_db = 10 * np.log10(np.sum(diff**2) / np.sum(outs["whole"].astype(np.float64) ** 2) + 1e-30)
    assert ratio_db < -60, f"chunked vs whole differ by {ratio_db:.1f} dB"


def test_dehum_is_bit_identical_for_any_block_size():
    """Hum removal through the engine's chunks gives the same float32 samples whatever the
    block size (fixed-point moving sums, phases and interpolation weights from the file's
    grid, harmonics summed in a fixed order), and it does remove the hum."""
    from archtool.restore.base import Step
    from conftest import run_in_engine_blocks

    sr = 16000
    n = 6 * sr
    t = np.arange(n) / sr
    music = 0.2 * np.sin(2 * np.pi * 440 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t))
    hum = 0.03 * np.sin(2 * np.pi * 50 * t) + 0.015 * np.sin(2 * np.pi * 150 * t + 1.0)
    noise = 0.003 * np.random.default_rng(5).standard_normal((2, n))
    x = (np.stack([music, np.roll(music, 3)]) + hum + noise).astype(np.float32)
    steps = [Step("dehum", {"fundamental_hz": 50.0, "max_harmonics": 8})]
    outs = {b: run_in_engine_blocks(x, sr, steps, b) for b in (0.25, 1.0, 2.3, 7.0)}
    for b, y in outs.items():
        assert np.array_equal(y, outs[7.0]), f"block {b} s: {int((y != outs[7.0]).sum())} samples differ"
    core = slice(sr, n - sr)  # hum left in the output, against the hum put in (away from the ends)
    left = outs[7.0][:, core] - (np.stack([music, np.roll(music, 3)]) + noise)[:, core]
    assert 10 * np.log10(np.sum(left.astype(np.float64) ** 2) / np.sum(np.broadcast_to(hum[core], left.shape) ** 2)) < -15.0
