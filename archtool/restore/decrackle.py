"""``decrackle``: remove crackle (dense small impulses) with the declick machinery tuned
for short, frequent events."""
from __future__ import annotations

from typing import ClassVar

from archtool.dsp.declick import ClickSettings
from archtool.restore.declick import Declick
from archtool.restore.registry import register_restorer


@register_restorer("decrackle")
class Decrackle(Declick):
    """Crackle: like ``declick`` with a lower threshold (8), a short tail (0.1 ms), runs
    joined only when 2 samples apart, three passes; dense crackle gives runs of up to 3 ms,
    and runs over 0.5 ms need 2.5 x the threshold (voiced speech onsets are not crackle).
    Params as for ``declick``."""

    name: ClassVar[str] = "decrackle"
    kinds: ClassVar[tuple[str, ...]] = ("crackle",)
    context_s: ClassVar[float] = 0.1
    defaults: ClassVar[ClickSettings] = ClickSettings(threshold=8.0, max_len_ms=3.0, post_ms=0.1, passes=3,
                                                      merge=2, short_ms=0.5, long_factor=2.5)
