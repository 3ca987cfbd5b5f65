"""`archtool restore --gaps FILE` end to end: listed intervals are filled and reported."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from archtool.audio.io import OutputSpec, read_audio, write_audio

from conftest import tone


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archtool", *args], capture_output=True, text=True,
                          env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
                               "PYTHONPATH": str(Path(__file__).resolve().parents[1])}, timeout=300)


def test_restore_fills_user_listed_gaps_and_refuses_bad_lists(tmp_path):
    sr = 16000
    x = tone(440.0, 3.0, sr, amplitude=0.3)
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
    good.write_text("file,start,end\nt.wav,0.5,0.515\nt.wav,1.9,2.2\n")
    res = _run("restore", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--gaps", str(good),
               "--no-normalize", "--format", "wav")
    assert res.returncode == 0, res.stderr
    side = json.loads((tmp_path / "out" / "t.archtool.json").read_text())
    steps = [s for s in side["chain"] if s["restorer"] == "inpaint"]
    assert steps and [0.5, 0.515] in steps[0]["params"]["intervals_s"]
    # every filled interval is listed for audit, with what was done to it (the 300 ms gap's
    # surroundings recur earlier in the tone, so it was copied from there), in the sidecar,
    # the batch report and the HTML report
    fills = steps[0]["fills"]
    assert [(f["start_s"], f["end_s"], f["method"]) for f in fills] == [(0.5, 0.515, "ar"), (1.9, 2.2, "exemplar")]
    assert fills[1]["similarity"] > 0.99 and 0.0 <= fills[1]["source_s"] <= 1.9 - 0.3 - 0.25
    assert "recur" in fills[1]["reason"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["files"][0]["steps"][0]["fills"] == fills
    page = (tmp_path / "out" / "report.html").read_text()
    assert "0.500-0.515 s (15 ms): <b>ar</b>" in page and "1.900-2.200 s (300 ms): <b>exemplar</b>" in page
    # and shown up close, before and after, captioned with where the copy came from
    assert "Filled gaps, up close" in page and page.count("<figcaption>0.500-0.515 s: ar</figcaption>") == 1
    assert f"<figcaption>1.900-2.200 s: exemplar from {fills[1]['source_s']:.2f} s</figcaption>" in page
    # an archivist who wants no copied material says so; the sidecar shows what was done instead
    res = _run("restore", str(tmp_path / "in"), "-o", str(tmp_path / "out_nocopy"), "--gaps", str(good),
               "--no-normalize", "--format", "wav", "--no-gap-copies")
    assert res.returncode == 0, res.stderr
    side = json.loads((tmp_path / "out_nocopy" / "t.archtool.json").read_text())
    step = next(s for s in side["chain"] if s["restorer"] == "inpaint")
    assert step["params"]["inpaint_copies"] is False
    assert [f["method"] for f in step["fills"]] == ["ar", "ar_steady"]  # a steady tone: predicted instead
    y, _ = read_audio(tmp_path / "out" / "t.wav")
    ref = tone(440.0, 3.0, sr, amplitude=0.3)[0]
    for a, b in ((8000, 8240), (int(1.9 * sr), int(2.2 * sr))):
        snr = 10 * np.log10(np.sum(ref[a:b] ** 2) / np.sum((ref[a:b] - y[0, a:b]) ** 2))
        assert snr > 25.0
