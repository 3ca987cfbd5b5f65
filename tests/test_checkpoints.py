"""Every shipped checkpoint: small, loadable without unpickling objects, and described by a
metadata sidecar that says the same as the metadata embedded in the weights file."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from archtool.models.checkpoint import PACKAGED_DIR, load_checkpoint

SHIPPED = sorted(PACKAGED_DIR.glob("*.pt"))
MAX_BYTES = 20 * 1024 * 1024


def test_checkpoints_are_shipped() -> None:
    assert len(SHIPPED) >= 5, f"only {len(SHIPPED)} checkpoints in {PACKAGED_DIR}"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_checkpoint(path: Path) -> None:
    assert path.stat().st_size <= MAX_BYTES
    blob = torch.load(path, map_location="cpu", weights_only=True)
    assert set(blob) == {"state_dict", "meta_json"}
    assert all(isinstance(t, torch.Tensor) for t in blob["state_dict"].values())
    state, meta = load_checkpoint(path)
    assert sum(t.numel() for t in state.values()) > 0
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert meta == sidecar, f"{path.name}: embedded metadata differs from {path.with_suffix('.json').name}"
    assert meta.get("model"), f"{path.name}: metadata names no model"
    described = json.dumps(meta).lower()
    assert "data" in meta or "trained_on" in meta or "training" in meta, f"{path.name}: no training data recorded"
    assert "licen" in described or "cc0" in described or "public domain" in described, \
        f"{path.name}: no data licence recorded"
