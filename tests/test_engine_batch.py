"""The restore batch end to end through the real CLI: outputs, loudness, provenance, resume,
determinism, interruption, and every kind of bad input."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest

from archtool.audio.bext import audio_data_md5, read_bext
from archtool.audio.io import OutputSpec, probe, read_audio, write_audio
from archtool.audio.loudness import true_peak_dbtp
from conftest import speech_like, tone


def run_cli(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archtool", *args], capture_output=True, text=True,
                          timeout=timeout, **kw)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    """A small mixed collection: 24-bit WAV stereo, 16-bit FLAC mono in a sub-folder, an MP3,
    a name with spaces and non-ASCII characters."""
    d = tmp_path / "in"
    (d / "disc 2").mkdir(parents=True)
    music = np.concatenate([tone(220, 1.5, 44100, 2, 0.2), tone(330, 1.5, 44100, 2, 0.05)], axis=1)
    write_audio(d / "side_a.wav", music, 44100, OutputSpec("wav", 24))
    write_audio(d / "disc 2" / "speech.flac", speech_like(2.0, 16000), 16000, OutputSpec("flac", 16))
    write_audio(d / "Éte à l'ombre.flac", tone(660, 1.2, 22050, 1, 0.4), 22050, OutputSpec("flac", 24))
    src = d / "tmp.wav"
    write_audio(src, tone(500, 1.0, 44100, 2, 0.1), 44100, OutputSpec("wav", 16))
    from archtool.audio.ffmpeg import ffmpeg_executable

    subprocess.run([ffmpeg_executable(), "-v", "error", "-i", str(src), "-c:a", "libmp3lame", str(d / "lossy.mp3")],
                   check=True)
    src.unlink()
    return d


def test_restore_writes_normalised_copies_with_provenance(collection, tmp_path):
    before = tree_hashes(collection)
    out = tmp_path / "out"
    res = run_cli("restore", str(collection), "-o", str(out), "--jobs", "1")
    assert res.returncode == 0, res.stderr
    assert tree_hashes(collection) == before  # originals untouched
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["ok"] == 4 and report["summary"]["failed"] == 0
    expected = {"side_a.wav": ("side_a.wav", 24, "wav"), "disc 2/speech.flac": ("disc 2/speech.flac", 16, "flac"),
                "Éte à l'ombre.flac": ("Éte à l'ombre.flac", 24, "flac"), "lossy.mp3": ("lossy.flac", 24, "flac")}
    for row in report["files"]:
        out_rel, bits, fmt = expected[row["input"]]
        assert row["output"] == out_rel
        info_in, info_out = probe(collection / row["input"]), probe(out / out_rel)
        assert info_out.sample_rate == info_in.sample_rate and info_out.channels == info_in.channels
        assert info_out.bits_per_sample == bits
        y, sr = read_audio(out / out_rel)
        lufs = pyloudnorm.Meter(sr).integrated_loudness(y.T.astype(np.float64))
        assert lufs == pytest.approx(-23.0, abs=0.1)
        assert true_peak_dbtp(y) <= -1.0 + 0.01
        sidecar = json.loads((out / row["sidecar"]).read_text())
        assert sidecar["input"]["sha256"] == sha(collection / row["input"])
        assert sidecar["output"]["sha256"] == sha(out / out_rel)
        assert sidecar["output"]["audio_md5"] == audio_data_md5(out / out_rel)
        assert sidecar["chain"][-1]["restorer"] == "loudness"
    bext = read_bext(out / "side_a.wav")
    assert bext["version"] == 2 and bext["loudness_value"] == pytest.approx(-23.0, abs=0.1)
    assert bext["max_true_peak_level"] <= -1.0
    assert bext["coding_history"][0].startswith("A=PCM,F=44100,W=24,M=stereo,T=source pcm_s24le")
    assert any("loudness(gain_db=" in line for line in bext["coding_history"])
    assert all(line.startswith("A=PCM,F=44100") for line in bext["coding_history"])
    csv_lines = (out / "report.csv").read_text().splitlines()
    assert len(csv_lines) == 5 and csv_lines[0].startswith("input,status,output")


def test_rerun_resumes_and_same_settings_give_identical_bytes(collection, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert run_cli("restore", str(collection), "-o", str(a), "--jobs", "1").returncode == 0
    first = tree_hashes(a)
    first_rows = {r["input"]: r for r in json.loads((a / "report.json").read_text())["files"]}
    again = run_cli("restore", str(collection), "-o", str(a), "--jobs", "1")
    assert again.returncode == 0
    report = json.loads((a / "report.json").read_text())
    assert {r["status"] for r in report["files"]} == {"done"}
    for row in report["files"]:  # a resumed report still shows what was done to each file
        was = first_rows[row["input"]]
        for key in ("steps", "notes", "loudness_before_lufs", "loudness_after_lufs", "true_peak_after_dbtp",
                    "output_audio_md5", "output"):
            assert row[key] == was[key], (row["input"], key)
    audio = {k: v for k, v in first.items() if k.endswith((".wav", ".flac"))}
    assert {k: v for k, v in tree_hashes(a).items() if k in audio} == audio
    assert run_cli("restore", str(collection), "-o", str(b), "--jobs", "2").returncode == 0
    assert {k: v for k, v in tree_hashes(b).items() if k in audio} == audio  # 1 worker vs 2: same bytes
    changed = run_cli("restore", str(collection), "-o", str(a), "--jobs", "1", "--loudness", "-20")
    report = json.loads((a / "report.json").read_text())
    assert changed.returncode == 0 and {r["status"] for r in report["files"]} == {"ok"}


def test_format_option_and_no_normalize(collection, tmp_path):
    out = tmp_path / "o"
    assert run_cli("restore", str(collection / "side_a.wav"), "-o", str(out), "--format", "flac",
                   "--no-normalize", "--preset", "none").returncode == 0
    info = probe(out / "side_a.flac")
    assert info.codec == "flac" and info.bits_per_sample == 24
    x, _ = read_audio(collection / "side_a.wav")
    y, _ = read_audio(out / "side_a.flac")
    assert np.array_equal(x, y)  # no restoration, no normalisation: the samples are the input's


def test_output_inside_input_is_excluded_and_equal_is_refused(collection):
    inside = collection / "restored"
    assert run_cli("restore", str(collection), "-o", str(inside)).returncode == 0
    second = run_cli("restore", str(collection), "-o", str(inside))
    report = json.loads((inside / "report.json").read_text())
    assert second.returncode == 0 and len(report["files"]) == 4  # its own outputs are not inputs
    same = run_cli("restore", str(collection), "-o", str(collection))
    assert same.returncode == 2 and "must differ from the input folder" in same.stderr


def make_bad_inputs(d: Path) -> dict[str, str]:
    """Bad files and the words their error must contain."""
    d.mkdir(parents=True, exist_ok=True)
    good = tone(440, 1.0, 44100, 1)
    write_audio(d / "good.wav", good, 44100, OutputSpec("wav", 16))
    (d / "empty.wav").write_bytes(b"")
    (d / "text.mp3").write_text("not audio at all\n" * 50)
    data = (d / "good.wav").read_bytes()
    (d / "truncated.wav").write_bytes(data[:30])
    nan = good.copy()
    nan[0, 100] = np.nan
    write_audio(d / "nan.wav", nan, 44100, OutputSpec("wav", 32, True))
    inf = good.copy()
    inf[0, 5] = np.inf
    write_audio(d / "inf.wav", inf, 44100, OutputSpec("wav", 32, True))
    return {"empty.wav": "empty", "text.mp3": "not an audio file", "truncated.wav": "truncated.wav",
            "nan.wav": "NaN or infinite", "inf.wav": "NaN or infinite"}


def test_bad_inputs_fail_one_by_one_and_the_batch_goes_on(tmp_path):
    d = tmp_path / "bad"
    expect = make_bad_inputs(d)
    write_audio(d / "silent.flac", np.zeros((1, 44100), np.float32), 44100, OutputSpec("flac", 16))
    write_audio(d / "one_sample.wav", np.full((1, 1), 0.1, np.float32), 44100, OutputSpec("wav", 16))
    (d / "readme.txt").write_text("skip me")
    before = tree_hashes(d)
    out = tmp_path / "out"
    res = run_cli("restore", str(d), "-o", str(out), "--jobs", "2")
    assert res.returncode == 1
    assert tree_hashes(d) == before
    report = {r["input"]: r for r in json.loads((out / "report.json").read_text())["files"]}
    for name, words in expect.items():
        assert report[name]["status"] == "failed", name
        assert name in report[name]["error"] and words in report[name]["error"], report[name]["error"]
        assert name in res.stderr  # one line naming the file
    for name in ("good.wav", "silent.flac", "one_sample.wav"):
        assert report[name]["status"] == "ok", report[name]
    assert any("level kept" in n for n in report["silent.flac"]["notes"])
    assert any("level kept" in n for n in report["one_sample.wav"]["notes"])
    y, _ = read_audio(out / "silent.flac")
    assert not y.any()
    assert "readme.txt" not in report and any("readme.txt" in s["path"] for s in json.loads(
        (out / "report.json").read_text())["skipped"])
    leftovers = [p for p in out.rglob("*") if p.is_file() and p.stem.split(".")[0] in
                 {Path(n).stem for n in expect}]
    assert leftovers == []  # failed files leave nothing behind


def test_folder_without_audio_is_an_error(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    (d / "a.txt").write_text("hello")
    res = run_cli("restore", str(d), "-o", str(tmp_path / "o"))
    assert res.returncode == 1 and "no audio files found" in res.stderr


def test_unreadable_file_is_reported(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    write_audio(d / "ok.wav", tone(), 44100, OutputSpec("wav", 16))
    write_audio(d / "locked.wav", tone(), 44100, OutputSpec("wav", 16))
    (d / "locked.wav").chmod(0)
    out = tmp_path / "out"
    prefix: list[str] = []
    if os.geteuid() == 0:  # root reads anything: drop the capabilities that let it
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    res = subprocess.run([*prefix, sys.executable, "-m", "archtool", "restore", str(d), "-o", str(out),
                          "--jobs", "1"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr
    assert "locked.wav" in res.stderr and "permission denied" in res.stderr
    assert (out / "ok.wav").exists()


def test_full_disk_fails_the_file_cleanly(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    write_audio(d / "big.wav", tone(440, 3.0, 44100, 2), 44100, OutputSpec("wav", 24))
    out = tmp_path / "tiny"
    out.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(out)],
                             capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("cannot mount a tmpfs here (the disk-full path is also covered by test_engine_units)")
    try:
        res = run_cli("restore", str(d), "-o", str(out), "--jobs", "1")
        assert res.returncode == 1
        assert "big.wav" in res.stderr and "no space left" in res.stderr.lower()
        assert not (out / "big.wav").exists()
    finally:
        subprocess.run(["umount", str(out)])


def test_sigkill_leaves_no_partial_output_and_resume_completes(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    for i in range(4):  # engine mechanics only: --preset none keeps the run short
        write_audio(d / f"long{i}.flac", tone(200 + 50 * i, 20.0, 44100, 2, 0.1), 44100, OutputSpec("flac", 16))
    ref = tmp_path / "ref"
    assert run_cli("restore", str(d), "-o", str(ref), "--jobs", "1", "--preset", "none").returncode == 0
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "archtool", "restore", str(d), "-o", str(out), "--jobs", "1",
                             "--preset", "none", "--block-seconds", "0.5"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list(out.glob("*.flac")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for p in out.glob("*.flac"):  # whatever exists is complete and correct
        assert sha(p) == sha(ref / p.name)
    res = run_cli("restore", str(d), "-o", str(out), "--jobs", "1", "--preset", "none")
    assert res.returncode == 0
    for p in ref.glob("*.flac"):
        assert sha(out / p.name) == sha(p)
    assert not (out / ".archtool-tmp").exists()
