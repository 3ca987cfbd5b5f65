"""Bounded memory: freed heap pages go back to the system between phases and whenever a
pass's footprint creeps (HeapCeiling), and the loudness pass (pass 2) works on blocks of its
own size, so a limited file's bytes do not depend on the block size chosen for the restorers."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from archtool.audio.io import OutputSpec, write_audio
from archtool.engine import memory
from archtool.engine.pipeline import RENDER_BLOCK, Job, process_file, render_block
from archtool.engine.settings import RestoreSettings
from archtool.audio.loudness import PeakLimiter

REPO = Path(__file__).resolve().parents[1]

_FRAGMENTED_HEAP = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from archtool.engine.memory import release_free_memory

def rss_mb():
    return next(int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmRSS"))

blocks = [np.ones(8000) for _ in range(3000)]  # 3000 x 64 KB, below glibc's mmap threshold: heap
keep = blocks[-1]  # the top of the heap stays in use, so free() alone cannot shrink it
del blocks
before = rss_mb()
released = release_free_memory()
print(before, rss_mb(), released)
"""


def test_release_free_memory_gives_freed_heap_pages_back():
    if memory._malloc_trim() is None:
        pytest.skip("this C library has no malloc_trim")
    out = subprocess.run([sys.executable, "-c", _FRAGMENTED_HEAP, str(REPO)], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    before, after, released = float(out[0]), float(out[1]), out[2] == "True"
    assert released and before - after > 120.0, (before, after)  # ~180 MB freed but resident before


_CREEPING_LOOP = """
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from archtool.engine.memory import HeapCeiling, resident_bytes

def mb():
    return resident_bytes() / 2**20

ceiling = HeapCeiling(slack_bytes=8 << 20, settle=3)
trims = []
for step in range(6):  # a steady loop: the same temporaries each step, no trims
    tmp = [np.ones(8000) for _ in range(200)]
    del tmp
    trims.append(ceiling.step())
blocks = [np.ones(8000) for _ in range(3000)]  # one step leaves ~180 MB of freed heap resident
keep = blocks[-1]
del blocks
before = mb()
trims.append(ceiling.step())
after = mb()
for step in range(3):  # the loop goes on above the freed pages' holder: level set anew once
    tmp = [np.ones(8000) for _ in range(200)]
    del tmp
    trims.append(ceiling.step())
print(before, after, *[int(t) for t in trims])
"""


def test_heap_ceiling_trims_only_when_the_footprint_creeps():
    if memory._malloc_trim() is None or memory.resident_bytes() is None:
        pytest.skip("no malloc_trim or /proc here")
    out = subprocess.run([sys.executable, "-c", _CREEPING_LOOP, str(REPO)], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    before, after, trims = float(out[0]), float(out[1]), [t == "1" for t in out[2:]]
    assert trims[:6] == [False] * 6  # a loop that holds its level is left alone (no page faults)
    assert trims[6] and before - after > 120.0, (before, after)  # a crept step is trimmed back
    assert trims[7:] == [False] * 3  # the level after a trim is the new reference: no trim per step


def test_render_block_depends_on_the_limiter_only():
    assert render_block(None) == RENDER_BLOCK
    assert render_block(PeakLimiter(44100)) == RENDER_BLOCK
    hi = PeakLimiter(384000)  # 8 contexts exceed the fixed size at very high rates
    assert render_block(hi) == 8 * hi.context > RENDER_BLOCK


@pytest.fixture(scope="module")
def limited_file(tmp_path_factory) -> Path:
    """8 s of quiet float32 stereo tone with loud clicks: normalising it needs the limiter."""
    rng = np.random.default_rng(7)
    sr = 44100
    t = np.arange(8 * sr) / sr
    x = np.stack([0.05 * np.sin(2 * np.pi * 220 * t), 0.05 * np.sin(2 * np.pi * 330 * t + 1.0)])
    x += 0.003 * rng.standard_normal(x.shape)
    for pos in rng.integers(100, x.shape[1] - 100, size=24):
        x[:, pos:pos + 30] += rng.choice([-0.9, 0.9]) * np.hanning(30)
    path = tmp_path_factory.mktemp("limited") / "clicks.wav"
    write_audio(path, x.astype(np.float32), sr, OutputSpec("wav", 32, True))
    return path


def test_limited_output_bytes_do_not_depend_on_the_block_size(limited_file, tmp_path):
    digests = {}
    for block_s in (0.5, 2.0):  # both whole multiples of the loudness meter's 100 ms step
        out = tmp_path / f"b{block_s:g}"
        res = process_file(Job(limited_file, "clicks.wav", "clicks"), RestoreSettings(preset="none", block_s=block_s),
                           out)
        assert res["status"] == "ok" and res["limited"], res
        assert res["output_float"] and res["true_peak_after_dbtp"] <= -1.0 + 0.05
        digests[block_s] = hashlib.sha256((out / res["output"]).read_bytes()).hexdigest()
    assert digests[0.5] == digests[2.0]
