"""Restorer ``inpaint``: fill gaps and dropouts, choosing the recipe by gap length.

Four recipes (:class:`Recipe`), all built on the Janssen AR interpolation from both
sides (:func:`archtool.dsp.janssen.ar_fill`), which joins the known samples smoothly by
construction:

- ``ar``: Janssen AR alone.
- ``ar_topup``: the Janssen fill, with every STFT bin of the gap's frames that it leaves
  below ``floor`` times the U-Net's predicted magnitude raised to that level (the AR's
  phase kept), over a few projections that re-impose the known samples. Where the AR
  continues the signal (tonal, predictable parts) nothing changes, so its waveform SNR is
  kept; where LSAR decays towards silence (the middle of longer gaps, noisy bands) the
  spectrogram U-Net (:mod:`archtool.models.unet_inpaint`) supplies the level.
- ``unet``: the U-Net's magnitudes for the STFT frames the gap touches, the phase from
  gap-only fast Griffin-Lim (momentum 0.99, known samples held fixed) started from the
  Janssen fill.
- ``blend``: the ``unet`` fill and the Janssen fill combined per STFT bin
  (:func:`spectral_blend`). SNR weighs a bin by its energy, LSD counts every bin alike:
  in the loud bins (where a fill at the right level but with an unknown phase costs most
  SNR) the magnitude is pulled from the network's towards what the Janssen fill carries,
  on the Janssen fill's phase; the quiet bins keep the network's fill.

Whatever the length, ``auto`` first looks for the gap's surroundings elsewhere in the
recording (:mod:`archtool.dsp.exemplar`): when the 250 ms before and after it both recur within
:data:`EXEMPLAR_SEARCH_S` with a normalised correlation of at least :data:`EXEMPLAR_SIMILARITY`
(0.95 up to ~70 ms, 0.8 beyond: a repeated bar, a loop, a steady tone), the passage between the recurrences is copied in
(method ``exemplar``, cross-faded from the Janssen fill over 10 ms at each edge), keeping the
phase right where every predictor decays or guesses. Otherwise, a gap whose surroundings are
steady enough to predict goes to AR (``ar_steady``), and the rest to the length's recipe.

On recordings above the model's rate (44.1 or 48 kHz against 22.05 kHz), a network-based fill
has nothing above the model's Nyquist; its top band is then topped up with noise shaped like
the surroundings (:func:`archtool.dsp.band_fill.top_up_band`, seeded by the gap's place in the
file), so a long gap is not a hole in the hiss or the cymbals.

A U-Net recipe may anchor its target magnitudes to the Janssen fill's near the gap edges
(``anchor_ms``), where LSAR is right and the network's smooth guess is not.

Every recipe that uses the U-Net caps its predicted magnitudes, per frequency bin, at the
loudest the known frames around the gap reached in that bin (:func:`cap_to_context`), so a
network surprised by unfamiliar material cannot put a burst louder than its surroundings
into the gap.

A top-up with ``floor = ceiling = 1`` puts the U-Net's magnitudes on the Janssen fill's
phase. A recipe may also scale its departure from the Janssen fill per band
(:func:`band_gain`: e.g. the AR's low band with the network's high band, or the average
of the two fills); the ``auto`` table does not use that at present (it did not raise the
cross-validated score on the training clips).

The U-Net-based recipes are cross-faded (raised cosine) from the Janssen fill over
``ar_ramp_ms`` (10 ms) at each gap edge, inside the gap. ``auto`` takes the recipe from
:data:`AUTO_RECIPES` (per model and length, chosen on training clips by
``benchmarks/inpaint.py --tune``). A 3 ms cross-fade *outside* the gap (``border_ms``)
scored worse on every measure in an earlier round, so ``border_ms`` defaults to 0.

Samples outside the gaps (and outside ``border_ms`` when set) are bit-identical to
the input. The restorer declares ``context_s`` = the exemplar search reach (6 s) plus 1.25 s:
a gap up to 1 s is filled identically whatever the chunking, the exemplar decision included
(the U-Net window is the gap plus max(64 frames, half the gap) per side); longer gaps near a
boundary may differ slightly between chunks. The engine cuts each chunk down after this step
to what the later steps need, so the long context costs them nothing.
Before the run, :func:`plan_fills` describes each interval (its recipe, and the rules that may
replace it); afterwards the restorer reports what it did to each (``report_to``).

Models: ``speech16k`` (16 kHz layout) serves rates up to 16 kHz, ``music22k`` the
higher rates; the gap's neighbourhood is resampled to the model rate and the fill
resampled back. Params (all optional): ``intervals_s`` ([[start, end], ...],
seconds from the start of the file; when absent, interior runs of digital silence
of at least 8 ms are filled), ``chunk_offset`` (samples) or ``offset_s`` (seconds):
where this chunk starts in the file (the engine's convention, see
``archtool.restore.classic.chunk_offset``), ``method`` (``auto`` | ``ar`` | ``ar_topup`` |
``unet`` | ``blend`` | ``exemplar``), ``ar_max_ms`` (set: ``auto`` is AR up to it and ``unet`` beyond, the earlier
policy), ``border_ms``, ``xfade_ms`` (overrides the recipes' ``ar_ramp_ms``), ``max_gap_ms``,
``model`` (``auto``, a packaged model name or a checkpoint path), ``iterations``
(Griffin-Lim iterations of the ``unet`` and ``blend`` recipes), ``copies`` (default true;
false: ``auto`` never copies from elsewhere in the recording; ``archtool restore
--no-gap-copies``), ``needed`` (``(start, stop)``
samples of this chunk: only gaps touching them are filled), ``report_to`` (a list: the
records of what was filled, with file times, are appended to it; see
``archtool.restore.chain.run_steps``). ``method="exemplar"`` copies the best match whatever
its similarity (AR where there is none).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from archtool.dsp.band_fill import top_up_band
from archtool.dsp.exemplar import CONTEXT_MS as EXEMPLAR_CONTEXT_MS
from archtool.dsp.exemplar import exemplar_fill, find_exemplar
from archtool.dsp.janssen import ar_fill, ar_order_for, bidirectional_extrapolate, prediction_agreement
from archtool.models.checkpoint import PACKAGED_DIR
from archtool.restore.classic import chunk_offset
from archtool.restore.gap_fills import (BLEND_PAD_MS, BLEND_WINDOW_MS, ar_order_bounded, band_gain,
                                        finish_fill, ramp_blend, spectral_blend, steady_fill, unet_base_fill)
from archtool.restore.gap_plan import (AUTO_RECIPES, DEFAULT_RECIPES, EXEMPLAR_MAX_MS, EXEMPLAR_MIN_MS,
                                       EXEMPLAR_RAMP_MS, EXEMPLAR_SEARCH_S, EXEMPLAR_SIMILARITY, MAX_GAP_MS,
                                       MIN_ZERO_RUN_S, PREDICTABLE_AGREEMENT, RECIPE_KINDS, XFADE_MS, Recipe,
                                       copies_allowed, describe_fill, exemplar_threshold, fill_report,
                                       model_for_rate, plan_fills, recipe_for, zero_runs)
from archtool.restore.registry import register_restorer
from archtool.restore.unet_filler import CONTEXT_FRAMES, GL_ITERATIONS, UNetFiller, cap_to_context

BORDER_MS = 0.0
# On recordings above the model's rate, the network-based fills get their band above
# TOP_UP_FROM x the model's Nyquist topped up with noise shaped like the surroundings
# (:func:`archtool.dsp.band_fill.top_up_band`); the fill alone has nothing there.
TOP_UP_BAND = True
TOP_UP_FROM = 0.9
PACKAGED_MODELS = {"speech16k": "inpaint_speech16k.pt", "music22k": "inpaint_music22k.pt"}

# The library's names for gap filling, wherever they live (gap_plan: recipes and plans;
# gap_fills: how a fill is composed; unet_filler: the network), importable from here.
__all__ = [
    "inpaint", "InpaintRestorer", "Recipe", "UNetFiller", "AUTO_RECIPES", "DEFAULT_RECIPES", "plan_fills",
    "fill_report", "recipe_for", "model_for_rate", "exemplar_threshold", "copies_allowed", "zero_runs",
    "cap_to_context", "steady_fill", "ramp_blend", "band_gain", "spectral_blend", "finish_fill",
    "unet_base_fill", "ar_order_bounded", "BORDER_MS", "XFADE_MS", "MAX_GAP_MS", "MIN_ZERO_RUN_S",
    "GL_ITERATIONS", "CONTEXT_FRAMES", "PREDICTABLE_AGREEMENT", "EXEMPLAR_SIMILARITY", "EXEMPLAR_MIN_MS",
    "EXEMPLAR_MAX_MS", "EXEMPLAR_SEARCH_S", "EXEMPLAR_RAMP_MS", "TOP_UP_BAND", "TOP_UP_FROM",
    "PACKAGED_MODELS", "RECIPE_KINDS", "BLEND_WINDOW_MS", "BLEND_PAD_MS",
]


def inpaint(audio: np.ndarray, sample_rate: int, intervals_s: list, *, filler: UNetFiller | None = None,
            method: str = "auto", ar_max_ms: float | None = None, border_ms: float = BORDER_MS,
            xfade_ms: float | None = None, max_gap_ms: float = MAX_GAP_MS, offset_s: float = 0.0,
            iterations: int | None = None, recipe: Recipe | None = None,
            damaged_s: list | None = None, copies: bool = True) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Fill gaps of ``audio`` ``(channels, samples)``; returns ``(new audio, fill records)``.

    ``copies=False``: ``auto`` never copies a passage from elsewhere (no ``exemplar``).
    ``damaged_s`` (optional, file seconds): more damaged intervals that are not filled here but
    must not be copied from (the exemplar search always avoids the gaps it fills).
    ``recipe`` (optional) fills every gap with that recipe instead of the planned one
    (how ``benchmarks/inpaint.py --tune`` compares candidate recipes). ``iterations``
    (optional) overrides the Griffin-Lim iterations of ``unet`` and ``blend`` recipes.
    With ``method="auto"``, a gap whose surroundings predict it (:data:`PREDICTABLE_AGREEMENT`)
    is filled by :func:`steady_fill` (recorded as ``ar_steady``, with the agreement).

    Each gap is filled by its recipe (:func:`plan_fills`): ``ar`` -- Janssen AR;
    ``ar_topup`` -- the Janssen fill with the STFT bins it leaves below ``floor`` times
    the U-Net's predicted magnitude raised to that level (``iterations`` projections that
    keep the known samples); ``unet`` -- U-Net magnitudes, gap-only fast Griffin-Lim
    (``iterations``) started from the Janssen fill. The two U-Net-based recipes are
    cross-faded from the Janssen fill over ``ar_ramp_ms`` (``xfade_ms`` overrides it) at
    each edge. They need ``filler``; without one they fall back to bidirectional AR
    prediction (recorded as method ``ar_extrapolate``). Samples farther than
    ``border_ms`` from every filled gap are bit-identical to the input. BLAS runs on one
    thread here (banded solves gain nothing from threads, and spinning threads on a
    loaded machine made a 400 ms fill ~25x slower).
    """
    from threadpoolctl import threadpool_limits

    audio = np.asarray(audio)
    out = audio.copy()
    n = audio.shape[-1]
    border = int(round(border_ms * sample_rate / 1000.0))
    records = plan_fills(intervals_s, sample_rate, n, offset_s=offset_s, method=method,
                         ar_max_ms=ar_max_ms, max_gap_ms=max_gap_ms, copies=copies)
    # no exemplar is copied from or across a damaged stretch: the gaps filled here and any
    # others the caller knows of (``damaged_s``, file seconds; e.g. gaps filled in another chunk)
    spans = [(r["start"], r["stop"]) for r in records]
    for a, b in damaged_s or ():
        spans.append((int(np.floor((float(a) - offset_s) * sample_rate)), int(np.ceil((float(b) - offset_s) * sample_rate))))
    with threadpool_limits(1, user_api="blas"):
        for rec in records:
            if recipe is not None and rec["method"] != "skipped":
                rec.update(method=recipe.kind, recipe=recipe)
                rec.pop("ar_if_agreement_at_least", None)
                rec.pop("exemplar_if_similarity_at_least", None)
            if rec["method"] != "skipped":
                _fill_one(audio, out, rec, sample_rate, filler, border, xfade_ms, iterations, spans, offset_s)
    for rec in records:
        describe_fill(rec, xfade_ms)
    return out, records


def _exemplar_match(audio: np.ndarray, start: int, stop: int, sample_rate: int,
                    exclude: list[tuple[int, int]]):
    """The best passage to copy into ``[start, stop)`` (:func:`archtool.dsp.exemplar.find_exemplar`
    on the channels' mix, within :data:`EXEMPLAR_SEARCH_S`; every planned gap excluded)."""
    ctx = int(round(EXEMPLAR_CONTEXT_MS * sample_rate / 1000.0))
    reach = int(round(EXEMPLAR_SEARCH_S * sample_rate)) + ctx
    lo, hi = max(0, start - reach), min(audio.shape[-1], stop + reach)
    mono = audio[:, lo:hi].astype(np.float64).mean(axis=0)
    others = [(a - lo, b - lo) for a, b in exclude if b > lo and a < hi]
    match = find_exemplar(mono, start - lo, stop - lo, sample_rate, search_s=EXEMPLAR_SEARCH_S, exclude=others)
    return None if match is None else dataclasses.replace(match, source=match.source + lo)


def _decide_exemplar(audio: np.ndarray, rec: dict[str, Any], sample_rate: int,
                     exclude: list[tuple[int, int]], offset_s: float):
    """For a planned gap whose method is ``exemplar``, or that carries the ``auto`` rule
    ``exemplar_if_similarity_at_least``: search a passage to copy and, if it is used, switch
    ``rec`` to the ``exemplar`` recipe with its source and similarity (updates ``rec``).
    Returns the match to copy, or None."""
    least = rec.pop("exemplar_if_similarity_at_least", None)
    forced = rec["method"] == "exemplar"
    if least is None and not forced:
        return None
    s, e = rec["start"], rec["stop"]
    match = _exemplar_match(audio, s, e, sample_rate, exclude)
    if match is None:
        if forced:
            rec.update(method="ar", reason="no passage elsewhere in reach to copy from")
        return None
    similarity = min(match.similarity_before, match.similarity_after)
    if not forced and similarity < least:
        return None
    where = f"{abs(match.source - s) / sample_rate:.2f} s {'earlier' if match.source < s else 'later'}"
    rec.update(method="exemplar", recipe=DEFAULT_RECIPES["exemplar"] if not forced else rec["recipe"],
               source_s=round(offset_s + match.source / sample_rate, 6), similarity=round(similarity, 3),
               reason=f"the surroundings recur {where} (similarity {similarity:.2f})")
    rec.pop("ar_if_agreement_at_least", None)
    return match


def _fill_one(audio: np.ndarray, out: np.ndarray, rec: dict[str, Any], sample_rate: int,
              filler: UNetFiller | None, border: int, xfade_ms: float | None, iterations: int | None,
              exclude: list[tuple[int, int]] = (), offset_s: float = 0.0) -> None:
    """Fill one planned gap of every channel of ``audio`` into ``out`` (updates ``rec``);
    ``exclude``: every planned gap (no exemplar is copied from or across one)."""
    s, e = rec["start"], rec["stop"]
    n = audio.shape[-1]
    match = _decide_exemplar(audio, rec, sample_rate, exclude, offset_s)
    recipe = rec["recipe"]
    guard = rec.pop("ar_if_agreement_at_least", None)
    if guard is not None:
        # the prediction's context (see prediction_agreement) around the gap, channels mixed
        margin = max(4 * ar_order_for(e - s, sample_rate), 2 * (e - s), int(0.04 * sample_rate)) + 1
        lo, hi = max(0, s - margin), min(n, e + margin)
        mono = audio[:, lo:hi].astype(np.float64).mean(axis=0)
        agreement = prediction_agreement(mono, s - lo, e - lo, sample_rate)
        if agreement >= guard:
            rec.update(method="ar_steady", reason=f"steady, predictable surroundings (forward/backward AR "
                                                   f"agreement {agreement:.2f})")
    if rec["method"] in ("ar_topup", "blend") and filler is None:
        rec["method"] = "ar"  # the base of the top-up and the blend
        rec["reason"] = "no U-Net checkpoint available"
    elif rec["method"] == "unet" and filler is None:
        rec["method"] = "ar_extrapolate"
        rec["reason"] = "no U-Net checkpoint available"
    use_border = border if rec["method"] not in ("ar", "ar_steady", "exemplar") else 0
    fs, fe = max(0, s - use_border), min(n, e + use_border)
    ramp_ms = recipe.ar_ramp_ms if xfade_ms is None else float(xfade_ms)
    for ch in range(audio.shape[0]):
        x = audio[ch].astype(np.float64)
        if rec["method"] == "ar":
            fill = ar_fill(x, fs, fe, sample_rate)
        elif rec["method"] == "ar_steady":
            fill = steady_fill(x, fs, fe, sample_rate)
        elif rec["method"] == "exemplar":
            copy = exemplar_fill(x, fs, fe, match, sample_rate=sample_rate)
            ramp = int(round(ramp_ms * sample_rate / 1000.0))
            fill = copy if ramp <= 0 else ramp_blend(
                ar_fill(x, fs, fe, sample_rate, order=ar_order_bounded(fe - fs, sample_rate)), copy, ramp)
        elif rec["method"] in ("unet", "ar_topup", "blend"):
            janssen = recipe.needs_janssen() or ramp_ms > 0
            ar = ar_fill(x, fs, fe, sample_rate, order=ar_order_bounded(fe - fs, sample_rate)) if janssen else None
            base = unet_base_fill(filler, x, fs, fe, sample_rate, recipe, ar,
                                  iterations if rec["method"] in ("unet", "blend") else None)
            fill = finish_fill(ar, base, sample_rate, recipe, ramp_ms) if janssen else base
            if TOP_UP_BAND and sample_rate > filler.spec.sample_rate:  # the network's fill stops at its Nyquist
                lo, hi = max(0, fs - sample_rate // 10), min(n, fe + sample_rate // 10)  # 0.1 s: its context
                with_fill = x[lo:hi].copy()
                with_fill[fs - lo:fe - lo] = fill
                fill = top_up_band(with_fill, fs - lo, fe - lo, sample_rate, TOP_UP_FROM * filler.spec.sample_rate / 2,
                                   seed=int(round(offset_s * sample_rate)) + fs + 7919 * ch)
        else:
            fill = bidirectional_extrapolate(x, fs, fe, sample_rate)
        w = np.ones(fe - fs)
        if s - fs > 0:
            k = s - fs
            w[:k] = 0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)
        if fe - e > 0:
            k = fe - e
            w[fe - fs - k:] = 0.5 + 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)
        orig = x[fs:fe]
        out[ch, fs:fe] = (w * fill + (1.0 - w) * orig).astype(out.dtype)
    rec["border_s"] = round(use_border / sample_rate, 6)


@register_restorer("inpaint")
class InpaintRestorer:
    """Fill gaps/dropouts by the recipe for each gap's length (Janssen AR, AR topped up by the U-Net, U-Net)."""

    name: ClassVar[str] = "inpaint"
    kinds: ClassVar[tuple[str, ...]] = ("gaps",)
    # the exemplar search reaches EXEMPLAR_SEARCH_S beyond a gap of up to EXEMPLAR_MAX_MS and its
    # contexts; the U-Net window of a gap up to ~1 s fits inside that too
    context_s: ClassVar[float] = EXEMPLAR_SEARCH_S + (EXEMPLAR_MAX_MS + EXEMPLAR_CONTEXT_MS) / 1000.0

    def __init__(self) -> None:
        self._fillers: dict[str, UNetFiller | None] = {}

    @staticmethod
    def describe(params: dict[str, Any], sample_rate: int, n_samples: int | None = None) -> dict[str, Any]:
        """``{"fills": [...]}``: every interval this step will fill, with its method and recipe
        (:func:`fill_report`), for the archivist's audit; empty when the step fills detected
        digital silence (known only once the audio is read)."""
        return {"fills": fill_report(params, sample_rate, n_samples)}

    def filler(self, model: str, sample_rate: int) -> UNetFiller | None:
        """The U-Net for ``model`` (``auto``, a packaged name or a path); None if not installed."""
        name = model_for_rate(sample_rate) if model == "auto" else model
        if name not in self._fillers:
            path = PACKAGED_DIR / PACKAGED_MODELS[name] if name in PACKAGED_MODELS else Path(name)
            if name in PACKAGED_MODELS and not path.exists():
                self._fillers[name] = None
            else:
                self._fillers[name] = UNetFiller.load(path)
        return self._fillers[name]

    def process(self, audio: torch.Tensor, sample_rate: int, params: dict[str, Any],
                device: torch.device | str = "cpu") -> torch.Tensor:
        """Fill the gaps of ``audio`` ``(channels, samples)``; returns a new tensor."""
        x = audio.detach().to("cpu").numpy()
        intervals = params.get("intervals_s")
        offset = chunk_offset(params, sample_rate) / sample_rate
        if intervals is None:
            intervals = [[a + offset, b + offset] for a, b in zero_runs(x, sample_rate)]
        damaged = intervals
        if params.get("needed") is not None:  # only the gaps whose fill is used (see run_steps)
            lo, hi = (offset + v / sample_rate for v in params["needed"])
            intervals = [iv for iv in intervals if float(iv[1]) > lo and float(iv[0]) < hi]
        method = str(params.get("method", "auto"))
        ar_max = None if params.get("ar_max_ms") is None else float(params["ar_max_ms"])
        xfade = None if params.get("xfade_ms") is None else float(params["xfade_ms"])
        filler = None
        if method != "ar":
            plans = plan_fills(intervals, sample_rate, x.shape[-1], offset_s=offset, method=method,
                               ar_max_ms=ar_max, max_gap_ms=float(params.get("max_gap_ms", MAX_GAP_MS)))
            if any(p["method"] in ("unet", "ar_topup", "blend") for p in plans):
                filler = self.filler(str(params.get("model", "auto")), sample_rate)
        out, records = inpaint(x, sample_rate, intervals, filler=filler, method=method, ar_max_ms=ar_max,
                               border_ms=float(params.get("border_ms", BORDER_MS)), xfade_ms=xfade,
                               max_gap_ms=float(params.get("max_gap_ms", MAX_GAP_MS)), offset_s=offset,
                               iterations=None if params.get("iterations") is None else int(params["iterations"]),
                               damaged_s=damaged, copies=copies_allowed(params))
        if isinstance(params.get("report_to"), list):  # what was done, for the report (see run_steps)
            params["report_to"].extend(records)
        return torch.from_numpy(out).to(audio.device)
