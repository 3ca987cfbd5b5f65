"""Which recipe fills which gap: :class:`Recipe`, the ``auto`` tables (chosen on training
clips by ``benchmarks/inpaint.py --tune``), the rules that may replace a gap's recipe at run
time (a copy from elsewhere in the recording, AR for steady surroundings), and the plan and
report of every interval (:func:`plan_fills`, :func:`fill_report`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from archtool.errors import UsageError
from archtool.restore.unet_filler import GL_ITERATIONS

XFADE_MS = 10.0
MAX_GAP_MS = 2000.0
MIN_ZERO_RUN_S = 0.008
RECIPE_KINDS = ("ar", "ar_topup", "unet", "blend", "exemplar")
# ``auto`` fills a gap by AR (:func:`steady_fill`), whatever its length, when the forward and backward AR
# predictions across it agree at least this well (:func:`prediction_agreement`): steady tones and
# chords (0.89-0.95), where the U-Net recipes fall 15-40 dB behind Janssen; on the training clips
# real speech and music stayed at or below 0.6 from 100 ms on (music 50 ms: a few percent of gaps
# above 0.76, the most predictable, where Janssen is at its best); the held-out benchmark's gaps
# never reach it
PREDICTABLE_AGREEMENT = 0.8
# ``auto`` copies a gap from elsewhere in the recording (:mod:`archtool.dsp.exemplar`) when the
# 250 ms before it and the 250 ms after it both recur there with a normalised correlation of at
# least the EXEMPLAR_SIMILARITY of the gap's length ((upper bound in ms, threshold) pairs): short
# gaps, which Janssen AR fills well, need a closer match. Chosen on music the benchmark does not
# hold out (2026-11-24): the ../shared/data training clips (108 gaps per length), 25 game-music
# training tracks (75) and 18 of their validation tracks (54), the most measures at least as
# good as the best single method over the three sets at 25-400 ms: 37 of 45, against 24
# without copies and 33 with one threshold of 0.75 (the first choice, made on the first two
# sets only: on the third it gained nothing, losing SNR to the recipes at 25-200 ms); speech
# never got above 0.55. Gaps from EXEMPLAR_MIN_MS to EXEMPLAR_MAX_MS; candidates within
# EXEMPLAR_SEARCH_S of the gap (bounded so that the restorer's context keeps the result
# independent of chunking); cross-faded from the Janssen fill over EXEMPLAR_RAMP_MS.
EXEMPLAR_SIMILARITY: tuple[tuple[float, float], ...] = ((70.7, 0.95), (float("inf"), 0.8))
EXEMPLAR_MIN_MS = 15.8
EXEMPLAR_MAX_MS = 1000.0
EXEMPLAR_SEARCH_S = 6.0
EXEMPLAR_RAMP_MS = 10.0


@dataclass(frozen=True)
class Recipe:
    """How one gap is filled.

    ``kind``: ``ar`` (Janssen AR alone), ``ar_topup`` (the Janssen fill, with the magnitude
    of every STFT bin of the gap's frames clamped into ``[floor, ceiling]`` times the
    U-Net's predicted magnitude, the AR's phase kept, over ``iterations`` plain projections
    that keep the known samples: the AR's waveform where it is confident, the network's
    level where the AR has decayed; ``floor = ceiling = 1`` imposes the U-Net's magnitudes
    on the AR's phase) or ``unet`` (the U-Net's magnitudes imposed by ``iterations``
    gap-only fast Griffin-Lim steps started from the Janssen fill). The U-Net-based kinds
    are cross-faded from the Janssen fill over ``ar_ramp_ms`` at each gap edge, and then
    their departure from the Janssen fill is scaled by ``gain_low`` below ``split_hz`` and
    ``gain_high`` above it (:func:`band_gain`; ``1 / 1`` keeps it whole, ``0.5 / 0.5`` is
    the average of the two fills, ``0 / 1`` keeps the AR's low band and the network's high
    band). ``init``: where the network's phase starts, ``janssen`` (the Janssen fill) or
    ``extrapolate`` (the cross-faded forward/backward AR prediction, which keeps its level
    mid-gap); ``Recipe("unet", init="extrapolate", ar_ramp_ms=0)`` is the plain U-Net method.
    ``blend``: the ``unet`` fill (``iterations``, ``init``) combined per bin with the Janssen
    fill by :func:`spectral_blend` with ``lam``, ``loud``, ``keep_ar`` and
    ``coherence_power``, before the ramps. ``anchor_ms`` (> 0): the network's target
    magnitudes are pulled towards the starting fill's own near the gap edges, with weight
    ``exp(-d / anchor_ms)`` at ``d`` ms from the nearer edge (:meth:`UNetFiller.fill_native`).
    """

    kind: str
    floor: float = 0.0
    iterations: int = GL_ITERATIONS
    ar_ramp_ms: float = XFADE_MS
    ceiling: float = float("inf")
    split_hz: float = 1000.0
    gain_low: float = 1.0
    gain_high: float = 1.0
    init: str = "janssen"
    lam: float = 1.0
    loud: float = 3.0
    keep_ar: bool = False
    coherence_power: float = 1.0
    anchor_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in RECIPE_KINDS or self.init not in ("janssen", "extrapolate"):
            raise ValueError(f"bad inpainting recipe: kind {self.kind!r}, init {self.init!r}")
        if not self.anchor_ms >= 0.0:
            raise ValueError(f"bad inpainting recipe: anchor_ms {self.anchor_ms!r} (0 or more)")

    def needs_janssen(self) -> bool:
        """Whether the fill uses the Janssen fill (as the base, phase start, ramp or band gain)."""
        return (self.kind in ("ar", "blend") or self.init == "janssen" or self.ar_ramp_ms > 0
                or not self.gain_low == self.gain_high == 1.0)


DEFAULT_RECIPES = {"ar": Recipe("ar"), "ar_topup": Recipe("ar_topup", floor=0.5, iterations=4),
                   "unet": Recipe("unet"), "blend": Recipe("blend"),
                   "exemplar": Recipe("exemplar", ar_ramp_ms=EXEMPLAR_RAMP_MS)}
# The ``auto`` choice, per model (by rate) and gap length: (upper bound in ms, recipe), the
# bounds at the geometric midpoints of the tuned lengths 10/25/50/100/200/400 ms. Chosen on
# the *training* clips (3 gaps per clip and length, positions seeded apart from the
# benchmark's) by ``python benchmarks/inpaint.py --tune``: per length, the candidate with the
# most measures (gap SNR, LSD, patch PSNR) at least as good as the best single method, then
# the smallest total shortfall, then the simplest (Janssen AR first). When the pool grew by
# the 48 blends (2026-11-23), a length took the larger pool's choice only where its clip-fold
# check on the training clips (expected measures met when choosing on half of them) was at
# least the smaller pool's: music 50-200 ms (1.88 / 1.75 / 2.00 against 1.62 / 1.50 / 2.00);
# speech 100 / 400 ms (1.00 / 1.12 against 1.38 / 1.50) and music 400 ms (1.50 against
# 1.75) kept theirs. Re-chosen 2026-11-23 (ninth session) by the same rule on a tuning set
# three times larger and drawn afresh (``--tune-positions 9 --tune-seed 3``: 61-108 gaps per
# length): speech 100 ms -> blend(0.25, 10) (2 measures met, shortfall 0.57 against the
# top-up's 0.89), speech 400 ms -> the U-Net recipe (2 met against 1), music 200 ms ->
# blend(1, 1, coherence^0.5) (2 met, shortfall 0.22 against 0.25); speech 25 ms keeps the
# U-Net recipe, which beat Janssen (the rule's tie-break pick) on all three measures there.
# 2026-11-24 (thirteenth session): the pool gained edge-anchored magnitudes (``anchor_ms``);
# by the same rule and tuning set, speech 400 ms -> the U-Net recipe anchored at 20 ms (2
# measures met against the blend's 1), music 200 / 400 ms -> anchored variants. A table
# replaced the shipped one only under a rule fixed before its held-out run (more cells, or
# as many with better mean LSD and PSNR): speech shipped (12 cells against 11), music not
# (14 against 15; its 400 ms LSD tied the U-Net's).
# The held-out benchmark clips were never used to choose.
_TOPUP = partial(Recipe, "ar_topup")
AUTO_RECIPES: dict[str, tuple[tuple[float, Recipe], ...]] = {
    "speech16k": ((15.8, Recipe("ar")),
                  (35.4, Recipe("unet")),
                  (70.7, Recipe("ar_topup", floor=1.0, ceiling=1.0, iterations=0)),
                  (141.4, Recipe("blend", lam=0.25, loud=10.0)),
                  (282.8, Recipe("unet", init="extrapolate", ar_ramp_ms=0.0)),
                  (float("inf"), Recipe("unet", anchor_ms=20.0))),
    "music22k": ((35.4, Recipe("ar")),
                 (141.4, Recipe("blend", lam=0.25, loud=1.0, keep_ar=True)),
                 (282.8, Recipe("blend", lam=2.0, loud=1.0)),
                 (float("inf"), Recipe("unet"))),
}


def exemplar_threshold(gap_ms: float) -> float:
    """The similarity a copy needs to fill a gap of ``gap_ms`` under ``auto`` (:data:`EXEMPLAR_SIMILARITY`)."""
    return next(t for bound, t in EXEMPLAR_SIMILARITY if gap_ms <= bound)


def recipe_for(gap_ms: float, sample_rate: int) -> Recipe:
    """The ``auto`` recipe for a gap of ``gap_ms`` at ``sample_rate`` (see :data:`AUTO_RECIPES`)."""
    for bound, recipe in AUTO_RECIPES[model_for_rate(sample_rate)]:
        if gap_ms <= bound:
            return recipe
    raise AssertionError("the last bound of every recipe table is infinite")


def model_for_rate(sample_rate: int) -> str:
    """Packaged model used at a rate: ``speech16k`` up to 16 kHz, ``music22k`` above."""
    return "speech16k" if sample_rate <= 16000 else "music22k"


def zero_runs(audio: np.ndarray, sample_rate: int, min_s: float = MIN_ZERO_RUN_S) -> list[list[float]]:
    """Interior runs (not touching either end) where every channel is exactly 0, in seconds."""
    silent = np.all(audio == 0.0, axis=0).astype(np.int8)
    d = np.diff(np.concatenate(([0], silent, [0])))
    starts, stops = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    n = audio.shape[-1]
    return [[s / sample_rate, e / sample_rate] for s, e in zip(starts, stops)
            if e - s >= min_s * sample_rate and s > 0 and e < n]


def plan_fills(intervals_s: list, sample_rate: int, n_samples: int | None = None, *,
               offset_s: float = 0.0, method: str = "auto", ar_max_ms: float | None = None,
               max_gap_ms: float = MAX_GAP_MS, copies: bool = True) -> list[dict[str, Any]]:
    """Decide, for each interval, the samples to fill and the method.

    ``intervals_s`` are in file seconds; ``offset_s`` is the file time of sample 0.
    Intervals are sorted and merged; those outside ``[0, n_samples)`` are dropped and
    those crossing its ends clipped. Returns dicts with ``start_s``, ``end_s`` (file
    time), ``start``, ``stop`` (local samples), ``method`` (``ar`` | ``ar_topup`` |
    ``unet`` | ``blend`` | ``exemplar`` | ``skipped``, with ``reason``) and ``recipe`` (a
    :class:`Recipe`). ``method="auto"`` takes the recipe for the gap's length from
    :data:`AUTO_RECIPES` (the table of the model serving ``sample_rate``) and adds the rules
    that may replace it when the gap is filled (``exemplar_if_similarity_at_least``, unless
    ``copies`` is False; ``ar_if_agreement_at_least``); with ``ar_max_ms`` set, ``auto``
    is instead Janssen AR up to that length and the ``unet`` recipe beyond.
    """
    if method not in ("auto",) + RECIPE_KINDS:
        raise UsageError(f"inpaint: method must be auto, {', '.join(RECIPE_KINDS)}, not {method!r}")
    spans = []
    for item in intervals_s:
        a, b = float(item[0]), float(item[1])
        if not (np.isfinite(a) and np.isfinite(b)) or b <= a:
            raise UsageError(f"inpaint: bad gap interval [{a}, {b}] (end must follow start)")
        # a tolerance of 1e-6 samples: an interval given at exact sample times (s / rate)
        # must not grow by a sample through floating-point rounding
        s = int(np.floor((a - offset_s) * sample_rate + 1e-6))
        e = int(np.ceil((b - offset_s) * sample_rate - 1e-6))
        if n_samples is not None:
            s, e = max(s, 0), min(e, n_samples)
        else:
            s = max(s, 0)
        if e > s:
            spans.append([s, e])
    spans.sort()
    merged: list[list[int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out = []
    for s, e in merged:
        ms = 1000.0 * (e - s) / sample_rate
        rec: dict[str, Any] = {"start_s": round(offset_s + s / sample_rate, 6),
                               "end_s": round(offset_s + e / sample_rate, 6), "start": s, "stop": e}
        if ms > max_gap_ms:
            rec.update(method="skipped", reason=f"longer than {max_gap_ms:g} ms")
            out.append(rec)
            continue
        if method != "auto":
            recipe = DEFAULT_RECIPES[method]
        elif ar_max_ms is not None:
            recipe = DEFAULT_RECIPES["ar" if ms <= ar_max_ms else "unet"]
        else:
            recipe = recipe_for(ms, sample_rate)
            if copies and EXEMPLAR_MIN_MS <= ms <= EXEMPLAR_MAX_MS:
                rec["exemplar_if_similarity_at_least"] = exemplar_threshold(ms)
            if recipe.kind != "ar":
                rec["ar_if_agreement_at_least"] = PREDICTABLE_AGREEMENT
        rec.update(method=recipe.kind, recipe=recipe)
        out.append(rec)
    return out


def copies_allowed(params: dict[str, Any]) -> bool:
    """The restorer params' ``copies`` (or the command line's ``inpaint_copies``): whether
    ``auto`` may copy a passage from elsewhere in the recording (default True)."""
    value = params.get("copies", params.get("inpaint_copies", True))
    if isinstance(value, str):
        if value.strip().lower() not in ("true", "false"):
            raise UsageError(f"inpaint: copies must be true or false, not {value!r}")
        return value.strip().lower() == "true"
    return bool(value)


def fill_report(params: dict[str, Any], sample_rate: int, n_samples: int | None = None) -> list[dict[str, Any]]:
    """What an ``inpaint`` step with ``params`` fills, one dict per interval, for reports.

    Keys: ``start_s``, ``end_s``, ``method`` (``ar`` | ``ar_topup`` | ``unet`` | ``blend`` |
    ``exemplar`` | ``skipped``), the recipe's settings (``floor``, ``iterations``, ``ar_ramp_ms``,
    the blend's ``lam``, ``loud``, ``keep_ar``, ``coherence_power``) where they apply, the
    rules that may replace the recipe at run time, and ``reason`` for skipped ones. Empty when
    the step fills detected digital silence (no ``intervals_s``): those runs are only known
    once the audio is read. (What was actually done is reported by the restorer afterwards,
    through ``params["report_to"]``, and replaces this list in reports.)
    """
    if not params.get("intervals_s"):
        return []
    ar_max = params.get("ar_max_ms")
    recs = plan_fills(params["intervals_s"], sample_rate, n_samples, method=str(params.get("method", "auto")),
                      ar_max_ms=None if ar_max is None else float(ar_max),
                      max_gap_ms=float(params.get("max_gap_ms", MAX_GAP_MS)), copies=copies_allowed(params))
    for rec in recs:
        describe_fill(rec)
    return recs


def describe_fill(rec: dict[str, Any], xfade_ms: float | None = None) -> None:
    """Replace a plan's internal keys by the audit fields of its recipe (in place)."""
    recipe = rec.pop("recipe", None)
    rec.pop("start", None), rec.pop("stop", None)
    if recipe is None or rec["method"] in ("ar", "ar_extrapolate", "ar_steady"):
        return
    if recipe.kind == "exemplar":
        rec["ar_ramp_ms"] = recipe.ar_ramp_ms if xfade_ms is None else float(xfade_ms)
        return
    if recipe.kind == "ar_topup":
        rec["floor"] = recipe.floor
        if np.isfinite(recipe.ceiling):
            rec["ceiling"] = recipe.ceiling
        rec["iterations"] = recipe.iterations
    rec["ar_ramp_ms"] = recipe.ar_ramp_ms if xfade_ms is None else float(xfade_ms)
    if recipe.kind == "blend":
        rec.update(lam=recipe.lam, loud=recipe.loud, keep_ar=recipe.keep_ar,
                   coherence_power=recipe.coherence_power)
    if recipe.init != "janssen":
        rec["init"] = recipe.init
    if recipe.anchor_ms > 0:
        rec["anchor_ms"] = recipe.anchor_ms
    if not recipe.gain_low == recipe.gain_high == 1.0:
        rec.update(split_hz=recipe.split_hz, gain_low=recipe.gain_low, gain_high=recipe.gain_high)
