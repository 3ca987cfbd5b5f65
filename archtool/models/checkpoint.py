"""Model checkpoints: weights only (no pickled objects) plus a JSON metadata sidecar.

A checkpoint ``NAME.pt`` holds ``{"state_dict": {...tensors}, "meta_json": str}`` and
is loaded with ``torch.load(..., weights_only=True)``, so loading never runs code.
``NAME.json`` beside it repeats the metadata for people: how the model was trained,
on what data, and what it scored.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import torch

from archtool.errors import CheckpointError, UsageError

MAX_CHECKPOINT_BYTES = 20 * 1024 * 1024
PACKAGED_DIR = Path(__file__).resolve().parent.parent / "checkpoints"


def save_checkpoint(path: str | Path, state_dict: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``path`` (.pt) and ``path.with_suffix('.json')`` atomically.

    ``meta`` must be JSON-serialisable and should say: model name, architecture and
    its constructor arguments (``arch``), sample rate, training steps, data sources
    and licences, and validation metrics.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta_json = json.dumps(meta, indent=2, sort_keys=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save({"state_dict": tensors, "meta_json": meta_json}, tmp)
    os.replace(tmp, path)
    tmp_meta = path.with_name(f".{path.stem}.json.tmp{os.getpid()}")
    tmp_meta.write_text(meta_json + "\n")
    os.replace(tmp_meta, path.with_suffix(".json"))
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load ``(state_dict, meta)`` with ``weights_only=True``; CheckpointError on failure."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
        return blob["state_dict"], json.loads(blob["meta_json"])
    except Exception as exc:  # corrupt file, wrong format, pickled objects
        raise CheckpointError(f"{path}: not a valid archtool checkpoint ({exc})") from None


def packaged_checkpoints() -> list[Path]:
    """Checkpoints shipped inside the package (archtool/checkpoints/*.pt)."""
    return sorted(PACKAGED_DIR.glob("*.pt"))


_LOADED: dict[str, Any] = {}


def resolve_checkpoint(name_or_path: str | Path, packaged: dict[str, str], what: str) -> Path:
    """The file of a packaged checkpoint name (a key of ``packaged``) or of a ``.pt`` path;
    UsageError naming the known names when there is no such file."""
    path = PACKAGED_DIR / packaged[name_or_path] if name_or_path in packaged else Path(name_or_path)
    if not path.exists():
        raise UsageError(f"{name_or_path}: no such {what} checkpoint "
                         f"(give a .pt path or one of {', '.join(packaged)})")
    return path


def load_model(name_or_path: str | Path, *, packaged: dict[str, str], expected_model: str,
               build: Callable[[dict[str, Any]], "torch.nn.Module"], what: str) -> "torch.nn.Module":
    """A model from a packaged checkpoint name (a key of ``packaged``) or a ``.pt`` path.

    ``build(meta)`` constructs the architecture from the checkpoint's metadata; the
    weights are loaded, the model frozen for inference and cached per process (so each
    worker loads it once). Raises UsageError for an unknown name or missing file and
    CheckpointError for a checkpoint of another model or with mismatched weights.
    """
    path = resolve_checkpoint(name_or_path, packaged, what)
    key = str(path)
    if key not in _LOADED:
        state, meta = load_checkpoint(path)
        if meta.get("model") != expected_model:
            raise CheckpointError(f"{path}: not a {what} checkpoint (model={meta.get('model')!r})")
        model = build(meta)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not match the architecture ({exc})") from None
        _LOADED[key] = model.eval().requires_grad_(False)
    return _LOADED[key]
