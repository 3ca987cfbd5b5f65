"""Run a plan's steps over audio; the engine calls this on each chunk (with context)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import numpy as np

from archtool.restore.base import Step
from archtool.restore.registry import get_restorer


def context_samples(steps: Sequence[Step], sample_rate: int) -> int:
    """Samples of context each chunk needs on each side: the steps' contexts add up."""
    total = 0.0
    for step in steps:
        total += float(getattr(get_restorer(step.restorer), "context_s", 0.0))
    return int(np.ceil(total * sample_rate))


@contextmanager
def _single_torch_thread(device: str) -> Iterator[None]:
    """Run CPU restorers on one torch thread, whatever the worker's budget.

    oneDNN picks its convolution kernels by thread count, and they round differently
    (1 and 2 threads differ by ~1e-6), so a learned restorer's bytes would depend on how
    many workers shared the cores. Parallelism is across files instead.
    """
    import torch

    if not str(device).startswith("cpu"):
        yield
        return
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


def _touching_core(records: list[dict], offset: int, left: int | None, core: tuple[int, int] | None,
                   length: int, sample_rate: int) -> list[dict]:
    """The records whose ``[start_s, end_s)`` touches the core (all of ``audio`` without one)."""
    a = offset + (0 if left is None else left)
    b = a + (length if core is None else core[1])
    return [r for r in records if r["end_s"] * sample_rate > a and r["start_s"] * sample_rate < b]


def run_steps(audio: np.ndarray, sample_rate: int, steps: Sequence[Step],
              device: str = "cpu", seed: int = 0, offset: int = 0,
              core: tuple[int, int] | None = None,
              done: list[list[dict]] | None = None) -> np.ndarray:
    """Apply ``steps`` in order to float32 ``(channels, samples)`` audio.

    Each restorer receives its step's params plus ``seed`` (the file's seed), so
    stochastic restorers are reproducible and independent of worker placement, and
    ``chunk_offset``: the index in the whole file of ``audio``'s first sample, so
    restorers working on a block grid align it to the file, not to the chunk.

    ``core`` (``(start, length)`` in ``audio``): only those samples are wanted (the engine's
    chunk without its context). Each restorer is told, in ``params["needed"]`` (``(start,
    stop)`` in the audio it receives), where its output still matters: the core plus the
    context the *remaining* steps need (it may skip work elsewhere: the inpainting restorer
    fills only the gaps there). After the step the audio is cut down to that span, so a step
    with a long context (inpainting's exemplar search) costs the later, heavier steps
    nothing; returns the core only.

    ``done`` (one list per step): what each restorer reports it did (records with file times
    ``start_s`` / ``end_s``, appended to ``params["report_to"]``; the inpainting restorer
    reports every gap it filled and how), keeping those that touch the core.
    """
    if not steps:
        return audio if core is None else audio[:, core[0]:core[0] + core[1]]
    import torch

    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    left = None if core is None else int(core[0])
    with _single_torch_thread(device):
        for i, step in enumerate(steps):
            restorer = get_restorer(step.restorer)
            params = dict(step.params)
            params.setdefault("seed", seed)
            params["chunk_offset"] = int(offset)
            if done is not None:
                params["report_to"] = []
            if left is not None:  # where this step's output still matters: the core and the later steps' context
                need = context_samples(steps[i + 1:], sample_rate)
                params["needed"] = (max(0, left - need), min(x.shape[-1], left + core[1] + need))
            shape = tuple(x.shape)
            x = restorer.process(x, sample_rate, params, device)
            if done is not None:
                done[i].extend(_touching_core(params["report_to"], offset, left, core, x.shape[-1], sample_rate))
            if tuple(x.shape) != shape:
                raise RuntimeError(f"restorer {step.restorer} changed the shape {shape} -> {tuple(x.shape)}")
            if left is not None:
                a, b = params["needed"]
                x, offset, left = x[:, a:b], offset + a, left - a
    out = x.detach().to("cpu").numpy().astype(np.float32, copy=False)
    return out if left is None else out[:, left:left + core[1]]
