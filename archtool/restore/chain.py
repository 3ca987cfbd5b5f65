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


def run_steps(audio: np.ndarray, sample_rate: int, steps: Sequence[Step],
              device: str = "cpu", seed: int = 0, offset: int = 0) -> np.ndarray:
    """Apply ``steps`` in order to float32 ``(channels, samples)`` audio.

    Each restorer receives its step's params plus ``seed`` (the file's seed), so
    stochastic restorers are reproducible and independent of worker placement, and
    ``chunk_offset``: the index in the whole file of ``audio``'s first sample, so
    restorers working on a block grid align it to the file, not to the chunk.
    """
    if not steps:
        return audio
    import torch

    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    with _single_torch_thread(device):
        for step in steps:
            restorer = get_restorer(step.restorer)
            params = dict(step.params)
            params.setdefault("seed", seed)
            params["chunk_offset"] = int(offset)
            x = restorer.process(x, sample_rate, params, device)
            if x.shape != audio.shape:
                raise RuntimeError(f"restorer {step.restorer} changed the shape {tuple(audio.shape)} -> {tuple(x.shape)}")
    return x.detach().to("cpu").numpy().astype(np.float32, copy=False)
