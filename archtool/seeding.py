"""Deterministic seeds derived from a global seed and a key (usually a relative path).

Seeds never depend on worker index or process, so a batch gives the same bytes
with one worker or many, locally or on a cluster.
"""
from __future__ import annotations

import hashlib

import numpy as np


def seed_for(base_seed: int, key: str) -> int:
    """A 63-bit seed from ``(base_seed, key)``, stable across platforms and runs."""
    digest = hashlib.sha256(f"{int(base_seed)}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def rng_for(base_seed: int, key: str) -> np.random.Generator:
    """A numpy Generator seeded by :func:`seed_for`."""
    return np.random.default_rng(seed_for(base_seed, key))
