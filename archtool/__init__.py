"""archtool: bulk restoration of archival audio.

The library is usable without the CLI::

    from archtool import analyze_file, restore_file, restore_batch, degrade_audio
    profile = analyze_file("disc_01.wav")          # Profile: findings per defect kind
    result = restore_file("disc_01.wav", "restored")  # dict: status, output, loudness...

Heavy parts (torch, the analysers, the degraders) load on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from archtool.audio.io import probe, read_audio, write_audio  # noqa: E402

_LAZY = {
    "analyze_file": "archtool.analyze", "analyze_audio": "archtool.analyze",
    "Profile": "archtool.analyze", "Finding": "archtool.analyze",
    "restore_file": "archtool.api", "restore_batch": "archtool.api", "restore_audio": "archtool.api",
    "RestoreSettings": "archtool.engine.settings",
    "degrade_audio": "archtool.degrade", "degrade_corpus": "archtool.degrade", "Degrader": "archtool.degrade",
    "apply_unit": "archtool.degrade",
    "integrated_loudness": "archtool.audio.loudness", "normalize_loudness": "archtool.audio.loudness",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'archtool' has no attribute {name!r}")


__all__ = ["__version__", "probe", "read_audio", "write_audio", *_LAZY]
