"""Resolve ``--devices auto|cpu|cuda:0,cuda:1`` to a list of torch device names."""
from __future__ import annotations

import os

from archtool.errors import UsageError


def resolve_devices(spec: str = "auto") -> list[str]:
    """``auto``: every visible GPU, else ``["cpu"]``. Unknown or unavailable devices -> UsageError.

    torch (hundreds of MB) is imported only when a GPU could be there, so CPU-only and
    loudness-only runs stay light.
    """
    spec = (spec or "auto").strip().lower()
    if spec == "cpu" or (spec == "auto" and not _gpu_possible()):
        return ["cpu"]
    import torch

    n_gpu = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if spec == "auto":
        return [f"cuda:{i}" for i in range(n_gpu)] or ["cpu"]
    devices = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if part == "cpu":
            devices.append("cpu")
        elif part.startswith("cuda"):
            idx = int(part.split(":", 1)[1]) if ":" in part else 0
            if idx >= n_gpu:
                raise UsageError(f"--devices {spec}: {part} is not available ({n_gpu} GPU(s) visible)")
            devices.append(f"cuda:{idx}")
        else:
            raise UsageError(f"--devices: unknown device {part!r} (use auto, cpu or cuda:N)")
    return devices or ["cpu"]


def _gpu_possible() -> bool:
    """False when this machine clearly has no NVIDIA/AMD GPU device nodes."""
    from pathlib import Path

    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return False
    dev = Path("/dev")
    return any(dev.glob("nvidia[0-9]*")) or (dev / "kfd").exists() or not dev.exists()


def is_out_of_memory(exc: BaseException) -> bool:
    """True for torch's device out-of-memory error (``torch.cuda.OutOfMemoryError``)."""
    import sys

    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    return oom is not None and isinstance(exc, oom)


def free_device_memory(device: str) -> None:
    """Return cached GPU memory to the driver after an out-of-memory error (no-op on CPU)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
