"""Decode, encode and probe audio through ffmpeg (ffmpeg-python builds the commands).

Audio in memory is float32 with shape ``(channels, samples)`` at its native rate.
Long files are streamed with :class:`BlockReader` / :class:`BlockWriter`, which move
raw float32 PCM through pipes so that nothing holds a whole file.
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


def probe(path: str | Path) -> AudioInfo:
    """Probe ``path`` with ffmpeg and describe its first audio stream.

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
    proc = _run([ffmpeg_executable(), "-hide_banner", "-nostdin", "-i", str(path)])
    text = proc.stderr.decode("utf-8", "replace")
    stream = _STREAM_RE.search(text)
    if not stream:
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


def read_audio(path: str | Path, *, info: AudioInfo | None = None,
               start_s: float | None = None, duration_s: float | None = None,
               check_finite: bool = True) -> tuple[np.ndarray, int]:
    """Decode a whole file (or an excerpt) to float32 ``(channels, samples)``.

    Returns ``(audio, sample_rate)`` at the native rate. Raises AudioReadError on
    decoding failures and InvalidAudioError when samples are NaN or infinite.
    """
    path = Path(path)
    info = info or probe(path)
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
    """Stream a file as float32 ``(channels, n)`` blocks through an ffmpeg pipe.

    Use as a context manager or iterate; memory is bounded by ``block_samples``.
    Raises AudioReadError (naming the file) if ffmpeg fails mid-stream.
    """

    def __init__(self, path: str | Path, block_samples: int = 1 << 16, *,
                 info: AudioInfo | None = None, check_finite: bool = True):
        self.path = Path(path)
        self.info = info or probe(self.path)
        self.block_samples = int(block_samples)
        self.check_finite = check_finite
        self._proc: subprocess.Popen | None = None
        self.samples_read = 0

    def __enter__(self) -> "BlockReader":
        self._proc = subprocess.Popen(
            _decode_cmd(self.path, self.info.channels),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            for f in (self._proc.stdout, self._proc.stderr):
                if f:
                    f.close()
            self._proc = None

    def __iter__(self) -> Iterator[np.ndarray]:
        own = self._proc is None
        if own:
            self.__enter__()
        try:
            assert self._proc is not None and self._proc.stdout is not None
            ch = self.info.channels
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
        finally:
            if own:
                self.close()


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
