"""The restoration chain: a learned restorer gives the same bytes whatever torch's thread budget."""
from __future__ import annotations

import numpy as np
import torch

from archtool.restore.base import Step
from archtool.restore.chain import run_steps
from conftest import tone


def test_learned_restorer_bytes_do_not_depend_on_the_thread_budget():
    x = tone(220, 1.0, 16000, 1, 0.3) + tone(1500, 1.0, 16000, 1, 0.05)
    steps = [Step("bwe", {"cutoff_hz": 2000.0, "gain": 1.0, "content": "speech"}, "test")]
    before = torch.get_num_threads()
    try:
        outputs = []
        for threads in (2, 1):
            torch.set_num_threads(threads)
            outputs.append(run_steps(x, 16000, steps, "cpu", seed=3))
            assert torch.get_num_threads() == threads  # the budget is restored afterwards
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(outputs[0], outputs[1])
    assert not np.array_equal(outputs[0], x)  # the band above 2 kHz was generated
