"""Locate the ffmpeg binary: the one on PATH, else the one bundled by imageio-ffmpeg."""
from __future__ import annotations

import functools
import os
import shutil


@functools.cache
def ffmpeg_executable() -> str:
    """Path of the ffmpeg binary used for all decoding and encoding.

    ``ARCHTOOL_FFMPEG`` overrides; otherwise ffmpeg on PATH; otherwise the binary
    shipped in the imageio-ffmpeg wheel, so a plain ``pip install`` is enough.
    """
    override = os.environ.get("ARCHTOOL_FFMPEG")
    if override:
        return override
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()
