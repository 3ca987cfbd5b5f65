"""`archtool eval` and metrics measure what they claim; `archtool models` lists what is installed."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from archtool.audio.io import OutputSpec, write_audio
from archtool.metrics import lsd_db, sdr_db, si_sdr_db, spectral_psnr_db
from conftest import speech_like, tone


def test_sdr_equals_the_injected_snr(rng):
    x = tone(440, 1.0, 16000, 1)[0].astype(np.float64)
    noise = rng.standard_normal(x.size)
    noise *= np.sqrt(np.sum(x**2) / np.sum(noise**2) / 10 ** (12.0 / 10))  # exactly 12 dB
    assert sdr_db(x, x + noise) == pytest.approx(12.0, abs=1e-6)


def test_si_sdr_ignores_gain_and_lsd_is_zero_for_identity(rng):
    x = speech_like(1.0, 16000)[0]
    y = x + 0.01 * rng.standard_normal(x.size).astype(np.float32)
    assert si_sdr_db(x, 0.3 * y) == pytest.approx(si_sdr_db(x, y), abs=1e-6)
    assert lsd_db(x, x) == pytest.approx(0.0, abs=1e-9)
    assert lsd_db(x, y) > 0.1
    assert spectral_psnr_db(x, y) > spectral_psnr_db(x, x + 10 * (y - x))


def test_eval_command_scores_matching_files(tmp_path: Path, rng):
    ref, est = tmp_path / "ref" / "sub", tmp_path / "est" / "sub"
    ref.mkdir(parents=True)
    est.mkdir(parents=True)
    x = tone(300, 1.0, 16000, 1)
    noise = rng.standard_normal(x.shape).astype(np.float32)
    noise *= np.sqrt(np.sum(x**2) / np.sum(noise**2) / 10 ** (20.0 / 10))
    write_audio(ref / "a.wav", x, 16000, OutputSpec("wav", 32, True))
    write_audio(est / "a.flac", x + noise, 16000, OutputSpec("flac", 24))  # extension ignored
    out = tmp_path / "m.json"
    res = subprocess.run([sys.executable, "-m", "archtool", "eval", str(tmp_path / "ref"), str(tmp_path / "est"),
                          "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    report = json.loads(out.read_text())
    assert report["files"][0]["file"] == "sub/a"
    assert report["mean"]["sdr_db"] == pytest.approx(20.0, abs=0.05)


def test_models_lists_registered_restorers():
    from archtool.restore.registry import list_restorers

    res = subprocess.run([sys.executable, "-m", "archtool", "models"], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "COLUMNS": "200"})
    assert res.returncode == 0, res.stderr
    for name in list_restorers():
        assert name in res.stdout


def test_models_summary_shows_scores_not_descriptions():
    from archtool.cli.models import _summarise

    text = _summarise({"items": 300, "on": "300 items from clips of /some/long/folder (trained on by neither stage)",
                       "sdr_improvement_db": 4.2675, "split": "holdout"})
    assert text == "items=300, sdr_improvement_db=4.27, split=holdout"


def test_models_shows_a_checkpoints_headline_before_its_other_metrics():
    """The inpainting checkpoints record dozens of metrics (AR rows first, alphabetically); their
    ``headline`` -- the restorer's own combined fill -- is what `archtool models` shows."""
    res = subprocess.run([sys.executable, "-m", "archtool", "models"], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "COLUMNS": "400"})
    assert res.returncode == 0, res.stderr
    rows = [line for line in res.stdout.splitlines() if "inpaint_speech16k.pt" in line]
    assert rows and "combined_100ms.snr_db=" in rows[0] and "ar_100ms" not in rows[0]
