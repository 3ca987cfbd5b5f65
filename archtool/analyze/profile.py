"""Profile: the result of analysing one file (global measures plus one Finding per kind).

JSON-serialisable and versioned; ``restore`` plans its chain from it and reuses its
estimates (noise spectrum, hum frequency) so chunked processing stays consistent.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from archtool.kinds import check_kind

PROFILE_VERSION = 1


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays and non-finite floats into plain JSON values."""
    try:
        import numpy as np

        if isinstance(value, np.ndarray):
            return [_jsonable(v) for v in value.tolist()]
        if isinstance(value, np.generic):
            value = value.item()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@dataclass
class Finding:
    """One defect kind examined in one file.

    Attributes:
        kind: a name from ``archtool.kinds.KINDS``.
        detected: whether the defect is present.
        severity: 0 (none) .. 1 (severe).
        confidence: 0 .. 1, how sure the detector is of ``detected``.
        measures: the numbers behind the verdict, in named units (``snr_db``,
            ``cutoff_hz``, ``fundamental_hz``, ``intervals_s`` ...).
    """

    kind: str
    detected: bool
    severity: float = 0.0
    confidence: float = 1.0
    measures: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_kind(self.kind)
        self.severity = float(min(1.0, max(0.0, self.severity)))
        self.confidence = float(min(1.0, max(0.0, self.confidence)))

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Finding":
        return cls(d["kind"], bool(d["detected"]), d.get("severity", 0.0), d.get("confidence", 1.0),
                   dict(d.get("measures") or {}))


@dataclass
class Profile:
    """Analysis of one file: global measures and findings (one per kind examined)."""

    path: str
    duration_s: float
    sample_rate: int
    channels: int
    loudness_lufs: float | None = None
    true_peak_dbtp: float | None = None
    dc_offset: float | None = None
    findings: list[Finding] = field(default_factory=list)
    version: int = PROFILE_VERSION
    # what an archivist should know beyond the findings (e.g. the file decoded short of its
    # declared length, or is too short to judge)
    warnings: list[str] = field(default_factory=list)

    def finding(self, kind: str) -> Finding | None:
        """The finding for ``kind``, or None if that kind was not examined."""
        check_kind(kind)
        for f in self.findings:
            if f.kind == kind:
                return f
        return None

    def detected(self, kind: str) -> bool:
        f = self.finding(kind)
        return bool(f and f.detected)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["findings"] = [f.to_dict() for f in self.findings]
        return _jsonable(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Profile":
        return cls(
            path=d["path"], duration_s=d["duration_s"], sample_rate=d["sample_rate"],
            channels=d["channels"], loudness_lufs=d.get("loudness_lufs"),
            true_peak_dbtp=d.get("true_peak_dbtp"), dc_offset=d.get("dc_offset"),
            findings=[Finding.from_dict(f) for f in d.get("findings", [])],
            version=d.get("version", PROFILE_VERSION),
            warnings=list(d.get("warnings") or []),
        )
