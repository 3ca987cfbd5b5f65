"""The run manifest (OUT_DIR/manifest.json): what was done to each input, for resuming.

Per input (keyed by its path relative to the input root): input sha256, settings
hash, output path and sha256, status and error. Written atomically after each file
by the parent process only, so it is always valid, even after SIGKILL.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from archtool.engine.atomic import write_text_atomic

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


class Manifest:
    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / MANIFEST_NAME
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                if data.get("version") == MANIFEST_VERSION:
                    self.entries = dict(data.get("files", {}))
            except (OSError, ValueError):
                self.entries = {}  # unreadable manifest: start afresh, outputs get rewritten

    def get(self, relpath: str) -> dict[str, Any] | None:
        return self.entries.get(relpath)

    def record(self, relpath: str, entry: dict[str, Any]) -> None:
        self.entries[relpath] = entry
        self.save()

    def save(self) -> None:
        data = {"version": MANIFEST_VERSION, "files": dict(sorted(self.entries.items()))}
        write_text_atomic(self.path, json.dumps(data, indent=1) + "\n", self.out_dir)


def is_done(entry: dict[str, Any] | None, input_sha256: str, settings_hash: str, out_dir: Path) -> bool:
    """True when ``entry`` shows this exact input was restored with these settings and
    its output is still there."""
    if not entry or entry.get("status") != "ok":
        return False
    if entry.get("input_sha256") != input_sha256 or entry.get("settings_hash") != settings_hash:
        return False
    out = entry.get("output")
    return bool(out) and (Path(out_dir) / out).exists()


def resumed_figures(out_dir: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """The figures of a file an earlier run restored, read back from its sidecar, so that a
    resumed run's report still shows its chain, notes and loudness (not just "done")."""
    try:
        side = json.loads((Path(out_dir) / entry["sidecar"]).read_text())
    except (KeyError, TypeError, OSError, ValueError):
        return {}
    loud, out = side.get("loudness") or {}, side.get("output") or {}
    found = {
        "steps": [s for s in side.get("chain") or [] if s.get("restorer") != "loudness"],
        "notes": list(side.get("notes") or []),
        "loudness_before_lufs": loud.get("before_lufs"), "loudness_after_lufs": loud.get("after_lufs"),
        "loudness_range_lu": loud.get("range_lu"), "true_peak_after_dbtp": loud.get("true_peak_after_dbtp"),
        "output_audio_md5": out.get("audio_md5"), "output_format": out.get("format"),
        "output_bits": out.get("bits"), "coding_history": side.get("coding_history"),
    }
    return {k: v for k, v in found.items() if v is not None}
