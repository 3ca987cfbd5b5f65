"""The Restorer protocol and the Step record of a plan.

A restorer is one small class with a ``name``, the defect ``kinds`` it handles, and
``process(audio, sample_rate, params, device) -> audio`` on torch tensors of shape
``(channels, samples)``. ``process`` is pure: it returns a new tensor, leaves its
input and its own configuration unchanged, and draws randomness only from
``params["seed"]`` when it needs any. It declares ``context_s``, the audio it needs
on each side of a chunk, so the engine (not the restorer) can cut long files into
overlapping chunks. Optionally, a static ``describe(params, sample_rate, n_samples) -> dict``
says in advance what a step will do, for the reports and sidecars
(:func:`archtool.restore.planning.step_record`; the inpainting restorer lists its fills).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:  # torch is imported lazily: loudness-only runs and empty plans never need it
    import torch


@dataclass
class Step:
    """One step of a restoration plan: a registered restorer and its parameters."""

    restorer: str
    params: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def history_line(self) -> str:
        """A one-line description for the BWF CodingHistory and reports."""
        params = ",".join(f"{k}={_short(v)}" for k, v in sorted(self.params.items())
                          if not isinstance(v, (list, dict)))
        return f"{self.restorer}({params})" if params else self.restorer


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


@runtime_checkable
class Restorer(Protocol):
    """What every restorer provides (DSP and neural alike)."""

    name: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]]
    context_s: ClassVar[float]

    def process(self, audio: "torch.Tensor", sample_rate: int, params: dict[str, Any],
                device: "torch.device | str" = "cpu") -> "torch.Tensor":
        """Restore ``audio`` ``(channels, samples)`` float32; returns the same shape."""
        ...
