"""Files ffmpeg cannot open but libsndfile can (Sound Designer II with its AppleDouble
resource fork, HTK) are probed, decoded, streamed and restored through libsndfile."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from archtool.audio.ffmpeg import ffmpeg_executable
from archtool.audio.io import BlockReader, probe, read_audio, rescued
from archtool.errors import AudioReadError
from conftest import speech_like, tone


def _ffmpeg_opens(path: Path) -> bool:
    proc = subprocess.run([ffmpeg_executable(), "-v", "error", "-i", str(path), "-f", "null", "-"],
                          capture_output=True)
    return proc.returncode == 0


@pytest.fixture
def legacy(tmp_path: Path) -> dict[str, tuple[Path, np.ndarray, int]]:
    """A stereo Sound Designer II file (data fork + ``._`` resource fork) and a mono HTK file,
    with the int16 samples each holds."""
    d = tmp_path / "legacy"
    d.mkdir()
    stereo = np.concatenate([tone(220, 3.0, 22050, 1, 0.3), speech_like(3.0, 22050, seed=3)[:1] * 0.5])
    mono = speech_like(3.0, 16000, seed=4)[0] * 0.5
    sf.write(d / "session.sd2", stereo.T, 22050, format="SD2", subtype="PCM_16")
    sf.write(d / "corpus.htk", mono, 16000, format="HTK", subtype="PCM_16")
    out = {}
    for name, rate in (("session.sd2", 22050), ("corpus.htk", 16000)):
        ints, _ = sf.read(d / name, dtype="int16", always_2d=True)
        out[name] = (d / name, (ints.T / 32768.0).astype(np.float32), rate)
    return out


def test_legacy_formats_ffmpeg_rejects_are_read_by_libsndfile(legacy):
    for name, (path, expected, rate) in legacy.items():
        assert not _ffmpeg_opens(path), f"{name}: ffmpeg opens it, so the rescue is not exercised"
        info = probe(path)
        assert rescued(info) and info.container.startswith(path.suffix[1:])
        assert (info.sample_rate, info.channels, info.bits_per_sample) == (rate, expected.shape[0], 16)
        assert info.codec == "pcm_16" and info.lossless
        assert info.duration_s == pytest.approx(3.0, abs=0.01)
        audio, sr = read_audio(path)
        assert sr == rate and np.array_equal(audio, expected)
        blocks = list(BlockReader(path, 10_000))
        assert all(b.shape[1] == 10_000 for b in blocks[:-1])
        assert np.array_equal(np.concatenate(blocks, axis=1), expected)
        part, _ = read_audio(path, start_s=0.5, duration_s=0.25)
        start = int(0.5 * rate)
        assert np.array_equal(part, expected[:, start:start + int(0.25 * rate)])


def test_restore_normalises_legacy_files_and_leaves_them_untouched(legacy, tmp_path):
    src = next(iter(legacy.values()))[0].parent
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in src.iterdir()}
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "archtool", "restore", str(src), "-o", str(out), "--jobs", "1"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in src.iterdir()} == before
    report = json.loads((out / "report.json").read_text())
    # the AppleDouble "._session.sd2" is a hidden file: not an input
    assert report["summary"]["ok"] == 2 and report["summary"]["failed"] == 0
    for row in report["files"]:
        y, sr = read_audio(out / row["output"])
        assert row["output"].endswith(".flac") and sr == legacy[row["input"]][2]
        assert pyloudnorm.Meter(sr).integrated_loudness(y.T.astype(np.float64)) == pytest.approx(-23.0, abs=0.1)


def test_the_resource_fork_is_what_makes_sound_designer_ii_readable(legacy, tmp_path):
    path = legacy["session.sd2"][0]
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(path, alone / path.name)  # data fork only, as a careless copy leaves it
    with pytest.raises(AudioReadError, match="not an audio file"):
        probe(alone / path.name)
