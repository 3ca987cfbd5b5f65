"""Restorer ``diffusion``: 78 RPM surface-noise removal and zero-shot bandwidth extension,
declipping and gap inpainting with the CQT diffusion prior (seed 003, CQT-Diff).

The audio is resampled to the model's rate and cut into overlapping segments on a grid
aligned to the file (``params["chunk_offset"]``), so a segment's position, and therefore its
random numbers (``seed_for(seed, "diffusion:<channel>:<segment index>")``), do not depend
on how the engine chunks the file. Each segment is scaled so its estimated clean RMS is
the model's ``sigma_data``, restored by conditional sampling (batched on the device),
scaled back, tapered and overlap-added. Above the model's band the input is kept.

Tasks (each on when its parameter is given; several combine in one pass):

* **surface noise** (``denoise``, default on when a noise level is known): the observation
  is ``y = x + n``. The noise model is a power spectrum: the analysis's ``noise_psd`` when
  the plan passes it, else the average spectrum of a *noise bank*: excerpts from
  ``noise_dir`` (real groove noise) or, without one, ``degrade``'s synthetic 78 RPM model
  (hiss + crackle), scaled to the level the analysis measured (``noise_floor_dbfs``, else
  ``snr_db``). Sampling starts from the recording itself at a noise level just above the
  recording's (a warm start: the recording *is* a noisy diffusion state), optionally steered
  by reconstruction guidance of weight ``xi`` on the noise-weighted residual ``y - x0``
  (each STFT bin divided by the noise power there). On tuning excerpts cut from training clips the
  trained prior denoised best with ``xi = 0`` (guidance pulled the estimate back towards
  the noisy recording), so that is the default; ``xi > 0`` keeps more of the recording.
  Without guidance only the noise's *level* reaches the prior, whose denoiser assumes white
  noise; surface noise is coloured, with most of its power where the music is, and there the
  prior alone removes less than a spectral suppressor that knows the spectrum.
  ``prefilter = "lsa"`` therefore first runs the MMSE-LSA suppressor (restorer ``denoise``,
  ``max_reduction_db``) with the same noise spectrum and lets the prior remove what is left:
  the noise spectrum times ``residual_scale * 10^(-max_reduction_db / 10)`` (the gain
  floor's power, times a factor for the noise that passes with the music; 3 by default).
* **bandwidth extension** (``cutoff_hz``): content above the cutoff is generated; below it
  the output keeps (projection) or is guided towards (with noise) the observation.
* **declipping** (``clip_level``, in input units): unclipped samples are kept, clipped
  ones are constrained to lie beyond the clip level.
* **inpainting** (``intervals_s``: ``[[start, end], ...]`` in file seconds): samples inside
  the gaps are generated, the rest kept.

Params: ``steps`` (25; ``diffusion_steps``, the restore command's ``--steps``, overrides),
``xi`` (guidance weight, default 0: see below), ``order`` (1 Euler / 2 Heun, default 1),
``churn`` (EDM's S_churn: 0 when only denoising, else the model's 5), ``start_factor``
(1.0: warm-start level over the recording's noise level), ``batch`` (8),
``overlap`` (0.25), ``denoise`` (bool), ``noise_dir``, ``noise_gain`` (noise RMS, input
units, when no analysis measure is given), ``model`` (``music`` or a checkpoint path),
``prefilter`` (``none`` / ``lsa``), ``max_reduction_db`` (18, the prefilter's),
``residual_scale`` (3.0), ``samples`` (1: the output is the mean of this many samples, each
seeded by its index; useful only with ``churn`` > 0), ``blend`` (1.0: the output is
``observation + blend * (sample - observation)`` per segment, the observation being the
prefiltered recording with ``prefilter = "lsa"``: two estimates with different errors,
mixed) and ``floor_db`` (off: the most the prior may attenuate any STFT bin of the
observation, see :func:`gain_floor`).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from archtool.errors import CheckpointError, UsageError
from archtool.models.checkpoint import load_checkpoint, resolve_checkpoint
from archtool.models.diffusion import CQTDenoiser, build_denoiser, sample
from archtool.restore.classic import chunk_offset, number
from archtool.restore.registry import register_restorer
from archtool.restore.resampling import fit_length, resample
from archtool.seeding import seed_for

PACKAGED = {"music": "diffusion_music22k.pt"}
N_FFT = 1024
HOP = 256


class DiffusionModel:
    """A loaded denoiser with its rate and segment length."""

    def __init__(self, path: str | Path):
        state, meta = load_checkpoint(path)
        if meta.get("model") != "cqt_diffusion":
            raise CheckpointError(f"{path}: not a CQT diffusion checkpoint (model={meta.get('model')!r})")
        self.path, self.meta = Path(path), meta
        self.denoiser: CQTDenoiser = build_denoiser(meta["arch"])
        try:
            self.denoiser.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not match the architecture ({exc})") from None
        self.denoiser.eval().requires_grad_(False)
        self.rate = int(meta["sample_rate"])
        self.segment = int(meta.get("segment", 32768))
        self.device = torch.device("cpu")

    def to(self, device: torch.device | str) -> "DiffusionModel":
        device = torch.device(device)
        if device != self.device:
            self.denoiser.to(device)
            self.device = device
        return self




# ---------------------------------------------------------------------------------- noise model
def welch_psd(x: np.ndarray, n_fft: int = N_FFT) -> np.ndarray:
    """Per-bin noise power ``(n_fft//2+1,)`` of mono ``x``, scaled so that the signal's mean
    square is ``(S[0] + 2 * S[1:-1].sum() + S[-1]) / n_fft``."""
    w = np.hanning(n_fft + 1)[:-1]
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[:: n_fft // 4]
    spec = np.abs(np.fft.rfft(frames * w, axis=-1)) ** 2
    return spec.mean(axis=0) / np.sum(w ** 2)


def mean_square(psd: np.ndarray) -> float:
    """Mean square of a signal with per-bin power ``psd`` (as :func:`welch_psd` scales it)."""
    n_fft = 2 * (psd.size - 1)
    return float((psd[0] + 2 * psd[1:-1].sum() + psd[-1]) / n_fft)


_BANKS: dict[tuple[str, int], np.ndarray] = {}


def bank_psd(rate: int, noise_dir: str | None = None) -> np.ndarray:
    """Spectral shape of the noise bank at ``rate`` (unit mean square): the average spectrum
    of the audio in ``noise_dir``, or of 20 s of ``degrade``'s synthetic 78 RPM surface
    noise (hiss modulated at 78/60 Hz plus crackle, fixed seed) when no folder is given."""
    key = (str(noise_dir or ""), rate)
    if key not in _BANKS:
        if noise_dir:
            from archtool.audio.io import read_audio
            from archtool.degrade.sources import list_audio

            files = list_audio(noise_dir)
            if not files:
                raise UsageError(f"{noise_dir}: no audio files in the noise bank folder")
            psds = []
            for f in files:
                audio, sr = read_audio(f)
                x = torch.from_numpy(np.ascontiguousarray(audio.mean(axis=0), dtype=np.float32))
                x = resample(x, sr, rate)
                p = welch_psd(x.numpy().astype(np.float64))
                psds.append(p / max(mean_square(p), 1e-30))
            psd = np.mean(psds, axis=0)
        else:
            from archtool.degrade.units.surface_noise import synthetic_surface

            parts = synthetic_surface(20 * rate, rate, 78.0, 300.0, 0, np.random.default_rng(78))
            psd = welch_psd(parts["hiss"] + parts["crackle"])
        _BANKS[key] = psd / max(mean_square(psd), 1e-30)
    return _BANKS[key]


def analysis_psd(params: dict[str, Any], sample_rate: int, model_rate: int) -> np.ndarray | None:
    """The analysis's ``noise_psd`` (Hann-frame ``|rfft|^2`` at the input rate) as per-bin
    power at ``model_rate`` on this module's ``N_FFT`` grid, or None when absent."""
    psd = params.get("noise_psd")
    n_fft = params.get("noise_psd_n_fft")
    if not psd or not n_fft:
        return None
    psd = np.asarray(psd, dtype=np.float64)
    n_fft = int(n_fft)
    if psd.size != n_fft // 2 + 1 or not np.all(np.isfinite(psd)):
        return None
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    per_bin = psd / np.sum(w ** 2)  # mean square = sum over the full spectrum / n_fft
    density = per_bin / sample_rate  # per Hz
    f_in = np.arange(psd.size) * sample_rate / n_fft
    f_out = np.arange(N_FFT // 2 + 1) * model_rate / N_FFT
    return np.interp(f_out, f_in, density) * model_rate


def noise_psd_for(params: dict[str, Any], audio: np.ndarray, sample_rate: int, model_rate: int) -> np.ndarray | None:
    """Absolute noise power per bin at ``model_rate`` (``N_FFT`` grid), or None (no denoising)."""
    measured = analysis_psd(params, sample_rate, model_rate)
    if measured is not None and params.get("noise_model", "auto") != "bank":
        return measured
    shape = bank_psd(model_rate, params.get("noise_dir"))
    level = None
    if params.get("noise_floor_dbfs") is not None:
        level = 10 ** (float(params["noise_floor_dbfs"]) / 10)
    elif params.get("noise_gain") is not None:
        level = float(params["noise_gain"]) ** 2
    elif params.get("snr_db") is not None:
        total = float(np.mean(audio.astype(np.float64) ** 2))
        level = total / (1 + 10 ** (float(params["snr_db"]) / 10))
    elif measured is not None:
        level = mean_square(measured)
    if level is None or level <= 0:
        return None
    return shape * level


# ---------------------------------------------------------------------------------- operators
def lowpass(x: torch.Tensor, cutoff_hz: float, rate: int) -> torch.Tensor:
    """Brick-wall low-pass of ``(B, N)`` (FFT of the whole segment)."""
    spec = torch.fft.rfft(x, dim=-1)
    f = torch.fft.rfftfreq(x.shape[-1], 1.0 / rate).to(x.device)
    return torch.fft.irfft(spec * (f <= cutoff_hz).to(spec.dtype), n=x.shape[-1], dim=-1)


class Observation:
    """One batch of segments and what is known about them (normalised units)."""

    def __init__(self, y: torch.Tensor, rate: int, *, weights: torch.Tensor | None, cutoff_hz: float | None,
                 known: torch.Tensor | None, clip: torch.Tensor | None):
        self.y, self.rate = y, rate
        self.weights = weights  # (B, N_FFT//2+1) inverse noise power, or None (noise-free)
        self.cutoff_hz = cutoff_hz
        self.known = known  # (B, N) 1 where the sample is observed (gaps 0), or None
        self.clip = clip  # (B, 1) clip level, or None
        self.window = torch.hann_window(N_FFT, device=y.device)
        valid = torch.ones_like(y)
        if known is not None:
            valid = valid * known
        if clip is not None:
            self.pos = y >= clip * 0.999
            self.neg = y <= -clip * 0.999
            valid = valid * (~(self.pos | self.neg)).float()
        self.valid = valid  # samples the residual is measured on

    def _band(self, r: torch.Tensor) -> torch.Tensor:
        return lowpass(r, self.cutoff_hz, self.rate) if self.cutoff_hz else r

    def guidance(self, x0: torch.Tensor) -> torch.Tensor:
        """``(B,)`` noise-weighted squared residual of the observed part."""
        r = self._band((self.y - x0) * self.valid)
        spec = torch.stft(r, N_FFT, HOP, window=self.window, return_complex=True)  # (B, F, T)
        return (spec.abs().square() * self.weights[:, :, None]).sum(dim=(1, 2))

    def project(self, x0: torch.Tensor) -> torch.Tensor:
        """Data consistency: keep what the observation fixes exactly."""
        if self.weights is None:  # noise-free observation: replace the observed part
            if self.cutoff_hz:
                x0 = x0 - lowpass(x0, self.cutoff_hz, self.rate) + lowpass(self.y, self.cutoff_hz, self.rate)
            if self.known is not None or self.clip is not None:
                x0 = self.valid * self.y + (1 - self.valid) * x0
        if self.clip is not None:
            x0 = torch.where(self.pos, torch.maximum(x0, self.clip), x0)
            x0 = torch.where(self.neg, torch.minimum(x0, -self.clip), x0)
        return x0


# ---------------------------------------------------------------------------------- post-processing
def gain_floor(x: torch.Tensor, ref: torch.Tensor, floor_db: float) -> torch.Tensor:
    """Limit how far the prior may attenuate ``ref`` ``(B, N)``: in each STFT bin where
    ``|X| < 10^(floor_db/20) |R|`` the magnitude of ``x`` is raised to that floor (phase of ``x``).

    The prior's denoiser is an MMSE estimate: in bins where the residual noise dominates
    (high frequencies) it shrinks the music towards zero, which the log-spectral distance
    punishes; the LSA suppressor has the same floor (``max_reduction_db``)."""
    win = torch.hann_window(N_FFT, device=x.device)
    spec = torch.stft(x, N_FFT, HOP, window=win, return_complex=True)
    r = torch.stft(ref, N_FFT, HOP, window=win, return_complex=True)
    lo = r.abs() * 10 ** (floor_db / 20)
    mag = spec.abs()
    gain = torch.where(mag < lo, lo / mag.clamp_min(1e-12), torch.ones_like(mag))
    return torch.istft(spec * gain, N_FFT, HOP, window=win, length=x.shape[-1])


# ---------------------------------------------------------------------------------- restorer




def _taper(segment: int, overlap: int) -> torch.Tensor:
    w = torch.ones(segment)
    if overlap > 0:
        ramp = 0.5 - 0.5 * torch.cos(torch.pi * (torch.arange(overlap) + 0.5) / overlap)
        w[:overlap], w[-overlap:] = ramp, ramp.flip(0)
    return w


@register_restorer("diffusion")
class DiffusionRestorer:
    """CQT diffusion prior (seed 003): surface noise, bandwidth extension, declipping, gaps."""

    name: ClassVar[str] = "diffusion"
    kinds: ClassVar[tuple[str, ...]] = ("surface_noise", "noise", "bandlimit", "clipping", "gaps")
    context_s: ClassVar[float] = 1.25  # 0.75 for the segments + 0.5 for the LSA prefilter

    def __init__(self, checkpoint: str | None = None):
        self.checkpoint = checkpoint
        self._models: dict[Path, DiffusionModel] = {}

    def model(self, params: dict[str, Any] | None = None, device: torch.device | str = "cpu") -> DiffusionModel:
        path = resolve_checkpoint(self.checkpoint or str((params or {}).get("model", "music")), PACKAGED, "diffusion")
        if path not in self._models:
            self._models[path] = DiffusionModel(path)
        return self._models[path].to(device)

    def process(self, audio: torch.Tensor, sample_rate: int, params: dict[str, Any],
                device: torch.device | str = "cpu") -> torch.Tensor:
        """Restore ``audio`` ``(C, N)`` float32 at ``sample_rate``; same shape, dtype and device out."""
        if audio.dim() != 2:
            raise ValueError(f"audio must be (channels, samples), got shape {tuple(audio.shape)}")
        if audio.shape[-1] == 0:
            return audio.clone()
        m = self.model(params, device)
        x = audio.detach().to("cpu", torch.float32)
        level_audio, noise_factor = None, 1.0
        prefilter = str(params.get("prefilter", "none"))
        if prefilter not in ("none", "lsa"):
            raise UsageError(f"diffusion: prefilter must be 'none' or 'lsa', got {prefilter!r}")
        if prefilter == "lsa" and params.get("denoise", True):
            # the DSP suppressor takes the bulk of the (coloured) noise with the measured
            # spectrum; the prior then removes what is left at a lower, flatter level
            level_audio = resample(x, sample_rate, m.rate).numpy()
            x, noise_factor = self._prefilter(x, sample_rate, params)
        low = resample(x, sample_rate, m.rate)
        restored = self._restore(low, sample_rate, m, params, noise_factor, level_audio)
        y = fit_length(resample(restored, m.rate, sample_rate), x.shape[-1])
        if sample_rate > m.rate:  # keep the input above the model's band
            y = y + x - fit_length(resample(low, m.rate, sample_rate), x.shape[-1])
        return y.to(dtype=audio.dtype, device=audio.device)

    @staticmethod
    def _prefilter(x: torch.Tensor, sample_rate: int, params: dict[str, Any]) -> tuple[torch.Tensor, float]:
        """MMSE-LSA suppression (restorer ``denoise``) of ``x`` ``(C, N)`` with the plan's noise
        spectrum; returns the suppressed audio and the factor by which the noise power the
        prior should assume shrinks: ``residual_scale * 10^(-max_reduction_db / 10)`` (the
        gain floor's power times a factor for the noise that passes with the music)."""
        from archtool.restore.registry import get_restorer

        max_red = number(params, "max_reduction_db", 18.0, 0.0, 60.0)
        keys = ("noise_psd", "noise_psd_n_fft", "alpha", "xi_min_db", "noise_scale", "chunk_offset")
        dsp = {k: params[k] for k in keys if k in params}
        y = get_restorer("denoise").process(x, sample_rate, {**dsp, "max_reduction_db": max_red}, "cpu")
        factor = number(params, "residual_scale", 3.0, 0.01, 1000.0) * 10 ** (-max_red / 10)
        return y, min(factor, 1.0)

    def _restore(self, low: torch.Tensor, sample_rate: int, m: DiffusionModel, params: dict[str, Any],
                 noise_factor: float = 1.0, level_audio: np.ndarray | None = None) -> torch.Tensor:
        rate, seg = m.rate, m.segment
        den = m.denoiser
        sd = den.edm.sigma_data
        steps = int(number(params, "diffusion_steps", number(params, "steps", 25, 1, 1000), 1, 1000))
        xi = number(params, "xi", 0.0, 0.0, 100.0)
        order = int(number(params, "order", 1, 1, 2))
        start_factor = number(params, "start_factor", 1.0, 0.1, 100.0)
        batch = int(number(params, "batch", 8, 1, 1024))
        samples = int(number(params, "samples", 1, 1, 64))
        overlap = number(params, "overlap", 0.25, 0.0, 0.75)
        post = {"blend": number(params, "blend", 1.0, 0.0, 1.0),
                "floor_db": number(params, "floor_db", 0.0, -80.0, 0.0) if params.get("floor_db") is not None else None}
        seed = int(params.get("seed", 0) or 0)
        offset = int(round(chunk_offset(params, sample_rate) * rate / sample_rate))
        channels, n = low.shape
        psd = None
        if params.get("denoise", True):
            psd = noise_psd_for(params, low.numpy() if level_audio is None else level_audio, sample_rate, rate)
            psd = psd * noise_factor if psd is not None else None
        cutoff = params.get("cutoff_hz")
        cutoff = float(cutoff) if cutoff and 0 < float(cutoff) < 0.48 * rate else None
        clip_level = params.get("clip_level")
        clip_level = float(clip_level) if isinstance(clip_level, (int, float)) and clip_level > 0 else None
        known_all = self._known_mask(params.get("intervals_s"), rate, offset, n)
        if psd is None and cutoff is None and clip_level is None and known_all is None:
            return low.clone()
        # denoising alone: deterministic steps from the recording (measured best, see RESULTS.md);
        # generating content (band, clipped peaks, gaps): EDM's stochastic churn
        only_noise = cutoff is None and clip_level is None and known_all is None
        churn = number(params, "churn", 0.0 if only_noise else den.edm.s_churn, 0.0, 1000.0)
        noise_ms = mean_square(psd) if psd is not None else 0.0
        hop = max(1, int(round(seg * (1 - overlap))))
        lap = seg - hop
        taper = _taper(seg, lap)
        k_first = (offset - seg) // hop + 1
        k_last = (offset + n - 1) // hop
        jobs = []
        for c in range(channels):
            for k in range(k_first, k_last + 1):
                jobs.append((c, k))
        out = torch.zeros(channels, n)
        norm = torch.zeros(n)
        for i in range(0, len(jobs), batch):
            part = jobs[i:i + batch]
            segs, knowns, places = [], [], []
            for c, k in part:
                a = k * hop - offset  # local start (may be negative)
                lo, hi = max(a, 0), min(a + seg, n)
                y = torch.zeros(seg)
                y[lo - a:hi - a] = low[c, lo:hi]
                kn = torch.zeros(seg) if known_all is not None else None
                if known_all is not None:
                    kn[lo - a:hi - a] = known_all[lo:hi]
                    kn[:lo - a] = 1.0
                    kn[hi - a:] = 1.0
                segs.append(y)
                knowns.append(kn)
                places.append((c, k, a, lo, hi))
            result = self._batch(torch.stack(segs), knowns, places, m, psd, noise_ms, cutoff, clip_level,
                                 steps=steps, xi=xi, order=order, churn=churn, start_factor=start_factor,
                                 seed=seed, sd=sd, samples=samples, post=post)
            for (c, k, a, lo, hi), r in zip(places, result):
                out[c, lo:hi] += (r * taper)[lo - a:hi - a]
                if c == 0:
                    norm[lo:hi] += taper[lo - a:hi - a]
        return out / norm.clamp_min(1e-6)

    @staticmethod
    def _known_mask(intervals: Any, rate: int, offset: int, n: int) -> torch.Tensor | None:
        if not intervals:
            return None
        known = torch.ones(n)
        for item in intervals:
            try:
                s, e = float(item[0]), float(item[1])
            except (TypeError, ValueError, IndexError):
                raise UsageError(f"intervals_s: each gap must be [start, end] in seconds, got {item!r}") from None
            lo, hi = int(math.floor(s * rate)) - offset, int(math.ceil(e * rate)) - offset
            lo, hi = max(lo, 0), min(hi, n)
            if hi > lo:
                known[lo:hi] = 0.0
        return None if bool(torch.all(known > 0)) else known

    def _batch(self, y: torch.Tensor, knowns: list, places: list, m: DiffusionModel, psd: np.ndarray | None,
               noise_ms: float, cutoff: float | None, clip_level: float | None, *, steps: int, xi: float,
               order: int, churn: float, start_factor: float, seed: int, sd: float, samples: int = 1,
               post: dict[str, float] | None = None) -> torch.Tensor:
        """Restore ``(B, segment)`` segments at the model rate."""
        post = post or {}
        dev = m.device
        power = y.double().square().mean(dim=-1)
        clean = torch.maximum(power - noise_ms, 0.1 * power) if psd is not None else power
        live = power > 1e-12
        scale = torch.where(live, sd / clean.clamp_min(1e-30).sqrt(), torch.ones_like(power)).float()
        yn = (y * scale[:, None]).to(dev)
        sigma_noise = (scale.double() * math.sqrt(noise_ms)).float()
        weights = None
        if psd is not None:
            p = torch.from_numpy(psd).float()[None, :] * scale[:, None].square()
            weights = (1.0 / (p + 1e-3 * p.mean(dim=1, keepdim=True))).to(dev)
        known = None
        if any(k is not None for k in knowns):
            known = torch.stack([k if k is not None else torch.ones(y.shape[-1]) for k in knowns]).to(dev)
        clip = (clip_level * scale[:, None]).to(dev) if clip_level is not None else None
        obs = Observation(yn, m.rate, weights=weights, cutoff_hz=cutoff, known=known, clip=clip)
        start = torch.full((y.shape[0],), 1e-3)
        if psd is not None:
            start = torch.maximum(start, start_factor * sigma_noise)
        if cutoff is not None:
            start = torch.maximum(start, torch.tensor(0.1 * sd / 0.1))
        if clip is not None:
            start = torch.maximum(start, torch.tensor(0.05))
        if known is not None:
            gap_rows = (known < 0.5).any(dim=1).cpu()
            start = torch.where(gap_rows, torch.maximum(start, torch.tensor(m.denoiser.edm.sigma_max)), start)
        start = start.clamp(max=m.denoiser.edm.sigma_max)
        init = sigma_noise if psd is not None else torch.zeros_like(start)
        init = torch.minimum(init, start)
        x = torch.zeros_like(yn)
        for j in range(samples):  # the mean of several samples estimates the posterior mean
            tag = "" if j == 0 else f":{j}"
            gens = [torch.Generator(device=dev).manual_seed(seed_for(seed, f"diffusion:{c}:{k}{tag}"))
                    for c, k, *_ in places]
            x = x + sample(m.denoiser, tuple(yn.shape), steps, gens, device=dev, x_init=yn, sigma_start=start,
                           init_sigma=init, guidance=obs.guidance if weights is not None else None,
                           xi=xi if weights is not None else 0.0, project=obs.project, order=order, s_churn=churn)
        x = x / samples
        blend = float(post.get("blend", 1.0))
        if blend != 1.0:  # back towards the (prefiltered) observation
            x = yn + blend * (x - yn)
        if post.get("floor_db") is not None:
            x = gain_floor(x, yn, float(post["floor_db"]))
        x = x.cpu() / scale[:, None]
        return torch.where(live[:, None], x, y)
