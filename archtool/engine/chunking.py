"""Re-chunk a stream of ``(channels, n)`` blocks into cores with context on each side.

Restorers declare the context they need; processing each core with that context and
cropping gives the same samples whatever the block size (the invariance tests check
it). At the file's edges the context is simply shorter.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import numpy as np

if TYPE_CHECKING:
    from archtool.restore.base import Step


def iter_with_context(blocks: Iterable[np.ndarray], core: int,
                      context: int) -> Iterator[tuple[np.ndarray, int, int]]:
    """Yield ``(extended, left, core_len)``: ``extended[:, left:left + core_len]`` is the core.

    ``core`` samples per core (the last may be shorter); up to ``context`` samples of
    real signal on each side. Memory holds about ``core + 2 * context`` samples.
    """
    core = max(1, int(core))
    context = max(0, int(context))
    buf: np.ndarray | None = None  # holds [left context | pending core samples | ...]
    left = 0  # samples of left context at the start of buf
    for block in blocks:
        buf = block if buf is None else np.concatenate([buf, block], axis=1)
        while buf.shape[1] - left >= core + context:
            ext = buf[:, : left + core + context]
            yield ext, left, core
            keep_from = left + core - context
            new_left = context
            if keep_from < 0:
                new_left, keep_from = left + core, 0
            buf = buf[:, keep_from:]
            left = new_left
    if buf is not None:
        while buf.shape[1] - left > 0:
            n = min(core, buf.shape[1] - left)
            yield buf[:, : left + n + context], left, n
            keep_from = max(0, left + n - context)
            left = left + n - keep_from
            buf = buf[:, keep_from:]


def apply_with_context(blocks: Iterable[np.ndarray], fn: Callable[[np.ndarray], np.ndarray],
                       core: int, context: int) -> Iterator[np.ndarray]:
    """Apply ``fn`` (same-length in, same-length out) to each core with its context."""
    for ext, left, n in iter_with_context(blocks, core, context):
        yield fn(ext)[:, left:left + n]


def restore_chunks(blocks: Iterable[np.ndarray], sample_rate: int, steps: Sequence["Step"], core: int,
                   device: str = "cpu", seed: int = 0, done: list[list[dict]] | None = None
                   ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The engine's restoration loop: ``(input core, restored core)`` for each core of
    ``core`` samples, restored by ``steps`` with the chain's context and told where it starts
    in the file (``chunk_offset``), so restorers that keep to the file's grid give the same
    samples whatever the block size. ``done``: see :func:`archtool.restore.chain.run_steps`."""
    from archtool.restore.chain import context_samples, run_steps

    core_start = 0
    for ext, left, n in iter_with_context(blocks, core, context_samples(steps, sample_rate)):
        out = run_steps(ext, sample_rate, steps, device, seed, offset=core_start - left, core=(left, n), done=done)
        yield ext[:, left:left + n], out
        core_start += n


def restore_in_blocks(audio: np.ndarray, sample_rate: int, steps: Sequence["Step"], block_s: float,
                      device: str = "cpu", seed: int = 0) -> np.ndarray:
    """``steps`` over an in-memory ``(C, N)`` signal exactly as the engine runs a file in
    blocks of ``block_s`` seconds (:func:`restore_chunks`); for checking that a restorer's
    output does not depend on the block size."""
    block = max(1, int(block_s * sample_rate))
    blocks = (audio[:, i:i + block] for i in range(0, audio.shape[1], block))
    return np.concatenate([out for _, out in restore_chunks(blocks, sample_rate, steps, block, device, seed)],
                          axis=1)
