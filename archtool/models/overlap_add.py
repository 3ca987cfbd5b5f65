"""Run a segment model over a long signal: overlapping segments, batched, windowed overlap-add.

Any model that maps a batch of fixed-length mono segments ``(B, 1, segment)`` to the same
shape can restore a ``(channels, samples)`` signal of any length with :func:`overlap_add`.
Segments are cut with hop ``segment * (1 - overlap)`` from a zero-padded copy, run through
the model ``batch_size`` at a time on ``device``, multiplied by a synthesis window and
summed; the sum of the windows is divided out (the normaliser), so any overlap and window
reconstruct the identity model exactly.
"""
from __future__ import annotations

from typing import Callable

import torch

SegmentFn = Callable[[torch.Tensor], torch.Tensor]


def synthesis_window(segment: int, kind: str = "hann", device: torch.device | str = "cpu",
                     taper: int | None = None) -> torch.Tensor:
    """A ``(segment,)`` window: ``hann`` (periodic), ``tukey`` (flat top with raised-cosine
    tapers of ``taper`` samples, default segment/8) or ``boxcar``."""
    if kind == "hann":
        return torch.hann_window(segment, periodic=True, device=device)
    if kind == "boxcar":
        return torch.ones(segment, device=device)
    if kind == "tukey":
        taper = max(1, min(segment // 2, taper or segment // 8))
        w = torch.ones(segment, device=device)
        ramp = 0.5 - 0.5 * torch.cos(torch.pi * (torch.arange(taper, device=device) + 0.5) / taper)
        w[:taper], w[-taper:] = ramp, ramp.flip(0)
        return w
    raise ValueError(f"unknown window {kind!r} (hann, tukey, boxcar)")


def segment_hop(segment: int, overlap: float) -> int:
    """Samples between the starts of neighbouring segments in :func:`overlap_add`; segment
    ``i`` starts ``i * hop - (segment - hop)`` samples after the signal's first."""
    return max(1, int(round(segment * (1 - overlap))))


@torch.no_grad()
def overlap_add(fn: SegmentFn, audio: torch.Tensor, segment: int, overlap: float = 0.5,
                batch_size: int = 16, device: torch.device | str = "cpu", window: str = "hann",
                pad_mode: str = "constant") -> torch.Tensor:
    """Apply ``fn`` to ``audio`` ``(C, N)`` in overlapping segments; returns ``(C, N)``.

    ``fn`` receives ``(B, 1, segment)`` float32 tensors on ``device`` (B <= batch_size;
    channels are treated as independent mono signals) and returns the same shape.
    ``overlap`` in ``[0, 1)`` is the fraction shared by neighbouring segments; with the
    ``tukey`` window the crossfade spans exactly the overlap, so a small overlap (0.25)
    costs little extra compute. The result
    has ``audio``'s dtype and device. ``pad_mode`` pads both ends by one hop's worth of
    context (``constant`` zeros or ``reflect``).
    """
    if audio.dim() != 2:
        raise ValueError(f"audio must be (channels, samples), got shape {tuple(audio.shape)}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if overlap == 0 and window != "boxcar":
        raise ValueError(f"window {window!r} needs overlap > 0 (its edges are near zero); use boxcar")
    channels, n = audio.shape
    if n == 0:
        return audio.clone()
    hop = segment_hop(segment, overlap)
    lead = segment - hop
    n_seg = max(1, -(-(n + lead) // hop))
    total = (n_seg - 1) * hop + segment
    x = audio.to(device=device, dtype=torch.float32)
    tail = total - lead - n
    if pad_mode == "reflect" and min(lead, tail) < n:
        x = torch.nn.functional.pad(x[:, None], (lead, tail), mode="reflect")[:, 0]
    else:
        x = torch.nn.functional.pad(x, (lead, tail))
    frames = x.unfold(1, segment, hop).reshape(channels * n_seg, 1, segment)
    win = synthesis_window(segment, window, device, taper=lead)  # tukey tapers span the overlap
    out = torch.empty_like(frames)
    for start in range(0, frames.shape[0], batch_size):
        out[start:start + batch_size] = fn(frames[start:start + batch_size])
    out = (out[:, 0] * win).reshape(channels, n_seg, segment)
    acc = torch.zeros(channels, total, device=device)
    norm = torch.zeros(total, device=device)
    for i in range(n_seg):
        acc[:, i * hop:i * hop + segment] += out[:, i]
        norm[i * hop:i * hop + segment] += win
    y = acc[:, lead:lead + n] / norm[lead:lead + n].clamp_min(1e-6)
    return y.to(device=audio.device, dtype=audio.dtype)
