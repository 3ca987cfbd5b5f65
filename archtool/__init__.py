"""archtool: bulk restoration of archival audio.

The library is usable without the CLI::

    from archtool import read_audio, write_audio, restore_file, analyze_file
"""
from __future__ import annotations

__version__ = "0.1.0"

from archtool.audio.io import probe, read_audio, write_audio  # noqa: E402

__all__ = ["__version__", "probe", "read_audio", "write_audio"]
