"""Fixed-capacity stores for the streamed features (memory that does not grow with duration).

Each store keeps everything until a file fills it (short files are analysed exactly as
without a bound). Past that: :class:`SegmentStore` (per-frame series) keeps a uniform sample
of whole full-resolution segments; :class:`SampledRows` and :class:`EventStore` (per-chunk
estimates, residual events) keep a uniform sample of rows, each standing for ``step`` rows;
:class:`LevelRecords` and :class:`LowRuns` keep what the gap detector needs of the 5 ms
envelope (where it first and last rises above a level, and its runs below -60 dBFS) exactly.
"""
from __future__ import annotations

import numpy as np

class SampledRows:
    """Rows (per-chunk estimates) kept as a uniform sample of ``<= cap`` rows: row ``i`` of
    the full sequence is kept while ``i % step == 0``; each kept row stands for ``step``
    rows (exact while the file gives at most ``cap`` rows)."""

    def __init__(self, cap: int):
        self.cap = max(2, int(cap))
        self.step = 1
        self.index = 0
        self.rows: list = []

    def append(self, row) -> None:
        if self.index % self.step == 0:
            self.rows.append(row)
            if len(self.rows) > self.cap:
                # kept rows have indices 0, step, 2 step ...: the even positions are the
                # multiples of 2 x step
                self.rows = self.rows[::2]
                self.step *= 2
        self.index += 1

    def __len__(self) -> int:
        return len(self.rows)


class EventStore:
    """Parallel float64 columns of events (times, ratios ...) kept as a uniform sample of
    ``<= cap`` events; ``weight`` is how many events each kept one stands for."""

    def __init__(self, names: tuple[str, ...], cap: int):
        self.names = tuple(names)
        self.cap = max(2, int(cap) + (int(cap) & 1))
        self.step = 1
        self.offset = 0          # index (in the full event sequence) of the next event
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in self.names}
        self.count = 0

    def append(self, **cols: np.ndarray) -> None:
        n = len(next(iter(cols.values())))
        if n == 0:
            return
        idx = np.arange(self.offset, self.offset + n)
        self.offset += n
        keep = idx % self.step == 0
        for k in self.names:
            self.parts[k].append(np.asarray(cols[k], dtype=np.float64)[keep])
        self.count += int(np.count_nonzero(keep))
        while self.count > self.cap:
            # kept events have indices 0, step, 2 step ...: the even positions are the
            # multiples of 2 x step, which the next appends keep too
            for k in self.names:
                self.parts[k] = [np.concatenate(self.parts[k])[::2]]
            self.count = int(self.parts[self.names[0]][0].size)
            self.step *= 2

    def column(self, name: str) -> np.ndarray:
        v = self.parts[name]
        return np.concatenate(v) if v else np.zeros(0)

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for v in self.parts.values() for a in v))


class SegmentStore:
    """A time series of ``width`` columns kept as whole contiguous segments.

    Rows are grouped into segments of ``cap // segments`` rows. While the series fits in
    ``cap`` rows every segment is kept (exact); when it would exceed ``cap`` every other
    kept segment is dropped and from then on only one segment in ``stride`` is kept: a
    uniform sample of full-resolution excerpts spread over the whole file. Distribution
    statistics over the kept rows stay unbiased, and time-series analyses (spectral lines,
    decays) see full-resolution excerpts joined end to end.
    """

    def __init__(self, width: int, cap: int, segments: int = 8):
        self.width = int(width)
        self.seg_len = max(1, int(cap) // max(1, int(segments)))
        self.cap = self.seg_len * max(1, int(segments))
        self.stride = 1
        self.index = 0                           # rows seen
        self.kept: dict[int, list[np.ndarray]] = {}  # segment number -> row blocks
        self.count = 0

    def append(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows)
        if rows.ndim == 1:
            rows = rows[:, None]
        i = 0
        while i < rows.shape[0]:
            seg = self.index // self.seg_len
            take = min(rows.shape[0] - i, self.seg_len - self.index % self.seg_len)
            if seg % self.stride == 0:
                self.kept.setdefault(seg, []).append(rows[i:i + take].copy())
                self.count += take
                while self.count > self.cap:
                    self.stride *= 2
                    for s in [s for s in self.kept if s % self.stride]:
                        self.count -= sum(b.shape[0] for b in self.kept.pop(s))
            i += take
            self.index += take

    def values(self) -> np.ndarray:
        """The kept rows ``(n, width)`` in time order (segments joined end to end)."""
        blocks = [b for s in sorted(self.kept) for b in self.kept[s]]
        if not blocks:
            return np.zeros((0, self.width))
        return np.concatenate(blocks) if len(blocks) > 1 else blocks[0]

    @property
    def exact(self) -> bool:
        return self.stride == 1

    @property
    def nbytes(self) -> int:
        return int(sum(b.nbytes for v in self.kept.values() for b in v))


class LevelRecords:
    """Exact (to ``resolution`` dB) first and last index at which a level series exceeds
    any threshold, in bounded memory: the records of its running maximum from the start,
    and the maxima of its suffixes (a stack), each thinned to ``resolution`` dB steps."""

    def __init__(self, resolution: float = 0.01):
        self.res = float(resolution)
        self.first: list[tuple[int, float]] = []   # (index, value), values increasing
        self.last: list[tuple[int, float]] = []    # (index, value), values decreasing, index increasing
        self.index = 0

    def append(self, values: np.ndarray) -> None:
        v = np.asarray(values, dtype=np.float64)
        if v.size == 0:
            return
        top = self.first[-1][1] if self.first else -np.inf
        pm = np.maximum.accumulate(np.maximum(v, top))
        new = np.flatnonzero(pm > np.concatenate([[top], pm[:-1]]))
        # thin to resolution steps: keep an index where the running max rises by >= res
        for k in new:
            if not self.first or v[k] >= self.first[-1][1] + self.res:
                self.first.append((self.index + int(k), float(v[k])))
        # suffix maxima: a later block at least as loud dominates the earlier ones; only the
        # loudest block of this chunk and its own later suffix maxima can join the stack
        rev = np.maximum.accumulate(v[::-1])[::-1]
        cand = np.flatnonzero(v >= rev - self.res / 2)
        for k in cand:
            val = float(v[k])
            while self.last and self.last[-1][1] <= val + self.res / 2:
                self.last.pop()
            self.last.append((self.index + int(k), val))
        self.index += v.size

    def first_above(self, level: float) -> int | None:
        for i, val in self.first:
            if val > level:
                return i
        return None

    def last_above(self, level: float) -> int | None:
        for i, val in reversed(self.last):
            if val > level:
                return i
        return None

    @property
    def nbytes(self) -> int:
        return 16 * (len(self.first) + len(self.last))


class LowRuns:
    """Runs of a level series below ``ceiling`` (dB) at least ``min_len`` long: start, end
    (exclusive), highest value and the values, up to ``cap`` stored values (past that a run
    keeps only its start, end and highest value), and at most ``max_runs`` runs (later
    ones are counted in ``dropped``)."""

    def __init__(self, ceiling: float, cap: int, min_len: int = 1, max_runs: int = 65536):
        self.ceiling = float(ceiling)
        self.cap = int(cap)
        self.min_len = int(min_len)
        self.max_runs = int(max_runs)
        self.dropped = 0
        self.stored = 0
        self.runs: list[tuple[int, int, float, np.ndarray | None]] = []  # start, end, max, values
        self.open: tuple[int, list[np.ndarray]] | None = None
        self.index = 0

    def append(self, values: np.ndarray) -> None:
        v = np.asarray(values)
        if v.size == 0:
            return
        low = v < self.ceiling
        d = np.diff(np.concatenate([[0], low.astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
        if self.open is not None and (starts.size == 0 or starts[0] != 0):
            self._close(self.index)
        for a, b in zip(starts, ends):
            if a == 0 and self.open is not None:
                self.open[1].append(v[a:b].copy())
            else:
                self.open = (self.index + int(a), [v[a:b].copy()])
            if b < v.size:
                self._close(self.index + int(b))
        self.index += v.size

    def _close(self, end: int) -> None:
        start, parts = self.open
        self.open = None
        if end - start < self.min_len:
            return
        if len(self.runs) >= self.max_runs:
            self.dropped += 1
            return
        vals = np.concatenate(parts)
        keep = self.stored + vals.size <= self.cap
        self.runs.append((start, end, float(vals.max()), vals if keep else None))
        self.stored += vals.size if keep else 0

    def finish(self) -> list[tuple[int, int, float, np.ndarray | None]]:
        if self.open is not None:
            self._close(self.index)
        return self.runs

    @property
    def nbytes(self) -> int:
        return int(sum(24 + (0 if v is None else v.nbytes) for *_, v in self.runs))
