"""Decode, encode and probe audio through ffmpeg (ffmpeg-python builds the commands).

Audio in memory is float32 with shape ``(channels, samples)`` at its native rate.
Long files are streamed with :class:`BlockReader` / :class:`BlockWriter`, which move
raw float32 PCM through pipes so that nothing holds a whole file.

Uncompressed WAV/RF64 and AIFF and FLAC inputs (the common archival masters) are probed
and decoded in this process with libsndfile (``soundfile``) instead: no ffmpeg process
runs beside the caller, which keeps a worker's CPU use to one core. The samples are the
ones ffmpeg gives, bit for bit (integers are read left-justified in 32 bits and scaled
by 2^-31 in float32, as ffmpeg's converter does), and :func:`probe` reports the same
:class:`AudioInfo`. Everything else (lossy codecs, AIFF-C, other containers, excerpts,
files libsndfile cannot read) goes through ffmpeg; a file libsndfile fails on part-way
is finished by ffmpeg from where it stopped. ``ARCHTOOL_DECODER=ffmpeg`` turns the
in-process path off.

A file ffmpeg cannot open at all but libsndfile can (Sound Designer II, HTK, MAT, Akai
MPC 2000, and Ogg Vorbis files whose headers this ffmpeg rejects) is rescued: probed and
decoded by libsndfile alone, with its container reported as ``"<format> (libsndfile)"``.
"""
from __future__ import annotations

import os
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import ffmpeg
import numpy as np

from archtool.audio.ffmpeg import ffmpeg_executable
from archtool.errors import AudioReadError, AudioWriteError, InvalidAudioError

LOSSLESS_CODECS = {"flac", "alac", "wavpack", "ape", "tta", "mlp", "truehd", "shorten", "tak"}
MIN_RATE, MAX_RATE = 8000, 192000

_LAYOUT_CHANNELS = {
    "mono": 1, "stereo": 2, "2.1": 3, "3.0": 3, "3.0(back)": 3, "4.0": 4, "quad": 4,
    "quad(side)": 4, "3.1": 4, "4.1": 5, "5.0": 5, "5.0(side)": 5, "5.1": 6, "5.1(side)": 6,
    "6.0": 6, "6.0(front)": 6, "hexagonal": 6, "6.1": 7, "6.1(back)": 7, "6.1(front)": 7,
    "7.0": 7, "7.0(front)": 7, "7.1": 8, "7.1(wide)": 8, "7.1(wide-side)": 8, "octagonal": 8,
    "downmix": 2, "hexadecagonal": 16, "22.2": 24,
}
_STREAM_RE = re.compile(r"Stream #\d+:\d+.*?: Audio: (?P<rest>.*)")
_DURATION_RE = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class AudioInfo:
    """What probing a file tells: enough to decode it and to choose an output format."""

    path: str
    sample_rate: int
    channels: int
    duration_s: float
    codec: str
    sample_format: str
    bits_per_sample: int | None  # None for lossy codecs
    container: str

    @property
    def lossless(self) -> bool:
        return self.codec.startswith("pcm_") or self.codec in LOSSLESS_CODECS

    @property
    def is_float(self) -> bool:
        return self.codec.startswith("pcm_f")

    def to_dict(self) -> dict:
        return asdict(self) | {"lossless": self.lossless}


def _run(cmd: list[str], *, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, input=input, capture_output=True, check=False)


def _ffmpeg_reason(stderr: bytes, default: str) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    for ln in lines:
        low = ln.lower()
        if "no space left" in low:
            return "no space left on device"
        if "permission denied" in low:
            return "permission denied"
        if "invalid data found" in low:
            return "not a recognisable audio file (invalid data)"
    return lines[-1] if lines else default


def _channels_from_layout(text: str) -> int | None:
    text = text.strip()
    m = re.match(r"(\d+) channels", text)
    if m:
        return int(m.group(1))
    return _LAYOUT_CHANNELS.get(text.split(" ")[0])


# -- in-process decoding (libsndfile) ---------------------------------------------------------
# (container magic, libsndfile format, subtype) -> (ffmpeg codec, ffmpeg sample format, bits,
# ffmpeg container name, dtype libsndfile reads it as). Integer PCM is read as left-justified
# int32 and scaled by 2^-31 in float32: exactly ffmpeg's s16/s32/u8 -> flt conversion.
_NATIVE_FORMATS: dict[tuple[str, str], tuple[str, str, int, str, str]] = {
    ("WAV", "PCM_U8"): ("pcm_u8", "u8", 8, "wav", "int32"),
    ("WAV", "PCM_16"): ("pcm_s16le", "s16", 16, "wav", "int32"),
    ("WAV", "PCM_24"): ("pcm_s24le", "s32", 24, "wav", "int32"),
    ("WAV", "PCM_32"): ("pcm_s32le", "s32", 32, "wav", "int32"),
    ("WAV", "FLOAT"): ("pcm_f32le", "flt", 32, "wav", "float32"),
    ("WAV", "DOUBLE"): ("pcm_f64le", "dbl", 64, "wav", "float64"),
    ("AIFF", "PCM_S8"): ("pcm_s8", "u8", 8, "aiff", "int32"),
    ("AIFF", "PCM_16"): ("pcm_s16be", "s16", 16, "aiff", "int32"),
    ("AIFF", "PCM_24"): ("pcm_s24be", "s32", 24, "aiff", "int32"),
    ("AIFF", "PCM_32"): ("pcm_s32be", "s32", 32, "aiff", "int32"),
    ("FLAC", "PCM_16"): ("flac", "s16", 16, "flac", "int32"),
    ("FLAC", "PCM_24"): ("flac", "s32", 24, "flac", "int32"),
}
_INT_SCALE = np.float32(2.0 ** -31)


@dataclass(frozen=True)
class _Native:
    """How libsndfile reads a file, and what ffmpeg would report for it."""

    sample_rate: int
    channels: int
    frames: int
    codec: str
    sample_format: str
    bits: int
    container: str
    dtype: str


def _soundfile():
    """The ``soundfile`` module, or None (not installed, or turned off by ARCHTOOL_DECODER=ffmpeg)."""
    if os.environ.get("ARCHTOOL_DECODER", "").lower() == "ffmpeg":
        return None
    try:
        import soundfile
    except (ImportError, OSError):  # no wheel for this platform, or libsndfile missing
        return None
    return soundfile


def _native(path: Path) -> _Native | None:
    """What libsndfile makes of ``path`` if it is a format decoded in-process, else None.

    Only plain RIFF/RF64 WAV (little-endian), AIFF (not AIFF-C) and FLAC without a leading
    ID3 tag qualify, with the sample types of ``_NATIVE_FORMATS`` and a known length.
    """
    sf = _soundfile()
    if sf is None:
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(12)
        if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
            family = "WAV"
        elif head[:4] == b"FORM" and head[8:12] == b"AIFF":
            family = "AIFF"
        elif head[:4] == b"fLaC":
            family = "FLAC"
        else:
            return None
        info = sf.info(str(path))
    except Exception:  # libsndfile refuses it: ffmpeg decides
        return None
    fmt = {"WAVEX": "WAV", "RF64": "WAV"}.get(info.format, info.format)
    found = _NATIVE_FORMATS.get((fmt, info.subtype))
    if fmt != family or found is None or info.frames <= 0 or info.channels <= 0 or info.samplerate <= 0:
        return None
    codec, sample_format, bits, container, dtype = found
    return _Native(int(info.samplerate), int(info.channels), int(info.frames), codec, sample_format, bits,
                   container, dtype)


RESCUED = " (libsndfile)"  # container suffix of a file only libsndfile decodes
# MPEG audio ffmpeg cannot open is beyond libsndfile too, whose mpg123 would only print
# resync notes on the terminal while trying
_NO_RESCUE = {".mp3", ".mp2", ".mp1", ".mpa"}


def _rescue(path: Path) -> _Native | None:
    """How libsndfile reads a file ffmpeg cannot open (any format it knows), else None.

    PCM is read as left-justified int32 (scaled as the native path does), anything else as
    float32."""
    sf = _soundfile()
    if sf is None or path.suffix.lower() in _NO_RESCUE:
        return None
    try:
        info = sf.info(str(path))
    except Exception:
        return None
    if info.frames <= 0 or info.channels <= 0 or info.samplerate <= 0:
        return None
    subtype = str(info.subtype)
    bits = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}.get(subtype)
    pcm = bits is not None
    return _Native(int(info.samplerate), int(info.channels), int(info.frames),
                   f"pcm_{subtype[4:].lower()}" if pcm else subtype.lower(),
                   {8: "u8", 16: "s16"}.get(bits, "s32") if pcm else "flt", bits or 0,
                   str(info.format).lower() + RESCUED, "int32" if pcm else "float32")


def rescued(info: AudioInfo) -> bool:
    """True for a file only libsndfile decodes (ffmpeg cannot open it)."""
    return info.container.endswith(RESCUED)


def _decoder_for(path: Path, info: AudioInfo) -> _Native | None:
    """The in-process reading of ``path`` matching ``info``, or None where ffmpeg decodes."""
    native = _rescue(path) if rescued(info) else _native(path)
    if native is None or (native.sample_rate, native.channels) != (info.sample_rate, info.channels):
        return None
    return native


#: Missing audio below this (seconds, or this share of the declared length) is not reported:
#: ffmpeg rounds the declared duration to 10 ms, and codec priming can differ by a frame.
SHORTFALL_MIN_S = 0.05
SHORTFALL_MIN_SHARE = 0.005


def _declared_pcm_frames(path: Path) -> int | None:
    """Sample frames a RIFF/WAVE or AIFF header declares, or None (another format, or a size
    a recorder never filled in: 0 or 0xFFFFFFFF). ffmpeg's duration for these
    files follows the file's size, so a cut-off WAV would otherwise look complete."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        align, pos = None, 12
        while pos + 8 <= len(head):
            cid, size = head[pos:pos + 4], int.from_bytes(head[pos + 4:pos + 8], "little")
            if cid == b"fmt " and pos + 22 <= len(head):
                align = int.from_bytes(head[pos + 20:pos + 22], "little")
            elif cid == b"data":
                if not align or size == 0 or size >= 0x7FFFF000:
                    return None
                return size // align
            pos += 8 + size + (size & 1)
        return None
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        pos = 12
        while pos + 8 <= len(head):
            cid, size = head[pos:pos + 4], int.from_bytes(head[pos + 4:pos + 8], "big")
            if cid == b"COMM" and pos + 14 <= len(head):
                frames = int.from_bytes(head[pos + 10:pos + 14], "big")
                return frames or None
            pos += 8 + size + (size & 1)
    return None


def shortfall_note(info: AudioInfo, samples_decoded: int) -> str | None:
    """A note naming how much of the file's declared length did not decode (lossless files
    only), or None when what decoded is the whole file. The declared length is the longer of
    ffmpeg's duration and, for WAV/AIFF, the sample count in the header. See
    :meth:`BlockReader.shortfall_note`."""
    if not info.lossless or info.sample_rate <= 0:
        return None
    declared_s = info.duration_s
    frames = _declared_pcm_frames(Path(info.path))
    if frames is not None:
        declared_s = max(declared_s, frames / info.sample_rate)
    decoded_s = samples_decoded / info.sample_rate
    missing_s = declared_s - decoded_s
    if missing_s <= max(SHORTFALL_MIN_S, SHORTFALL_MIN_SHARE * declared_s):
        return None
    return (f"truncated or damaged: only {decoded_s:.2f} s of the {declared_s:.2f} s its header "
            f"declares could be decoded ({missing_s:.2f} s missing)")


def _ffmpeg_duration(frames: int, rate: int) -> float:
    """The duration ffmpeg prints for ``frames`` at ``rate`` (rounded to 10 ms), parsed as
    :func:`probe` parses ffmpeg's text, so both paths give the same float."""
    us = (frames * 1_000_000 + rate // 2) // rate  # av_rescale: nearest microsecond
    cs = (us + 5000) // 10000  # av_dump_format adds 5 ms, then prints centiseconds
    h, rest = divmod(cs, 360000)
    m, rest = divmod(rest, 6000)
    s = float(f"{rest // 100}.{rest % 100:02d}")
    return int(h) * 3600 + int(m) * 60 + s


def _native_block(raw: np.ndarray, dtype: str) -> np.ndarray:
    """libsndfile's ``(n, channels)`` block as ffmpeg's float32 ``(channels, n)``."""
    out = np.empty((raw.shape[1], raw.shape[0]), dtype=np.float32)
    out[...] = raw.T  # int32 -> float32 rounds to nearest, as ffmpeg's converter does
    if dtype == "int32":
        out *= _INT_SCALE  # a power of two: exact
    return out


def _native_info(path: Path, native: _Native) -> AudioInfo:
    """The AudioInfo of a file libsndfile reads (natively or as a rescue)."""
    if not (MIN_RATE <= native.sample_rate <= MAX_RATE):
        raise AudioReadError(path, f"sample rate {native.sample_rate} Hz is outside the supported 8-192 kHz")
    return AudioInfo(str(path), native.sample_rate, native.channels,
                     _ffmpeg_duration(native.frames, native.sample_rate), native.codec,
                     native.sample_format, native.bits or None, native.container)


def probe(path: str | Path) -> AudioInfo:
    """Probe ``path`` and describe its first audio stream (libsndfile for WAV/AIFF/FLAC,
    else ffmpeg; both give the same :class:`AudioInfo`).

    Recognises audio by content, not extension. Raises AudioReadError naming the
    file and the reason when the file is missing, unreadable, empty, not audio,
    or has a sample rate outside 8-192 kHz.
    """
    path = Path(path)
    if not path.exists():
        raise AudioReadError(path, "file not found")
    if not os.access(path, os.R_OK):
        raise AudioReadError(path, "permission denied (file is not readable)")
    if path.stat().st_size == 0:
        raise AudioReadError(path, "file is empty (0 bytes)")
    native = _native(path)
    if native is not None:
        return _native_info(path, native)
    proc = _run([ffmpeg_executable(), "-hide_banner", "-nostdin", "-i", str(path)])
    text = proc.stderr.decode("utf-8", "replace")
    stream = _STREAM_RE.search(text)
    if not stream:
        saved = _rescue(path)
        if saved is not None:
            return _native_info(path, saved)
        if "Invalid data" in text or "could not find codec" in text.lower() or "Stream #" not in text:
            raise AudioReadError(path, "not an audio file (ffmpeg found no audio stream)")
        raise AudioReadError(path, _ffmpeg_reason(proc.stderr, "no audio stream"))
    parts = [p.strip() for p in stream.group("rest").split(",")]
    codec = parts[0].split(" ")[0]
    rate = channels = None
    sample_format, bits = "", None
    for i, p in enumerate(parts[1:], start=1):
        if p.endswith(" Hz"):
            rate = int(p.split()[0])
            if i + 1 < len(parts):
                channels = _channels_from_layout(parts[i + 1])
            if i + 2 < len(parts):
                sample_format = parts[i + 2].split(" ")[0]
                m = re.search(r"\((\d+) bit\)", parts[i + 2])
                if m:
                    bits = int(m.group(1))
            break
    if rate is None or channels is None:
        raise AudioReadError(path, f"could not read rate/channels from stream: {stream.group('rest')}")
    if not (MIN_RATE <= rate <= MAX_RATE):
        raise AudioReadError(path, f"sample rate {rate} Hz is outside the supported 8-192 kHz")
    container = ""
    m = re.search(r"Input #0, ([^,]+)", text)
    if m:
        container = m.group(1)
    lossless = codec.startswith("pcm_") or codec in LOSSLESS_CODECS
    if lossless and bits is None:
        bits = {"s16": 16, "s16p": 16, "s32": 32, "s32p": 32, "flt": 32, "fltp": 32,
                "dbl": 64, "dblp": 64, "u8": 8, "u8p": 8, "s64": 64}.get(sample_format)
        if codec.startswith("pcm_s24") or codec.startswith("pcm_u24"):
            bits = 24
    if not lossless:
        bits = None
    dm = _DURATION_RE.search(text)
    duration = 0.0
    if dm:
        h, mnt, s = dm.groups()
        duration = int(h) * 3600 + int(mnt) * 60 + float(s)
    return AudioInfo(str(path), rate, channels, duration, codec, sample_format, bits, container)


def _decode_cmd(path: Path, channels: int, start_s: float | None = None,
                duration_s: float | None = None) -> list[str]:
    in_kwargs = {}
    if start_s:
        in_kwargs["ss"] = f"{start_s:.6f}"
    if duration_s is not None:
        in_kwargs["t"] = f"{duration_s:.6f}"
    stream = ffmpeg.input(str(path), **in_kwargs)
    out = stream.output("pipe:", format="f32le", acodec="pcm_f32le", ac=channels, map="0:a:0")
    return [ffmpeg_executable(), "-nostdin", "-hide_banner", "-v", "error", *out.get_args()]


def _read_native(path: Path, info: AudioInfo, start: int = 0, frames: int = -1) -> np.ndarray | None:
    """The whole file (or ``frames`` from ``start``, rescued files only) decoded in-process,
    or None where ffmpeg must do it (any libsndfile error included: ffmpeg then decodes what
    it can, as it always did). A rescued file has no ffmpeg to fall back on: its errors raise."""
    native = _decoder_for(path, info)
    if native is None:
        if rescued(info):
            raise AudioReadError(path, "libsndfile can no longer read it (and ffmpeg cannot open it)")
        return None
    sf = _soundfile()
    try:
        with sf.SoundFile(str(path)) as f:
            if start:
                f.seek(min(start, native.frames))
            raw = f.read(frames, dtype=native.dtype, always_2d=True)
    except Exception as e:
        if rescued(info):
            raise AudioReadError(path, f"decoding failed (libsndfile: {e})") from None
        return None
    # libsndfile stopped short: ffmpeg decodes it (a rescued file's length is libsndfile's own
    # estimate for some codecs, e.g. Vorbis, so what it reads is what there is)
    if frames < 0 and raw.shape[0] != native.frames and not rescued(info):
        return None
    return _native_block(raw, native.dtype)


def read_audio(path: str | Path, *, info: AudioInfo | None = None,
               start_s: float | None = None, duration_s: float | None = None,
               check_finite: bool = True) -> tuple[np.ndarray, int]:
    """Decode a whole file (or an excerpt) to float32 ``(channels, samples)``.

    Returns ``(audio, sample_rate)`` at the native rate. Raises AudioReadError on
    decoding failures and InvalidAudioError when samples are NaN or infinite.
    """
    path = Path(path)
    info = info or probe(path)
    if rescued(info) and (start_s is not None or duration_s is not None):
        start = int(round((start_s or 0.0) * info.sample_rate))
        count = -1 if duration_s is None else int(round(duration_s * info.sample_rate))
        audio = _read_native(path, info, start, count)
        if audio.shape[1] == 0:
            raise AudioReadError(path, "no audio samples in the requested excerpt")
        if check_finite and not np.isfinite(audio).all():
            raise InvalidAudioError(path, "audio contains NaN or infinite samples")
        return audio, info.sample_rate
    if start_s is None and duration_s is None:
        audio = _read_native(path, info)
        if audio is not None:
            if audio.shape[1] == 0:
                raise AudioReadError(path, "no audio samples could be decoded (truncated or corrupt file)")
            if check_finite and not np.isfinite(audio).all():
                raise InvalidAudioError(path, "audio contains NaN or infinite samples")
            return audio, info.sample_rate
    proc = _run(_decode_cmd(path, info.channels, start_s, duration_s))
    if proc.returncode != 0:
        raise AudioReadError(path, "decoding failed: " + _ffmpeg_reason(proc.stderr, "ffmpeg error"))
    if proc.stderr.strip() and not proc.stdout:
        raise AudioReadError(path, "decoding failed: " + _ffmpeg_reason(proc.stderr, "no samples"))
    audio = np.frombuffer(proc.stdout, dtype="<f4")
    n = audio.size // info.channels
    audio = audio[: n * info.channels].reshape(n, info.channels).T.copy()
    if n == 0:
        raise AudioReadError(path, "no audio samples could be decoded (truncated or corrupt file)")
    if check_finite and not np.isfinite(audio).all():
        raise InvalidAudioError(path, "audio contains NaN or infinite samples")
    return audio, info.sample_rate


class BlockReader:
    """Stream a file as float32 ``(channels, n)`` blocks: in-process through libsndfile for
    WAV/AIFF/FLAC (see the module's docstring), else through an ffmpeg pipe.

    Use as a context manager or iterate; memory is bounded by ``block_samples``. Every
    block but the last has ``block_samples`` samples, whichever decoder runs; if libsndfile
    fails part-way, ffmpeg takes over at the first sample not yet given out. Raises
    AudioReadError (naming the file) if decoding fails mid-stream.
    """

    def __init__(self, path: str | Path, block_samples: int = 1 << 16, *,
                 info: AudioInfo | None = None, check_finite: bool = True):
        self.path = Path(path)
        self.info = info or probe(self.path)
        self.block_samples = int(block_samples)
        self.check_finite = check_finite
        self._proc: subprocess.Popen | None = None
        self._sf = None  # an open soundfile.SoundFile while decoding in-process
        self._native: _Native | None = None
        self.samples_read = 0

    @property
    def in_process(self) -> bool:
        """True while libsndfile (not an ffmpeg process) decodes the file."""
        return self._sf is not None

    def shortfall_note(self) -> str | None:
        """After reading to the end: a note when clearly fewer samples decoded than the
        header declares (a truncated or damaged file, which decoders finish silently), else
        None. Only for lossless codecs, whose headers count samples exactly; a lossy file's
        duration can be an estimate."""
        return shortfall_note(self.info, self.samples_read)

    def __enter__(self) -> "BlockReader":
        native = _decoder_for(self.path, self.info)
        if native is not None:
            try:
                self._sf = _soundfile().SoundFile(str(self.path))
                self._native = native
            except Exception:
                self._sf = None
        if self._sf is None:
            if rescued(self.info):
                raise AudioReadError(self.path, "libsndfile can no longer read it (and ffmpeg cannot open it)")
            self._start_ffmpeg()
        return self

    def _start_ffmpeg(self) -> None:
        self._proc = subprocess.Popen(
            _decode_cmd(self.path, self.info.channels),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._sf is not None:
            self._sf.close()
            self._sf = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            for f in (self._proc.stdout, self._proc.stderr):
                if f:
                    f.close()
            self._proc = None

    def __iter__(self) -> Iterator[np.ndarray]:
        own = self._proc is None and self._sf is None
        if own:
            self.__enter__()
        try:
            if self._sf is not None:
                if (yield from self._native_blocks()):
                    return
                if rescued(self.info):
                    raise AudioReadError(self.path, "decoding stopped short (truncated or corrupt file)")
                self._sf.close()  # libsndfile stopped short: ffmpeg decodes the rest
                self._sf = None
                self._start_ffmpeg()
            yield from self._ffmpeg_blocks(skip=self.samples_read)
        finally:
            if own:
                self.close()

    def _native_blocks(self) -> Iterator[np.ndarray]:
        """Blocks from libsndfile; returns True when the whole file was read, False when
        libsndfile failed (nothing of the failed block has been given out)."""
        native, f, want = self._native, self._sf, self.block_samples
        assert native is not None and f is not None
        only = rescued(self.info)  # no ffmpeg to finish it; its frame count may be an estimate
        while only or self.samples_read < native.frames:
            try:
                raw = f.read(want, dtype=native.dtype, always_2d=True)
            except Exception:
                return False
            n = raw.shape[0]
            if only and n == 0:
                break
            if n < want and self.samples_read + n != native.frames and not only:
                return False
            block = _native_block(raw, native.dtype)
            if self.check_finite and native.dtype != "int32" and not np.isfinite(block).all():
                raise InvalidAudioError(self.path, "audio contains NaN or infinite samples")
            self.samples_read += n
            yield block
        return True

    def _ffmpeg_blocks(self, skip: int = 0) -> Iterator[np.ndarray]:
        """Blocks from the ffmpeg pipe, the first ``skip`` samples left out."""
        assert self._proc is not None and self._proc.stdout is not None
        ch = self.info.channels
        skip_bytes = skip * ch * 4
        while skip_bytes > 0:
            data = self._proc.stdout.read(min(skip_bytes, 1 << 22))
            if not data:
                break
            skip_bytes -= len(data)
        nbytes = self.block_samples * ch * 4
        carry = b""
        while True:
            data = self._proc.stdout.read(nbytes)
            if not data:
                break
            data = carry + data
            usable = len(data) - len(data) % (ch * 4)
            carry = data[usable:]
            block = np.frombuffer(data[:usable], dtype="<f4").reshape(-1, ch).T.copy()
            if self.check_finite and not np.isfinite(block).all():
                raise InvalidAudioError(self.path, "audio contains NaN or infinite samples")
            self.samples_read += block.shape[1]
            yield block
        rc = self._proc.wait()
        err = self._proc.stderr.read() if self._proc.stderr else b""
        if rc != 0:
            raise AudioReadError(self.path, "decoding failed: " + _ffmpeg_reason(err, "ffmpeg error"))
        if self.samples_read == 0:
            raise AudioReadError(self.path, "no audio samples could be decoded (truncated or corrupt file)")


@dataclass(frozen=True)
class OutputSpec:
    """How to encode: container/codec and sample representation.

    ``fmt`` is ``"flac"``, ``"wav"`` or ``"aiff"``; ``bits`` is 16, 24 or 32;
    ``float`` selects 32-bit float (WAV only).
    """

    fmt: str = "flac"
    bits: int = 24
    float: bool = False

    @property
    def extension(self) -> str:
        return {"flac": ".flac", "wav": ".wav", "aiff": ".aiff"}[self.fmt]

    def codec_args(self) -> dict:
        if self.fmt == "flac":
            if self.bits <= 16:
                return {"acodec": "flac", "sample_fmt": "s16"}
            return {"acodec": "flac", "sample_fmt": "s32", "bits_per_raw_sample": 24}
        if self.fmt == "wav":
            if self.float:
                return {"acodec": "pcm_f32le"}
            return {"acodec": {16: "pcm_s16le", 24: "pcm_s24le", 32: "pcm_s32le"}[self.bits]}
        if self.fmt == "aiff":
            return {"acodec": {16: "pcm_s16be", 24: "pcm_s24be", 32: "pcm_s32be"}[min(self.bits, 32)]}
        raise ValueError(f"unknown output format {self.fmt!r}")

    @classmethod
    def for_input(cls, info: AudioInfo, fmt: str = "same") -> "OutputSpec":
        """The output spec that keeps the input's bit depth (24 in -> 24 out).

        ``fmt="same"`` keeps WAV/AIFF/FLAC; lossy and other inputs become FLAC.
        """
        if fmt not in ("same", "flac", "wav"):
            raise ValueError(f"format must be same, flac or wav, not {fmt!r}")
        bits = info.bits_per_sample or 24
        bits = 16 if bits <= 16 else (24 if bits <= 24 else 32)
        if fmt == "same":
            if info.codec.startswith("pcm_") and info.container.startswith("wav"):
                fmt = "wav"
            elif info.codec.startswith("pcm_") and "aiff" in info.container:
                fmt = "aiff"
            else:
                fmt = "flac"
        if fmt == "wav":
            return cls("wav", bits if not info.is_float else 32, info.is_float)
        if fmt == "aiff":
            return cls("aiff", bits)
        return cls("flac", 16 if bits == 16 else 24)


def _encode_cmd(path: Path, sample_rate: int, channels: int, spec: OutputSpec,
                metadata: dict[str, str] | None, stream=None) -> list[str]:
    if stream is None:
        stream = ffmpeg.input("pipe:", format="f32le", ar=sample_rate, ac=channels)
    kwargs: dict = dict(spec.codec_args())
    kwargs["ar"] = sample_rate
    kwargs["format"] = {"flac": "flac", "wav": "wav", "aiff": "aiff"}[spec.fmt]
    if spec.fmt == "wav":
        kwargs["write_bext"] = 1
        kwargs["rf64"] = "auto"
    args = ffmpeg.output(stream, str(path), **kwargs).get_args()
    meta: list[str] = []
    for k, v in (metadata or {}).items():
        meta += ["-metadata", f"{k}={v}"]
    # metadata and bitexact flags go before the output path (the last argument)
    return [ffmpeg_executable(), "-nostdin", "-hide_banner", "-v", "error", "-y",
            *args[:-1], "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact", *meta, args[-1]]


class BlockWriter:
    """Encode float32 ``(channels, n)`` blocks into a file through an ffmpeg pipe.

    The file at ``path`` is written directly: callers wanting atomicity write to a
    temporary path and rename (see ``archtool.engine.atomic``). Samples are clipped
    to [-1, 1] before integer encoding. Raises AudioWriteError naming the file.
    """

    def __init__(self, path: str | Path, sample_rate: int, channels: int,
                 spec: OutputSpec = OutputSpec(), metadata: dict[str, str] | None = None):
        self.path = Path(path)
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.spec = spec
        self.metadata = metadata
        self._proc: subprocess.Popen | None = None
        self.samples_written = 0

    def __enter__(self) -> "BlockWriter":
        self._proc = subprocess.Popen(
            _encode_cmd(self.path, self.sample_rate, self.channels, self.spec, self.metadata),
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        return self

    def write(self, block: np.ndarray) -> None:
        assert self._proc is not None and self._proc.stdin is not None, "use BlockWriter as a context manager"
        block = np.asarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[0] != self.channels:
            raise InvalidAudioError(self.path, f"expected ({self.channels}, n) block, got {block.shape}")
        if not self.spec.float:
            block = np.clip(block, -1.0, 1.0)
        try:
            self._proc.stdin.write(np.ascontiguousarray(block.T).astype("<f4").tobytes())
        except (BrokenPipeError, OSError) as exc:
            reason = self._finish_error() or str(exc)
            raise AudioWriteError(self.path, f"encoding failed: {reason}") from None
        self.samples_written += block.shape[1]

    def _finish_error(self) -> str:
        assert self._proc is not None
        try:
            self._proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        self._proc.wait()
        err = self._proc.stderr.read() if self._proc.stderr else b""
        return _ffmpeg_reason(err, "") if self._proc.returncode else ""

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._proc is None:
            return
        try:
            if exc_type is not None:
                self._proc.kill()
                self._proc.wait()
                return
            try:
                self._proc.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass
            rc = self._proc.wait()
            err = self._proc.stderr.read() if self._proc.stderr else b""
            if rc != 0:
                raise AudioWriteError(self.path, "encoding failed: " + _ffmpeg_reason(err, "ffmpeg error"))
        finally:
            if self._proc.stderr:
                self._proc.stderr.close()
            self._proc = None


def transcode_with_gain(source: str | Path, path: str | Path, sample_rate: int, channels: int,
                        gain_db: float, spec: OutputSpec = OutputSpec(),
                        metadata: dict[str, str] | None = None, *, raw_float32: bool = False) -> None:
    """Decode ``source``, scale it by ``gain_db`` and encode it to ``path``, all in one ffmpeg
    process (a plain gain needs no Python in the loop, so this is the fast second loudness pass).

    ``source`` is an audio file (its first audio stream is used, as :class:`BlockReader`
    does), or raw interleaved little-endian float32 samples when ``raw_float32``. The result
    equals writing ``BlockReader`` blocks times the gain through :class:`BlockWriter`: samples
    are scaled in float32 and saturate at full scale when encoded to integers.
    Raises AudioWriteError naming ``path``.
    """
    source, path = Path(source), Path(path)
    if raw_float32:
        stream = ffmpeg.input(str(source), format="f32le", ar=sample_rate, ac=channels)
    else:
        stream = ffmpeg.input(str(source))["a:0"]
    stream = stream.filter("volume", volume=f"{10 ** (gain_db / 20):.17g}", precision="float")
    cmd = _encode_cmd(path, sample_rate, channels, spec, metadata, stream)
    cmd[-1:-1] = ["-ac", str(channels)]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise AudioWriteError(path, "encoding failed: " + _ffmpeg_reason(proc.stderr, "ffmpeg error"))


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int,
                spec: OutputSpec = OutputSpec(), metadata: dict[str, str] | None = None,
                block_samples: int = 1 << 18) -> None:
    """Encode a whole ``(channels, samples)`` array to ``path`` (FLAC, WAV or AIFF)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    with BlockWriter(path, sample_rate, audio.shape[0], spec, metadata) as w:
        for start in range(0, audio.shape[1], block_samples):
            w.write(audio[:, start:start + block_samples])
