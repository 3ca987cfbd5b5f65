"""Run every detector over one file or one in-memory signal and build its Profile."""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from archtool.analyze import (background, bandlimit, clicks, clipping, crackle, dc_offset, gaps, hum,
                              noise, reverb, rumble, surface_noise, wow)
from archtool.analyze.features import CHUNK_S, HISTORY_S, FeatureAccumulator, Features
from archtool.analyze.profile import Finding, Profile
from archtool.errors import InvalidAudioError

BLOCK_S = 2.0


def single_threaded_blas():
    """A context in which BLAS runs on one thread.

    The features multiply (frames x bins) spectra by small matrices; a multi-threaded BLAS
    spends more CPU starting and spinning its threads than the products take (measured:
    7 ms instead of 0.2 ms per 10 s chunk on the loaded 2-core box), competes with the
    decoder process, and oversubscribes the cores under ``--jobs N``.
    """
    return _blas_controller().limit(limits=1, user_api="blas")


@lru_cache(maxsize=1)
def _blas_controller():
    """One ``threadpoolctl.ThreadpoolController`` per process (finding the loaded thread
    pools is the costly part, ~2 ms)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def rule_findings(f: Features) -> dict[str, Finding]:
    """The hand-made detectors' findings, keyed by kind (severity not yet gated)."""
    bl = bandlimit.detect(f)
    # the noise model is fitted below the effective bandwidth (above it there is nothing)
    top = bl.measures["cutoff_hz"] if bl.measures["cutoff_hz"] < 0.95 * f.sample_rate / 2 else None
    nz = noise.detect(f, top_hz=top)
    floor = nz.measures["noise_floor_dbfs"]
    floor = -200.0 if floor is None else float(floor)
    out = {
        "noise": nz,
        "background": background.detect(f, floor),
        "reverb": reverb.detect(f, floor),
        "clicks": clicks.detect(f),
        "crackle": crackle.detect(f),
        "surface_noise": surface_noise.detect(f),
        "hum": hum.detect(f),
        "rumble": rumble.detect(f),
        "gaps": gaps.detect(f, floor),
        "bandlimit": bl,
        "clipping": clipping.detect(f),
        "wow": wow.detect(f),
        "dc_offset": dc_offset.detect(f),
    }
    return out


def findings_from_features(f: Features, *, learned: bool = True) -> list[Finding]:
    """One Finding per defect kind, in ``archtool.kinds.KINDS`` order.

    With ``learned`` (and the shipped checkpoint installed) the decision layer of
    :mod:`archtool.analyze.learned` sets ``detected``/``confidence``; otherwise the
    detectors' own thresholds decide. Severity is 0 for kinds not detected.
    """
    from archtool.analyze import learned as learned_layer

    found = rule_findings(f)
    if _room_tone_only(f, found):
        noise.refine(found["noise"], f)
        # nothing but a quiet, steady floor (silence with room tone): there is no programme
        # whose noise, hum or background could be judged, so only exact defects remain
        for k, fd in found.items():
            if k not in ("gaps", "clipping", "dc_offset"):
                fd.detected = False
            fd.measures["room_tone_only"] = True
        return _ordered(found)
    if line_spectrum_only(f):
        noise.refine(found["noise"], f)
        # a few steady sinusoids (test or calibration tones, tone steps): no decay tail, no
        # band to limit, no floor under a programme; the learned layer never saw such
        # signals, so only the exact measurements stand (digital-silence gaps, DC, hum
        # lines, hard clipping with many flat runs)
        for k, fd in found.items():
            keep = k in ("gaps", "dc_offset") or (k == "clipping" and learned_layer.rule_certain(k, fd)) or \
                (k == "hum" and _hum_fundamental_present(fd))
            if not keep:
                fd.detected = False
            fd.measures["line_spectrum_only"] = True
        return _ordered(found)
    got = None
    if learned:
        vec, names = learned_layer.feature_vector(f, found)
        got = learned_layer.predict(vec, names)
    # the noise figures away from dropouts and stop bands, after the features (the learned
    # layer was trained on the detector's first estimate, and decides detection)
    noise.refine(found["noise"], f)
    if got is not None:
        learned_layer.apply(found, *got)
    reverb.complete_rt60(found["reverb"], f)
    return _ordered(found)


def _ordered(found: dict[str, Finding]) -> list[Finding]:
    """The findings in KINDS order; a detected one reports severity >= 0.05, an undetected one 0."""
    from archtool.kinds import KINDS

    for fd in found.values():
        fd.severity = max(fd.severity, 0.05) if fd.detected else 0.0
    return [found[k] for k in KINDS]


LINE_SPECTRUM_LINES = 8
LINE_SPECTRUM_HALF_WIDTH = 3      # bins either side of a line (the Hann main lobe is +-2)
LINE_SPECTRUM_RESIDUAL_DB = -40.0


def line_spectrum_residual_db(f: Features) -> float:
    """Power of the mean spectrum outside its ``LINE_SPECTRUM_LINES`` strongest lines
    (+-``LINE_SPECTRUM_HALF_WIDTH`` bins each), dB re the total.

    Measured: -51 to -79 dB for sine tones and tone steps written to 16-bit FLAC, -5 to
    -21 dB for every clean speech, music and historical recording of ../shared/data (a
    synthetic 12-partial chord: -18 dB).
    """
    p = np.asarray(f.mean_power, dtype=np.float64).copy()
    total = float(p.sum())
    if total <= 0:
        return 0.0
    w = LINE_SPECTRUM_HALF_WIDTH
    for _ in range(LINE_SPECTRUM_LINES):
        k = int(np.argmax(p))
        p[max(0, k - w): k + w + 1] = 0.0
    return float(10 * np.log10(max(float(p.sum()), 1e-30) / total))


def line_spectrum_only(f: Features) -> bool:
    """True when nearly all the power sits in a few spectral lines (steady tones)."""
    return f.mono_mean_square > 1e-11 and line_spectrum_residual_db(f) < LINE_SPECTRUM_RESIDUAL_DB


def _hum_fundamental_present(fd: Finding) -> bool:
    """A hum finding whose own fundamental is one of its lines (a lone tone at 330 Hz is
    the 6th harmonic of a 55 Hz candidate, not hum)."""
    f0 = fd.measures.get("fundamental_hz")
    return bool(fd.detected and f0 and any(abs(h - f0) < 0.5 for h in fd.measures.get("harmonics_hz") or []))


ROOM_TONE_MAX_DBFS = -50.0
ROOM_TONE_MAX_DYNAMICS_DB = 10.0


def _room_tone_only(f: Features, found: dict[str, Finding]) -> bool:
    """True for a quiet recording whose level never rises far above its steady floor."""
    level = 10 * np.log10(max(f.mono_mean_square, 1e-20))
    live = f.frame_db[f.frame_db > -110.0]
    if level > ROOM_TONE_MAX_DBFS or live.size == 0:
        return level <= -110.0
    return float(np.percentile(live, 95) - np.percentile(live, 10)) < ROOM_TONE_MAX_DYNAMICS_DB


def _profile(path: str, f: Features) -> Profile:
    dc = float(np.max(np.abs(f.mean))) if f.channels else 0.0
    return Profile(path=path, duration_s=round(f.duration_s, 6), sample_rate=f.sample_rate,
                   channels=f.channels,
                   loudness_lufs=None if f.loudness_lufs is None else round(f.loudness_lufs, 3),
                   true_peak_dbtp=None if f.true_peak_dbtp is None else round(f.true_peak_dbtp, 3),
                   dc_offset=round(dc, 6), findings=findings_from_features(f))


def features_of_audio(audio: np.ndarray, sample_rate: int, *, chunk_s: float = CHUNK_S,
                      history_s: float = HISTORY_S) -> Features:
    """:class:`Features` of an in-memory ``(channels, samples)`` (or ``(samples,)``) signal
    (``history_s``: see :class:`FeatureAccumulator`)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise InvalidAudioError("<array>", f"expected (channels, samples) audio, got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise InvalidAudioError("<array>", "audio contains NaN or infinite samples")
    acc = FeatureAccumulator(sample_rate, audio.shape[0], chunk_s=chunk_s, history_s=history_s)
    step = max(1, int(BLOCK_S * sample_rate))
    with single_threaded_blas():
        for i in range(0, audio.shape[1], step):
            acc.update(audio[:, i:i + step])
        return acc.finish()


def analyze_audio(audio: np.ndarray, sample_rate: int, *, path: str = "<array>") -> Profile:
    """Analyse an in-memory signal.

    Args:
        audio: float ``(channels, samples)`` (or ``(samples,)``), full scale +-1.
        sample_rate: Hz.
        path: the name to record in the profile.

    Returns:
        A :class:`Profile` with one finding per kind of ``archtool.kinds.KINDS``.
    """
    return _profile(path, features_of_audio(audio, sample_rate))


#: Files shorter than this get a warning: most detectors need seconds of audio to judge.
SHORT_FILE_S = 1.0


def _stream_features(path: str | Path, chunk_s: float = CHUNK_S) -> tuple[Features, str | None]:
    """Features of ``path`` streamed in blocks, and the reader's note if it decoded short."""
    from archtool.audio.io import BlockReader, probe

    info = probe(path)
    acc = FeatureAccumulator(info.sample_rate, info.channels, chunk_s=chunk_s)
    block = max(1024, int(BLOCK_S * info.sample_rate))
    with BlockReader(path, block, info=info) as reader, single_threaded_blas():
        for b in reader:
            acc.update(b)
        return acc.finish(), reader.shortfall_note()


def features_of_file(path: str | Path, *, chunk_s: float = CHUNK_S) -> Features:
    """Stream ``path`` through :class:`FeatureAccumulator` (bounded memory)."""
    return _stream_features(path, chunk_s)[0]


def analyze_file(path: str | Path) -> Profile:
    """Analyse one audio file, streamed in blocks (memory does not grow with its length).

    Raises ``AudioReadError`` / ``InvalidAudioError`` naming the file when it cannot be
    decoded or holds NaN/inf samples. A file that decodes short of the length its header
    declares, or is very short, is analysed as it is, with a warning in the profile.
    """
    f, shortfall = _stream_features(path)
    profile = _profile(str(path), f)
    if shortfall:
        profile.warnings.append(shortfall)
    if f.duration_s < SHORT_FILE_S:
        profile.warnings.append(f"only {f.duration_s:.2f} s long: too short for reliable findings")
    return profile


def restoration_need(profile: Profile) -> float:
    """A 0..1 score to rank files by how much restoration they need.

    The root-sum-square of the severities of detected findings, each weighted by its
    confidence, squashed so that one severe defect scores ~0.7 and several score near 1.
    """
    s = sum((fd.severity * fd.confidence) ** 2 for fd in profile.findings if fd.detected)
    return float(1.0 - math.exp(-1.2 * math.sqrt(s)))
