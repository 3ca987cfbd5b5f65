"""Atomic outputs: write into OUT_DIR/.archtool-tmp, then rename into place.

A run killed at any moment (even SIGKILL) leaves either the previous complete file
or nothing at the final path; leftovers in the temporary folder are removed at the
start of the next run.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

TMP_DIRNAME = ".archtool-tmp"


def tmp_dir(out_dir: Path) -> Path:
    d = Path(out_dir) / TMP_DIRNAME
    d.mkdir(parents=True, exist_ok=True)
    return d


def clean_tmp(out_dir: Path) -> None:
    """Remove leftovers of interrupted runs."""
    shutil.rmtree(Path(out_dir) / TMP_DIRNAME, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(final: Path, out_dir: Path) -> Iterator[Path]:
    """Yield a temporary path on the same filesystem; rename it to ``final`` on success.

    On any exception the temporary file is deleted and ``final`` is left untouched.
    """
    final = Path(final)
    tmp = tmp_dir(out_dir) / f"{uuid.uuid4().hex}{final.suffix}"
    try:
        yield tmp
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text_atomic(final: Path, text: str, out_dir: Path) -> None:
    with atomic_path(final, out_dir) as tmp:
        tmp.write_text(text, encoding="utf-8")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
