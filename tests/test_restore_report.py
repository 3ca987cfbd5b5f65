"""OUT_DIR/report.html of ``archtool restore``: self-contained, light, and what it plays is
exactly what was written (lossless excerpts)."""
from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from archtool.audio.ffmpeg import ffmpeg_executable
from archtool.audio.io import OutputSpec, read_audio, write_audio
from archtool.report.restore_html import EXCERPT_S, flac_data_uri


def _programme(seconds: float, sr: int, seed: int) -> np.ndarray:
    """Stereo notes with 50 Hz hum and a few clicks, float32 (2, N)."""
    g = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = np.zeros_like(t)
    for k, f in enumerate((220.0, 277.2, 329.6)):
        x += 0.2 * np.sin(2 * np.pi * f * t + k) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t + k))
    x += 0.03 * np.sin(2 * np.pi * 50.0 * t) + 0.003 * g.standard_normal(t.size)
    for p in g.integers(sr // 10, t.size - sr // 10, 8):
        x[p : p + 6] += 0.5 * np.hanning(6)
    return np.stack([x, 0.9 * x]).astype(np.float32)


def test_flac_excerpt_is_lossless_at_16_bit(tmp_path: Path):
    sr = 44100
    a = _programme(1.0, sr, 0)
    uri = flac_data_uri(a, sr)
    assert uri.startswith("data:audio/flac;base64,")
    raw = base64.b64decode(uri.split(",", 1)[1])
    r = subprocess.run([ffmpeg_executable(), "-v", "error", "-i", "pipe:0", "-f", "s16le", "pipe:1"],
                       input=raw, capture_output=True, check=True)
    back = np.frombuffer(r.stdout, dtype="<i2").reshape(-1, 2).T
    assert np.array_equal(back, (np.clip(a, -1, 1).astype(np.float64) * 32767.0).round().astype(np.int16))
    # Lossless and still far smaller than the 16-bit WAV it replaces.
    assert len(raw) < 0.8 * a.size * 2


def test_report_is_self_contained_and_light(tmp_path: Path):
    sr = 44100
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        write_audio(src / f"side_{i}.flac", _programme(12.0, sr, i), sr, OutputSpec(fmt="flac", bits=16))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "archtool", "restore", str(src), "-o", str(out), "--jobs", "1",
                        "--keep-residual"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr + r.stdout
    page = (out / "report.html").read_text(encoding="utf-8")
    # Self-contained: no external resources, one spectrogram and three players per file.
    assert not re.search(r"""(src|href)=['"](?!data:)""", page)
    assert page.count("data:image/jpeg;base64,") == 2
    assert page.count("data:audio/flac;base64,") == 6
    assert "Measures before" in page and "Plan" in page
    # Light: 3 stereo 16-bit excerpts of EXCERPT_S s as WAV alone would be about
    # 3 * EXCERPT_S * 44100 * 4 bytes per file (x 4/3 in base64).
    wav_equivalent = 2 * 3 * EXCERPT_S * sr * 4 * 4 / 3
    size = len(page.encode("utf-8"))
    assert size < 0.75 * wav_equivalent, f"report.html is {size / 1e6:.2f} MB"
    # The output excerpt it plays is the written output, sample for sample (16-bit).
    y, _ = read_audio(next(out.rglob("side_0.*")))
    n = int(EXCERPT_S * sr)
    m = re.search(r"<figcaption>output</figcaption><audio controls preload=none src='data:audio/flac;base64,([^']+)'",
                  page)
    raw = base64.b64decode(m.group(1))
    dec = subprocess.run([ffmpeg_executable(), "-v", "error", "-i", "pipe:0", "-f", "s16le", "pipe:1"],
                         input=raw, capture_output=True, check=True).stdout
    played = np.frombuffer(dec, dtype="<i2").reshape(-1, 2).T.astype(np.float64) / 32767.0
    assert played.shape[1] == n
    assert np.max(np.abs(played - np.clip(y[:, :n], -1, 1))) < 2.0 / 32767.0


@pytest.mark.parametrize("width", [80, 100, 130])
def test_results_table_fits_the_terminal_and_keeps_figures_whole(width):
    """Long names and notes wrap; loudness figures and statuses never do, and nothing is cut off."""
    import io

    from rich.console import Console

    from archtool.report.render import results_table

    rows = [{"input": f"collection/side_{i}_a_rather_long_transfer_name_1931.flac", "status": "ok",
             "duration_s": 187.25, "loudness_before_lufs": -31.44, "loudness_after_lufs": -23.0,
             "true_peak_after_dbtp": -1.02,
             "steps": [{"restorer": r} for r in ("decrackle", "declick", "dehum", "denoise")],
             "notes": ["limited to keep the true-peak ceiling"]} for i in range(3)]
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False)
    console.print(results_table(rows, width=console.width))
    lines = buf.getvalue().splitlines()
    assert max(len(line) for line in lines) <= width
    text = buf.getvalue()
    assert text.count("-31.4") == 3 and text.count("-23.0") == 3 and text.count("187.2") == 3
    assert ("-1.0" in text) == (width >= 110)  # the true peak moves to report.csv when narrow
