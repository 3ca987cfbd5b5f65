"""Test helpers for worker processes (Linux /proc): find a test's descendant processes and
SIGKILL the first one caught holding a matching file open, i.e. a worker in the middle of a file."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable


def descendants(pid: int) -> list[int]:
    """Process ids of every descendant of ``pid``."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def open_paths(pid: int) -> list[str]:
    """Paths of the files ``pid`` holds open (empty when it is gone or not ours to read)."""
    try:
        fds = Path(f"/proc/{pid}/fd")
        return [os.readlink(fds / fd) for fd in os.listdir(fds)]
    except OSError:
        return []


def kill_first_holding(matches: Callable[[str], bool], killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the first descendant of this process seen holding open a path for which
    ``matches`` is true; its pid is appended to ``killed``. Polls every 10 ms until then or
    until ``stop`` is set (run it in a thread beside the batch)."""
    while not stop.is_set() and not killed:
        for pid in descendants(os.getpid()):
            if any(matches(p) for p in open_paths(pid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    continue
                killed.append(pid)
                return
        time.sleep(0.01)


def spill_of(out: Path) -> Callable[[str], bool]:
    """Matches the spill files (restored signal between the two loudness passes) of ``out``."""
    tmp = str(out / ".archtool-tmp")
    return lambda p: p.startswith(tmp) and p.endswith(".f32")


def shipped_spill(p: str) -> bool:
    """Matches a Dask worker's spill file for a job whose bytes were shipped to it."""
    return "archtool-ship-" in p and p.endswith(".f32")
