"""RestoreSettings: every option that changes a restore run's output, and its hash."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from dataclasses import asdict, dataclass, field

from archtool import __version__
from archtool.audio.loudness import DEFAULT_TARGET_LUFS, DEFAULT_TRUE_PEAK_DBTP


@dataclass(frozen=True)
class RestoreSettings:
    """Options of a restore run.

    Attributes:
        preset: restoration preset name or TOML path.
        target_lufs / true_peak_dbtp: loudness target and true-peak ceiling.
        normalize: False leaves the level as restored.
        output_format: ``same`` | ``flac`` | ``wav``.
        keep_residual: also write input minus output (before normalisation).
        seed: global seed; per-file seeds derive from it and the relative path.
        block_s: seconds per processing block (memory bound, not results; see
            :func:`archtool.engine.batch.restore_job` for the one exception).
        gaps_file: optional CSV of user-listed gap intervals.
        extra: restorer options from the CLI (e.g. ``bwe_gain``).
    """

    preset: str = "auto"
    target_lufs: float = DEFAULT_TARGET_LUFS
    true_peak_dbtp: float = DEFAULT_TRUE_PEAK_DBTP
    normalize: bool = True
    output_format: str = "same"
    keep_residual: bool = False
    seed: int = 0
    block_s: float = 10.0
    gaps_file: str | None = None
    extra: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return asdict(self)

    def hash(self) -> str:
        """Stable hash of everything that changes output bytes (block size excluded)."""
        d = self.to_dict()
        d.pop("block_s")
        d["archtool_version"] = __version__
        # Files named by the settings change results through their contents, not their names.
        for key, name in (("preset_text", self.preset), ("gaps_text", self.gaps_file)):
            path = Path(name) if name else None
            d[key] = path.read_text(encoding="utf-8") if path and path.suffix and path.is_file() else None
        blob = json.dumps(d, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
