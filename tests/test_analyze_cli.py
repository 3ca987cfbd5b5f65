"""`archtool analyze`: outputs follow the command contract; bad input is reported per file."""
from __future__ import annotations

import csv
import hashlib
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from archtool.audio.io import OutputSpec, write_audio
from archtool.kinds import KINDS

SR = 16000


def _tone_file(path, seed, clip=False, hum=False):
    rng = np.random.default_rng(seed)
    t = np.arange(2 * SR) / SR
    x = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.7 * t)) + 0.01 * rng.standard_normal(t.size)
    if clip:
        x = np.clip(x * 3, -0.5, 0.5)
    if hum:
        x = x + 0.05 * np.sin(2 * np.pi * 50 * t)
    write_audio(path, x[None].astype(np.float32), SR, OutputSpec("flac", 16))


def _run(*args):
    return subprocess.run([sys.executable, "-c", "from archtool.cli.app import main; main()", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    d = tmp_path_factory.mktemp("in")
    (d / "sub dir").mkdir()
    _tone_file(d / "a.flac", 1)
    _tone_file(d / "sub dir" / "clipped é.flac", 2, clip=True)
    (d / "broken.wav").write_bytes(b"RIFF....not really audio")
    before = {p: _sha(p) for p in d.rglob("*") if p.is_file()}
    out = tmp_path_factory.mktemp("rep")
    proc = _run("analyze", d, "-o", out, "--jobs", "2")
    return d, out, proc, before


def test_exit_status_and_one_line_error(batch):
    d, out, proc, before = batch
    assert proc.returncode == 1
    err = [ln for ln in proc.stderr.splitlines() if "broken.wav" in ln]
    assert err and re.search(r"broken\.wav: .*audio", err[0])
    # inputs untouched
    assert {p: _sha(p) for p in d.rglob("*") if p.is_file()} == before


def test_analysis_json_contract(batch):
    _, out, _, _ = batch
    data = json.loads((out / "analysis.json").read_text())
    assert data["version"] == 1
    assert len(data["files"]) == 2 and len(data["failed"]) == 1
    assert "broken.wav" in data["failed"][0]["path"] and data["failed"][0]["error"]
    for rec in data["files"]:
        for key in ("path", "duration_s", "rate", "channels", "loudness_lufs", "findings"):
            assert key in rec
        assert rec["rate"] == SR and rec["channels"] == 1 and abs(rec["duration_s"] - 2.0) < 1e-3
        assert [f["kind"] for f in rec["findings"]] == list(KINDS)
        for f in rec["findings"]:
            assert set(f) == {"kind", "detected", "severity", "confidence", "measures"}
    clipped = next(r for r in data["files"] if "clipped" in r["path"])
    fc = next(f for f in clipped["findings"] if f["kind"] == "clipping")
    assert fc["detected"] and fc["measures"]["clipped_fraction"] > 0.1
    assert data["summary"]["counts"]["clipping"] >= 1
    assert data["summary"]["ranking"][0]["path"] == clipped["path"]


def test_analysis_csv_one_row_per_file(batch):
    _, out, _, _ = batch
    rows = list(csv.DictReader((out / "analysis.csv").open(encoding="utf-8")))
    assert len(rows) == 3
    assert {r["status"] for r in rows} == {"ok", "failed"}
    ok = [r for r in rows if r["status"] == "ok"]
    for r in ok:
        for k in KINDS:
            assert r[f"{k}_detected"] in ("0", "1")
        assert float(r["noise_snr_db"]) > 0


def test_report_html_self_contained(batch):
    _, out, _, _ = batch
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 5  # 3 charts + 2 thumbnails
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert "broken.wav" in html and "clipped é.flac" in html


def test_single_file_and_table(tmp_path):
    _tone_file(tmp_path / "one.flac", 3, hum=True)
    proc = _run("analyze", tmp_path / "one.flac")
    assert proc.returncode == 0, proc.stderr
    assert "one.flac" in proc.stdout and "collection summary" in proc.stdout


def test_missing_path_is_usage_error(tmp_path):
    proc = _run("analyze", tmp_path / "nope")
    assert proc.returncode == 2
    assert "nope" in proc.stderr
