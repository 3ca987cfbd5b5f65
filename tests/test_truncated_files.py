"""Files that decode short of the length their header declares (a transfer cut off by a full
disk or a crashed recorder) are analysed and restored as far as they go, and say so."""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from archtool.analyze.analyzer import analyze_file
from archtool.analyze.collection import analysis_csv, analysis_json, analyze_paths
from archtool.audio.io import BlockReader, OutputSpec, probe, shortfall_note, write_audio
from conftest import speech_like


def _read_all(path: Path) -> BlockReader:
    with BlockReader(path, 4096) as reader:
        for _ in reader:
            pass
    return reader


def _cut(src: Path, dst: Path, share: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[:int(len(data) * share)])
    return dst


@pytest.fixture
def speech_files(tmp_path: Path) -> dict[str, Path]:
    audio = np.repeat(speech_like(4.0, 16000), 2, axis=0) * 0.5
    files = {}
    for fmt in ("flac", "wav", "aiff"):
        whole = tmp_path / f"whole.{fmt}"
        write_audio(whole, audio, 16000, OutputSpec(fmt, 24))
        files[fmt] = whole
        files[f"cut_{fmt}"] = _cut(whole, tmp_path / f"cut.{fmt}", 0.5)
    return files


@pytest.mark.parametrize("fmt", ["flac", "wav", "aiff"])
def test_a_file_cut_in_half_reports_what_is_missing(speech_files, fmt):
    whole, cut = speech_files[fmt], speech_files[f"cut_{fmt}"]
    assert _read_all(whole).shortfall_note() is None
    reader = _read_all(cut)
    decoded = reader.samples_read / 16000
    assert 1.5 < decoded < 2.5  # about half of the 4 s decodes
    note = reader.shortfall_note()
    assert note is not None and "4.00 s" in note
    missing = float(note.split("(")[1].split(" s missing")[0])
    assert abs(missing - (4.0 - decoded)) < 0.01


def test_small_differences_and_lossy_files_are_not_reported(speech_files):
    info = probe(speech_files["flac"])
    assert shortfall_note(info, int(16000 * (4.0 - 0.04))) is None  # within 50 ms: rounding
    assert shortfall_note(info, int(16000 * 3.9)) is not None
    lossy = dataclasses.replace(info, codec="mp3", bits_per_sample=None)
    assert shortfall_note(lossy, 16000) is None  # a lossy duration may be an estimate


def test_analysis_warns_and_records_the_truncation(speech_files):
    prof = analyze_file(speech_files["cut_flac"])
    assert any("truncated" in w for w in prof.warnings)
    assert prof.duration_s < 2.5
    assert analyze_file(speech_files["flac"]).warnings == []
    results = analyze_paths([speech_files["flac"], speech_files["cut_flac"]])
    doc = analysis_json(results)
    by_path = {Path(f["path"]).name: f for f in doc["files"]}
    assert by_path["whole.flac"]["warnings"] == []
    assert "truncated" in by_path["cut.flac"]["warnings"][0]
    rows = {Path(r["path"]).name: r for r in csv.DictReader(io.StringIO(analysis_csv(results)))}
    assert rows["whole.flac"]["warnings"] == "" and "truncated" in rows["cut.flac"]["warnings"]


def test_a_very_short_file_is_flagged(tmp_path):
    path = tmp_path / "blip.wav"
    write_audio(path, speech_like(0.2, 16000), 16000, OutputSpec("wav", 16))
    assert any("too short" in w for w in analyze_file(path).warnings)


def test_restore_notes_the_truncation_and_keeps_what_decodes(speech_files, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    cut = src / "cut.wav"
    cut.write_bytes(speech_files["cut_wav"].read_bytes())
    before = cut.read_bytes()
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "archtool", "restore", str(src), "-o", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads((out / "report.json").read_text())["files"]
    assert entry["status"] == "ok"
    assert any("truncated" in n and "4.00 s" in n for n in entry["notes"])
    page = (out / "report.html").read_text()
    assert "<p class=note>⚠ truncated or damaged" in page and "its header declares" in page
    restored = probe(out / entry["output"])
    assert abs(restored.duration_s - _read_all(cut).samples_read / 16000) < 0.02
    assert cut.read_bytes() == before  # the original is untouched
