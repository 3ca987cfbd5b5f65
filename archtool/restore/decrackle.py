"""``decrackle``: remove crackle (dense small impulses) with the declick machinery tuned
for short, frequent events."""
from __future__ import annotations

from typing import ClassVar

from archtool.dsp.declick import ClickSettings
from archtool.restore.declick import Declick
from archtool.restore.registry import register_restorer


@register_restorer("decrackle")
class Decrackle(Declick):
    """Crackle: like ``declick`` with a lower threshold (8), short events (<= 1 ms, 0.1 ms
    tail) and three passes. Params as for ``declick``."""

    name: ClassVar[str] = "decrackle"
    kinds: ClassVar[tuple[str, ...]] = ("crackle",)
    context_s: ClassVar[float] = 0.1
    defaults: ClassVar[ClickSettings] = ClickSettings(threshold=8.0, max_len_ms=1.0, post_ms=0.1, passes=3)
