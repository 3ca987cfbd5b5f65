"""Plot helpers (shared with the restore report) and the analysis HTML page."""
from __future__ import annotations

import base64
import struct

import numpy as np

from archtool.report import plots


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", png[16:24])
    return w, h


def test_plot_helpers_give_pngs_of_the_requested_size():
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((2, 16000))).astype(np.float32)
    assert _png_size(plots.spectrogram_png(audio, 16000, width_px=360, height_px=110)) == (360, 110)
    assert _png_size(plots.spectrogram_pair_png(audio, audio * 0.5, 16000, width_px=400, height_px=240)) == (400, 240)
    assert _png_size(plots.bar_chart_png(["a", "b"], [1, 2], width_px=300, height_px=200)) == (300, 200)
    assert _png_size(plots.histogram_png([1.0, 2.0, float("nan"), None], width_px=300, height_px=200)) == (300, 200)
    uri = plots.png_data_uri(b"\x89PNG\r\n\x1a\nxyz")
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == b"\x89PNG\r\n\x1a\nxyz"


def test_spectrogram_shows_a_tone_where_it_is():
    sr = 16000
    t = np.arange(sr) / sr
    s_db, times, freqs = plots.spectrogram_db(np.sin(2 * np.pi * 3000 * t)[None], sr)
    assert abs(freqs[np.argmax(s_db.mean(axis=1))] - 3000) < 40
    assert times[-1] <= 1.0


def test_analysis_html_ranks_and_escapes():
    from archtool.analyze import analyze_audio
    from archtool.analyze.collection import FileResult
    from archtool.report.analysis_html import render_html

    sr = 16000
    t = np.arange(2 * sr) / sr
    clean = (0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t)))[None].astype(np.float32)
    clipped = np.clip(clean * 4, -0.5, 0.5)
    res = [FileResult("<a>.wav", profile=analyze_audio(clean, sr, path="<a>.wav")),
           FileResult("b.wav", profile=analyze_audio(clipped, sr, path="b.wav"),
                      thumbnail_png=plots.spectrogram_png(clipped, sr)),
           FileResult("c.wav", error="c.wav: not an audio file")]
    html = render_html(res)
    assert "&lt;a&gt;.wav" in html and "<a>.wav" not in html
    assert html.index("b.wav") < html.index("&lt;a&gt;.wav")  # the clipped file needs more restoration
    assert "c.wav: not an audio file" in html
    assert "http://" not in html and "https://" not in html
