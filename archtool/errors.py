"""Typed errors. Messages name the file or value at fault and, where possible, what to do.

Only ``archtool.cli`` turns these into exit codes; library code raises and never exits.
"""
from __future__ import annotations

from pathlib import Path


class ArchtoolError(Exception):
    """Base class of every error archtool raises on purpose."""


class UsageError(ArchtoolError):
    """Bad arguments or options (exit status 2)."""


class AudioReadError(ArchtoolError):
    """A file could not be probed or decoded as audio."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class AudioWriteError(ArchtoolError):
    """An output could not be written (disk full, permissions, encoder failure)."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class InvalidAudioError(ArchtoolError):
    """Decoded samples are unusable (NaN/inf, wrong shape)."""

    def __init__(self, path: str | Path | None, reason: str):
        self.path = None if path is None else str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path else reason)


class RecipeError(ArchtoolError):
    """A degradation recipe or restoration preset file is invalid.

    The message names the file, the line (when known) and the problem.
    """

    def __init__(self, path: str | Path, problem: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{path}, line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


class CheckpointError(ArchtoolError):
    """A model checkpoint is missing, corrupt or incompatible."""


class UnknownNameError(ArchtoolError):
    """An unknown restorer, unit, preset or recipe name; lists the known ones."""

    def __init__(self, what: str, name: str, known: list[str]):
        self.name = name
        import difflib

        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        super().__init__(f"unknown {what} {name!r}.{hint} Known: {', '.join(sorted(known))}")
