"""`archtool restore --gaps FILE` end to end: listed intervals are filled and reported."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from archtool.audio.io import OutputSpec, read_audio, write_audio
from archtool.restore.inpaint import recipe_for

from conftest import tone


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archtool", *args], capture_output=True, text=True,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                               "PYTHONPATH": str(Path(__file__).resolve().parents[1])}, timeout=300)


def test_restore_fills_user_listed_gaps_and_refuses_bad_lists(tmp_path):
    sr = 16000
    x = tone(440.0, 1.5, sr, amplitude=0.3)
    x[:, 8000:8240] = 0.0  # 15 ms dropout
    (tmp_path / "in").mkdir()
    write_audio(tmp_path / "in" / "t.wav", x, sr, OutputSpec("wav", 24))
    bad = tmp_path / "bad.csv"
    bad.write_text("t.wav,0.5,0.51\nt.wav,0.9,zero\n")
    res = _run("restore", str(tmp_path / "in"), "-o", str(tmp_path / "out_bad"), "--gaps", str(bad))
    assert res.returncode == 1
    assert f"{bad}, line 2" in res.stderr and "bad time" in res.stderr
    assert not (tmp_path / "out_bad" / "t.wav").exists()

    good = tmp_path / "gaps.csv"
    good.write_text("file,start,end\nt.wav,0.5,0.515\nt.wav,0.9,1.2\n")
    res = _run("restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--gaps", str(good),
               "--no-normalize", "--format", "wav")
    assert res.returncode == 0, res.stderr
    side = json.loads((tmp_path / "out" / "t.archtool.json").read_text())
    steps = [s for s in side["chain"] if s["restorer"] == "inpaint"]
    assert steps and [0.5, 0.515] in steps[0]["params"]["intervals_s"]
    # every filled interval is listed for audit, with the method its length gets, in the
    # sidecar, the batch report and the HTML report
    fills = steps[0]["fills"]
    assert [(f["start_s"], f["end_s"], f["method"]) for f in fills] == [(0.5, 0.515, "ar"), (0.9, 1.2, recipe_for(300.0, sr).kind)]
    assert fills[1].get("anchor_ms") == recipe_for(300.0, sr).anchor_ms
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["files"][0]["steps"][0]["fills"] == fills
    page = (tmp_path / "out" / "report.html").read_text()
    assert "0.500-0.515 s (15 ms): <b>ar</b>" in page and "0.900-1.200 s (300 ms)" in page
    y, _ = read_audio(tmp_path / "out" / "t.wav")
    ref = tone(440.0, 1.5, sr, amplitude=0.3)[0, 8000:8240]
    snr = 10 * np.log10(np.sum(ref ** 2) / np.sum((ref - y[0, 8000:8240]) ** 2))
    assert snr > 25.0
