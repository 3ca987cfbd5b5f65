"""Restorer ``opgan``: blind removal of blended noise, background mixture and reverberation
with an Op-GAN generator (archtool.models.opgan) loaded from a checkpoint.

The audio is resampled to the model's rate, cut into overlapping segments of the model's
length (each peak-normalised into [-1, 1] as in training, restored, and scaled back),
batched on the device and overlap-added (archtool.models.overlap_add). When a fusion
checkpoint trained for this Op-GAN checkpoint lies beside it (``<stem>_fusion.pt``, see
archtool.models.fusion), the model-rate output is then fused bin by bin with the input and
the DSP denoiser's estimate. The result is resampled back to the input's rate. Above the model's band (input rate > model rate)
the input's own content is kept, denoised by the DSP ``denoise`` restorer when that is
installed. Output has the input's shape, rate, channels, dtype and device.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import torch

from archtool.errors import CheckpointError
from archtool.models.checkpoint import load_checkpoint, resolve_checkpoint
from archtool.models.fusion import FusionConfig, SpectralFusion, fuse_long
from archtool.models.opgan import OpGANGenerator, build_generator
from archtool.models.overlap_add import overlap_add, segment_hop
from archtool.restore.registry import register_restorer
from archtool.restore.classic import OFFSET_PARAM, chunk_offset
from archtool.restore.resampling import fit_length, grid_pad, resample

#: Shipped checkpoints by material name.
PACKAGED = {"speech": "opgan_speech16k.pt", "music": "opgan_music22k.pt"}
PEAK = 0.95
MAX_GAIN = 1e4
#: Seconds of audio per fusion chunk. Shorter chunks keep the network's activations in the
#: CPU caches (measured at 22.05 kHz: 8 s chunks 1.6x faster than 20 s, 5 s another ~1.1x, 3-6 s
#: alike, as each chunk also carries ~0.5 s of context); the result does not depend on it.
FUSION_CHUNK_S = 5
#: Segments per batch: 8 on a CPU (measured 1.2x faster than 16 there: smaller working set),
#: 16 on an accelerator.
CPU_BATCH, DEVICE_BATCH = 8, 16
#: Fraction shared by neighbouring Op-GAN segments, unless the fusion checkpoint's metadata
#: names the overlap it was validated with (``opgan_overlap``).
DEFAULT_OVERLAP = 0.25


class OpGANModel:
    """A loaded generator with its rate and segment length; ``restore`` works at that rate."""

    def __init__(self, path: str | Path, device: torch.device | str = "cpu"):
        state, meta = load_checkpoint(path)
        if meta.get("model") != "opgan":
            raise CheckpointError(f"{path}: not an Op-GAN checkpoint (model={meta.get('model')!r})")
        self.path, self.meta = Path(path), meta
        self.rate = int(meta["sample_rate"])
        self.segment = int(meta["segment"])
        self.gen: OpGANGenerator = build_generator(meta["arch"])
        try:
            self.gen.load_state_dict(state)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not match the architecture ({exc})") from None
        self.gen.eval().requires_grad_(False)
        self.device = torch.device(device)
        self.gen.to(self.device)
        self.fusion, fusion_meta = load_fusion(self.path, self.rate)
        #: the segment overlap the fusion stage was validated with (used when it runs)
        self.fusion_overlap = float(fusion_meta.get("opgan_overlap", DEFAULT_OVERLAP))
        if self.fusion is not None:
            self.fusion.to(self.device)

    def to(self, device: torch.device | str) -> "OpGANModel":
        device = torch.device(device)
        if device != self.device:
            self.gen.to(device)
            if self.fusion is not None:
                self.fusion.to(device)
            self.device = device
        return self

    def _segments(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, segment)`` -> restored, each segment normalised by its own peak."""
        peak = x.abs().amax(dim=-1, keepdim=True)
        gain = (PEAK / peak.clamp_min(PEAK / MAX_GAIN))
        return self.gen(x * gain) / gain

    @torch.no_grad()
    def restore(self, audio: torch.Tensor, batch_size: int | None = None,
                overlap: float = DEFAULT_OVERLAP) -> torch.Tensor:
        """Restore ``(C, N)`` audio at the model's rate; returns ``(C, N)``.

        Segments overlap by ``overlap`` and are crossfaded with raised-cosine tapers
        spanning the overlap (Tukey window). ``batch_size`` defaults to the device's."""
        if batch_size is None:
            batch_size = CPU_BATCH if self.device.type == "cpu" else DEVICE_BATCH
        return overlap_add(self._segments, audio, self.segment, overlap=overlap,
                           batch_size=batch_size, device=self.device, window="tukey")


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def fusion_path(opgan_path: Path) -> Path:
    """Where the fusion stage of an Op-GAN checkpoint lives: beside it, ``<stem>_fusion.pt``."""
    return opgan_path.with_name(f"{opgan_path.stem}_fusion.pt")


def load_fusion(opgan_path: Path, rate: int) -> tuple[SpectralFusion | None, dict[str, Any]]:
    """The fusion network trained for this exact Op-GAN checkpoint and its metadata, or
    ``(None, {})`` when there is none.

    A fusion file trained for other Op-GAN weights (checked by SHA-256) is refused: its
    weights would mix the wrong model's output."""
    from archtool.engine.atomic import sha256_file

    path = fusion_path(opgan_path)
    if not path.exists():
        return None, {}
    state, meta = load_checkpoint(path)
    if meta.get("model") != "opgan-fusion":
        raise CheckpointError(f"{path}: not an Op-GAN fusion checkpoint (model={meta.get('model')!r})")
    sha = sha256_file(opgan_path)
    if meta.get("opgan_sha256") != sha or int(meta.get("sample_rate", -1)) != rate:
        raise CheckpointError(f"{path}: trained for other Op-GAN weights than {opgan_path.name}; "
                              "retrain it with `archtool train opgan-fusion` or delete it")
    net = SpectralFusion(FusionConfig(**meta["arch"]))
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match the architecture ({exc})") from None
    return net.eval().requires_grad_(False), meta


@register_restorer("opgan")
class OpGANRestorer:
    """Op-GAN blind restorer for noise + background + reverberation blends.

    Config: ``checkpoint`` (a path or ``speech``/``music``); when it is not given, the
    checkpoint is chosen per call by ``params["model"]`` (default ``speech``).
    Params: ``model``; ``batch`` (segments per device batch, default 8 on a CPU, 16
    elsewhere); ``overlap`` (default 0.25, or the overlap the fusion checkpoint was validated
    with when the fusion runs); ``high_band`` (``denoise`` or ``keep``: what to do above the
    model's band, default ``denoise`` when the DSP denoiser is installed); ``fusion``
    (``auto``: use the checkpoint's fusion stage when it has one; ``off``: Op-GAN's output
    alone); ``noise_psd`` + ``noise_psd_n_fft`` (the file's noise spectrum from the analysis,
    as for ``denoise``: the DSP denoiser inside uses it instead of estimating one per chunk,
    and the output then no longer depends on the chunking at all).
    """

    name: ClassVar[str] = "opgan"
    kinds: ClassVar[tuple[str, ...]] = ("noise", "background", "reverb")
    #: a segment (1.02 s for the speech model) plus the fusion's reach (<= 0.36 s) and the
    #: resampling filters, so a chunk's core sees only whole-file segments and frames
    context_s: ClassVar[float] = 1.5

    def __init__(self, checkpoint: str | None = None):
        self.checkpoint = checkpoint
        self._models: dict[Path, OpGANModel] = {}

    def model(self, params: dict[str, Any] | None = None, device: torch.device | str = "cpu") -> OpGANModel:
        """The loaded model for these params (loaded once per instance, then cached)."""
        name = self.checkpoint or str((params or {}).get("model", "speech"))
        path = resolve_checkpoint(name, PACKAGED, "Op-GAN")
        if path not in self._models:
            self._models[path] = OpGANModel(path, device)
        return self._models[path].to(device)

    def process(self, audio: torch.Tensor, sample_rate: int, params: dict[str, Any],
                device: torch.device | str = "cpu") -> torch.Tensor:
        """Restore ``audio`` ``(C, N)`` float32 at ``sample_rate``; same shape out.

        The chunk is placed on the file's grid first (:func:`grid_pad`, from the chunk's
        offset in the file): resampled, it starts on a model-rate sample of the whole file
        whose index is a multiple of the segment hop and the fusion's STFT hop, so the
        segments, the fusion frames and the DSP denoiser's frames are the whole file's, and
        the output away from the chunk's edges (:attr:`context_s`) does not depend on the
        chunking."""
        if audio.dim() != 2:
            raise ValueError(f"audio must be (channels, samples), got shape {tuple(audio.shape)}")
        if audio.shape[-1] == 0:
            return audio.clone()
        model = self.model(params, device)
        x = audio.detach().to(torch.float32)
        fuse = model.fusion is not None and params.get("fusion", "auto") != "off"
        overlap = float(params.get("overlap", model.fusion_overlap if fuse else DEFAULT_OVERLAP))
        offset = chunk_offset(params, sample_rate)
        grid = segment_hop(model.segment, overlap)
        if fuse:
            grid = math.lcm(grid, model.fusion.cfg.hop)
        before, after = grid_pad(offset, sample_rate, model.rate, grid)
        low = resample(torch.nn.functional.pad(x, (before, 0)), sample_rate, model.rate)
        low = torch.nn.functional.pad(low, (after, 0)).to(model.device)
        restored = model.restore(low, batch_size=_optional_int(params.get("batch")), overlap=overlap)
        if fuse:
            low_offset = (offset - before) * model.rate // sample_rate - after
            restored = self._fuse(model, low, restored, params, device, low_offset, sample_rate, after)
        restored = restored[:, after:].to(x.device)
        y = fit_length(resample(restored, model.rate, sample_rate)[:, before:], x.shape[-1])
        if sample_rate > model.rate:
            y = y + self._high_band(x, sample_rate, model.rate, params, device, offset)
        return y.to(dtype=audio.dtype, device=audio.device)

    @staticmethod
    def _fuse(model: OpGANModel, low: torch.Tensor, restored: torch.Tensor, params: dict[str, Any],
              device: torch.device | str, low_offset: int = 0, input_rate: int | None = None,
              padding: int = 0) -> torch.Tensor:
        """Op-GAN's output fused with the input and the DSP denoiser's estimate (model rate);
        ``low`` starts at model-rate file sample ``low_offset`` with ``padding`` zeros (left
        out of the denoiser's own noise estimate)."""
        from archtool.restore.registry import get_restorer, list_restorers

        if "denoise" not in list_restorers():
            return restored
        dsp_params = _denoise_params(params, input_rate or model.rate, model.rate, low_offset + padding)
        dsp = get_restorer("denoise").process(low[:, padding:], model.rate, dsp_params, device)
        dsp = torch.nn.functional.pad(dsp, (padding, 0))
        return fuse_long(model.fusion, low, restored, dsp.to(low.device, torch.float32),
                         chunk=model.rate * FUSION_CHUNK_S)

    def _high_band(self, x: torch.Tensor, rate: int, model_rate: int, params: dict[str, Any],
                   device: torch.device | str, offset: int = 0) -> torch.Tensor:
        """The input's content above ``model_rate / 2`` (what a resampling round trip removes);
        ``x`` starts at file sample ``offset``."""
        source = x
        if params.get("high_band", "denoise") == "denoise":
            from archtool.restore.registry import list_restorers, get_restorer

            if "denoise" in list_restorers():
                source = get_restorer("denoise").process(x, rate, _denoise_params(params, rate, rate, offset), device)
                source = source.to(x.device, torch.float32)
        before, _ = grid_pad(offset, rate, model_rate)
        padded = torch.nn.functional.pad(source, (before, 0))
        round_trip = resample(resample(padded, rate, model_rate), model_rate, rate)[:, before:]
        return source - fit_length(round_trip, x.shape[-1])


def _denoise_params(params: dict[str, Any], psd_rate: int, rate: int, offset: int) -> dict[str, Any]:
    """Params of the DSP denoiser run inside Op-GAN at ``rate`` on a signal starting at file
    sample ``offset`` (of that rate): the file's noise spectrum when the plan gave one (taken
    at ``psd_rate``, converted), so every chunk uses the same, and the frame grid's offset."""
    out: dict[str, Any] = {"seed": params.get("seed", 0), OFFSET_PARAM: int(offset)}
    psd = params.get("noise_psd")
    if psd:
        from archtool.dsp.denoise import noise_psd_for, stft_sizes

        n_fft, _ = stft_sizes(rate)
        src_n = int(params.get("noise_psd_n_fft") or 2 * (len(psd) - 1))
        out["noise_psd"] = noise_psd_for(psd, src_n, n_fft, psd_rate=psd_rate, rate=rate).tolist()
        out["noise_psd_n_fft"] = n_fft
    return out
