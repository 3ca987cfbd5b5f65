"""A temporary float32 store for a restored signal between the two loudness passes.

Holds interleaved samples on disk in OUT_DIR's temporary folder, so memory stays
bounded however long the file is.
"""
from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Iterator

import numpy as np

from archtool.engine.atomic import tmp_dir


class Spill:
    def __init__(self, out_dir: Path, channels: int):
        self.path = tmp_dir(out_dir) / f"{uuid.uuid4().hex}.f32"
        self.channels = channels
        self.samples = 0
        self._f = open(self.path, "wb")

    def write(self, block: np.ndarray) -> None:
        self._f.write(np.ascontiguousarray(block.T, dtype="<f4").data)  # no bytes copy
        self.samples += block.shape[1]

    def close_writing(self) -> None:
        if not self._f.closed:
            self._f.close()

    def blocks(self, block_samples: int) -> Iterator[np.ndarray]:
        """Read back ``(channels, n)`` float64 blocks in order."""
        self.close_writing()
        nbytes = int(block_samples) * self.channels * 4
        with open(self.path, "rb") as f:
            while data := f.read(nbytes):
                yield np.frombuffer(data, dtype="<f4").reshape(-1, self.channels).T.astype(np.float64)

    def remove(self) -> None:
        self.close_writing()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
