"""`archtool degrade`: outputs, labels, bad inputs, and identical bytes whatever --jobs is."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from archtool.audio.io import OutputSpec, read_audio, write_audio
from archtool.cli.app import app
from archtool.errors import UsageError

SR = 16000


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clean")
    (root / "sub").mkdir()
    rng = np.random.default_rng(0)
    for name, seconds in (("a.wav", 2.2), ("sub/b.flac", 1.1)):
        t = np.arange(int(seconds * SR)) / SR
        x = 0.3 * np.sin(2 * np.pi * 440 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
        x = (x + 0.01 * rng.standard_normal(t.size)).astype(np.float32)[None]
        write_audio(root / name, x, SR, OutputSpec("flac" if name.endswith("flac") else "wav", 24))
    (root / "notes.wav").write_text("this is not audio")
    return root


def run(*args: str):
    return CliRunner().invoke(app, ["degrade", *args])


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_jobs_1_and_2_give_identical_bytes(clean_dir, tmp_path):
    common = ["--recipe", "mixed-archive", "--clip-seconds", "0.5", "--count", "8", "--seed", "3"]
    r1 = run(str(clean_dir), "-o", str(tmp_path / "j1"), *common, "--jobs", "1")
    r2 = run(str(clean_dir), "-o", str(tmp_path / "j2"), *common, "--jobs", "2")
    for r in (r1, r2):
        assert r.exit_code == 1, r.output  # notes.wav is not audio
        assert "notes.wav" in r.output and "8 clips written" in r.output
    a, b = tree_bytes(tmp_path / "j1"), tree_bytes(tmp_path / "j2")
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    assert sum(k.startswith("degraded/") for k in a) == 8
    r3 = run(str(clean_dir), "-o", str(tmp_path / "s4"), *common[:-1], "4")
    assert tree_bytes(tmp_path / "s4")["labels.jsonl"] != a["labels.jsonl"]


def test_outputs_match_labels(clean_dir, tmp_path):
    out = tmp_path / "o"
    r = run(str(clean_dir / "a.wav"), "-o", str(out), "--recipe", "gaps", "--clip-seconds", "1.0",
            "--rate", "8000", "--count", "3")
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in (out / "labels.jsonl").read_text().splitlines()]
    assert [ln["clip"] for ln in lines] == ["a_0000", "a_0001", "a_0000_r1"]
    src, _ = read_audio(clean_dir / "a.wav")
    for ln in lines:
        clean, rate = read_audio(out / ln["clean"])
        deg, rate2 = read_audio(out / ln["degraded"])
        assert rate == rate2 == 8000 == ln["sample_rate"] and clean.shape == deg.shape == (1, 8000)
        for a, b in ln["gap_intervals_s"]:
            assert np.all(deg[:, round(a * rate):round(b * rate)] == 0)
        assert ln["gap_intervals_s"] and set(ln["kinds"]) == {"gaps"}
        if ln["snr_db"] is not None:
            snr = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((deg - clean.astype(np.float64)) ** 2))
            assert abs(snr - ln["snr_db"]) < 1e-3  # float WAV keeps labels exact
    first, _ = read_audio(out / "clean" / "a_0000.wav")
    assert abs(np.sqrt(np.mean(first ** 2)) - np.sqrt(np.mean(src[:, :SR] ** 2))) < 0.01


def test_bad_recipe_is_a_usage_error_naming_the_line(clean_dir, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[units]]\nunit = "noise"\nsnr_db = "loud"\n')
    r = run(str(clean_dir), "-o", str(tmp_path / "o"), "--recipe", str(bad))
    assert isinstance(r.exception, UsageError)  # app.main maps it to exit status 2
    assert f"{bad}, line 3" in str(r.exception) and "expected a number" in str(r.exception)
    assert not (tmp_path / "o").exists()


def test_list_units(tmp_path):
    r = run("--list-units")
    assert r.exit_code == 0 and "surface_noise" in r.output and "mixed-archive" in r.output


def test_exit_status_through_the_console_entry_point(clean_dir, tmp_path):
    import subprocess
    import sys

    bad = subprocess.run([sys.executable, "-m", "archtool", "degrade", str(clean_dir / "notes.wav"), "-o",
                          str(tmp_path / "o"), "--recipe", "tape"], capture_output=True, text=True)
    assert bad.returncode == 1 and "notes.wav" in bad.stderr
    usage = subprocess.run([sys.executable, "-m", "archtool", "degrade", str(clean_dir), "-o", str(tmp_path / "u"),
                            "--recipe", "no-such-recipe"], capture_output=True, text=True)
    assert usage.returncode == 2 and "no-such-recipe" in usage.stderr


def test_a_clean_source_with_a_dc_offset_is_named_and_its_clips_marked(tmp_path):
    """A "clean" recording with its own DC offset would make every clip's labels wrong (no
    dc_offset listed, yet one present): degrade names the file and marks its clips."""
    src = tmp_path / "src"
    src.mkdir()
    t = np.arange(32000) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 330 * t)
    write_audio(src / "offset.wav", (tone + 0.02)[None].astype(np.float32), 16000, OutputSpec("wav", 32, float=True))
    write_audio(src / "centred.wav", tone[None].astype(np.float32), 16000, OutputSpec("wav", 32, float=True))
    out = tmp_path / "out"
    r = run(str(src), "-o", str(out), "--recipe", "rar", "--clip-seconds", "1")
    assert r.exit_code == 0, r.output
    flat = "".join(r.output.split())  # rich may fold long lines
    assert "offset.wav" in flat and "DCoffsetupto0.0200(-34dBFS)" in flat
    assert "centred.wav" not in flat
    lines = [json.loads(x) for x in (out / "labels.jsonl").read_text().splitlines()]
    marked = {x["source"]: x.get("clean_dc_offset") for x in lines}
    assert marked["offset.wav"] == pytest.approx(0.02, abs=1e-4) and marked["centred.wav"] is None
