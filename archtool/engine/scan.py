"""Find the files of a batch: walk a folder (or take one file), skipping the output folder.

Audio is recognised by probing, not by extension alone: files with a known audio
extension are always candidates (so a broken one is reported, not skipped); other
files are probed, and those with no audio stream are skipped with a note.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from archtool.errors import AudioReadError, UsageError

AUDIO_EXTENSIONS = {
    ".wav", ".wave", ".bwf", ".rf64", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac",
    ".mp4", ".aif", ".aiff", ".aifc", ".wv", ".ape", ".wma", ".caf", ".au", ".snd", ".w64",
    ".sd2", ".sph", ".voc", ".htk",  # SD2, NIST SPHERE, Creative VOC, HTK: read by libsndfile where ffmpeg cannot (audio.io)
}
# Files archtool itself writes next to outputs; never treated as inputs.
_OWN_SUFFIXES = (".archtool.json",)
_SKIP_NAMES = {"manifest.json", "report.json", "report.csv", "report.html", "analysis.json",
               "analysis.csv", "labels.jsonl"}


@dataclass(frozen=True)
class Candidate:
    """A file found by the scan: its path, its path relative to the root, and its size."""

    path: Path
    relpath: str
    size: int


@dataclass(frozen=True)
class Skipped:
    """A file the scan left out, and why."""

    path: Path
    reason: str


def _is_within(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def scan(root: str | Path, exclude: str | Path | None = None) -> tuple[list[Candidate], list[Skipped]]:
    """List the audio candidates under ``root`` (recursively), largest first.

    ``exclude`` (usually OUT_DIR) and everything under it is left out. Hidden files
    and folders and archtool's own sidecars are ignored. Files without an audio
    extension are probed; those without audio are returned in the skipped list.
    """
    from archtool.audio.io import probe

    root = Path(root)
    if not root.exists():
        raise UsageError(f"{root}: no such file or folder")
    exclude_path = Path(exclude).resolve() if exclude is not None else None
    if root.is_file():
        files = [(root, root.name)]
    else:
        files = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            d = Path(dirpath)
            dirnames[:] = sorted(n for n in dirnames if not n.startswith(".")
                                 and not (exclude_path and _is_within(d / n, exclude_path)))
            for name in sorted(filenames):
                if name.startswith(".") or name.endswith(_OWN_SUFFIXES):
                    continue
                p = d / name
                files.append((p, p.relative_to(root).as_posix()))
    candidates: list[Candidate] = []
    skipped: list[Skipped] = []
    for path, rel in files:
        if path.suffix.lower() in AUDIO_EXTENSIONS:
            candidates.append(Candidate(path, rel, _size(path)))
            continue
        if path.name in _SKIP_NAMES:
            continue
        try:
            probe(path)
        except AudioReadError as exc:
            skipped.append(Skipped(path, f"not audio ({exc.reason})"))
            continue
        candidates.append(Candidate(path, rel, _size(path)))
    candidates.sort(key=lambda c: (-c.size, c.relpath))
    return candidates, skipped


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def find_audio_files(root: str | Path, exclude: str | Path | None = None) -> list[Path]:
    """Paths of the audio candidates under ``root``, sorted by relative path."""
    candidates, _ = scan(root, exclude)
    return [c.path for c in sorted(candidates, key=lambda c: c.relpath)]
