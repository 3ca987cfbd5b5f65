"""The fixed names of defect kinds, shared by profiles, reports, labels and presets."""
from __future__ import annotations

KINDS: tuple[str, ...] = (
    "noise",
    "background",
    "reverb",
    "clicks",
    "crackle",
    "surface_noise",
    "hum",
    "rumble",
    "gaps",
    "bandlimit",
    "clipping",
    "wow",
    "dc_offset",
)


def check_kind(kind: str) -> str:
    """Return ``kind`` if it is a known defect kind, else raise UnknownNameError."""
    if kind not in KINDS:
        from archtool.errors import UnknownNameError

        raise UnknownNameError("defect kind", kind, list(KINDS))
    return kind
