"""BWF ``bext`` chunk (EBU Tech 3285 v2) and audio-data checksums.

ffmpeg's WAV muxer writes a version-1 ``bext`` chunk before ``data`` with our
description and CodingHistory; :func:`patch_bext_loudness` then sets version 2 and
the loudness fields in place. :func:`audio_data_md5` is the MD5 of the ``data``
chunk's bytes (what BWF MetaEdit reports as MD5Generated) for WAV, and the FLAC
STREAMINFO MD5 of the decoded samples for FLAC.
"""
from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from pathlib import Path

# Offsets inside the bext chunk body (EBU Tech 3285 v2).
_VERSION_AT = 256 + 32 + 32 + 10 + 8 + 8  # 346
_LOUDNESS_AT = _VERSION_AT + 2 + 64  # 412: LoudnessValue, LoudnessRange, MaxTruePeakLevel, MaxMomentary, MaxShortTerm
_CODING_HISTORY_AT = 602
_UNKNOWN = 0x7FFF


@dataclass(frozen=True)
class BextLoudness:
    """Loudness fields (LUFS, LU, dBTP, LUFS, LUFS); None means not measured."""

    integrated_lufs: float | None
    loudness_range_lu: float | None
    true_peak_dbtp: float | None
    max_momentary_lufs: float | None
    max_short_term_lufs: float | None


def _centi(value: float | None) -> int:
    if value is None or not math.isfinite(value):
        return _UNKNOWN
    return max(-32768, min(32766, int(round(value * 100))))


def riff_chunks(path: Path) -> dict[bytes, tuple[int, int]]:
    """``{chunk id: (body offset, body size)}`` of a RIFF/WAVE (or RF64) file."""
    chunks: dict[bytes, tuple[int, int]] = {}
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            raise ValueError(f"{path}: not a RIFF/WAVE file")
        ds64_data_size = None
        pos = 12
        while True:
            f.seek(pos)
            hdr = f.read(8)
            if len(hdr) < 8:
                break
            cid, size = hdr[:4], struct.unpack("<I", hdr[4:])[0]
            if cid == b"ds64":
                body = f.read(size)
                ds64_data_size = struct.unpack("<Q", body[8:16])[0]
            if cid == b"data" and size == 0xFFFFFFFF and ds64_data_size is not None:
                size = ds64_data_size
            chunks.setdefault(cid, (pos + 8, size))
            pos += 8 + size + (size & 1)
    return chunks


def patch_bext_loudness(path: Path, loudness: BextLoudness) -> None:
    """Set ``bext`` version 2 and its loudness fields in place (file must have a bext chunk)."""
    chunks = riff_chunks(path)
    if b"bext" not in chunks:
        raise ValueError(f"{path}: no bext chunk to patch")
    offset, size = chunks[b"bext"]
    if size < _CODING_HISTORY_AT:
        raise ValueError(f"{path}: bext chunk too short ({size} bytes)")
    fields = struct.pack(
        "<5h",
        _centi(loudness.integrated_lufs), _centi(loudness.loudness_range_lu),
        _centi(loudness.true_peak_dbtp), _centi(loudness.max_momentary_lufs),
        _centi(loudness.max_short_term_lufs),
    )
    with open(path, "r+b") as f:
        f.seek(offset + _VERSION_AT)
        f.write(struct.pack("<H", 2))
        f.seek(offset + _LOUDNESS_AT)
        f.write(fields)


def read_bext(path: Path) -> dict:
    """Parse the ``bext`` chunk: description, originator, version, loudness fields, coding history."""
    chunks = riff_chunks(path)
    if b"bext" not in chunks:
        raise ValueError(f"{path}: no bext chunk")
    offset, size = chunks[b"bext"]
    with open(path, "rb") as f:
        f.seek(offset)
        body = f.read(size)

    def text(a: int, n: int) -> str:
        return body[a:a + n].split(b"\0", 1)[0].decode("ascii", "replace")

    version = struct.unpack("<H", body[_VERSION_AT:_VERSION_AT + 2])[0]
    vals = struct.unpack("<5h", body[_LOUDNESS_AT:_LOUDNESS_AT + 10])
    names = ("loudness_value", "loudness_range", "max_true_peak_level", "max_momentary_loudness",
             "max_short_term_loudness")
    loud = {k: (None if v == _UNKNOWN else v / 100) for k, v in zip(names, vals)}
    history = body[_CODING_HISTORY_AT:].split(b"\0", 1)[0].decode("ascii", "replace")
    return {
        "description": text(0, 256), "originator": text(256, 32),
        "originator_reference": text(288, 32), "version": version, **loud,
        "coding_history": [ln for ln in history.replace("\r\n", "\n").split("\n") if ln],
    }


def audio_data_md5(path: Path) -> str | None:
    """MD5 of the audio data: WAV ``data`` chunk bytes, or FLAC STREAMINFO MD5."""
    path = Path(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic in (b"RIFF", b"RF64"):
        offset, size = riff_chunks(path)[b"data"]
        h = hashlib.md5()
        with open(path, "rb") as f:
            f.seek(offset)
            left = size
            while left > 0:
                block = f.read(min(left, 1 << 20))
                if not block:
                    break
                h.update(block)
                left -= len(block)
        return h.hexdigest()
    if magic == b"fLaC":
        with open(path, "rb") as f:
            f.seek(4)
            header = f.read(4)
            if header[0] & 0x7F == 0:  # STREAMINFO is always first
                body = f.read(34)
                md5 = body[18:34].hex()
                return None if md5 == "0" * 32 else md5
    return None


def coding_history_line(sample_rate: int, bits: int | None, channels: int, text: str,
                        algorithm: str = "PCM") -> str:
    """One EBU R98 CodingHistory line, e.g. ``A=PCM,F=44100,W=24,M=stereo,T=...``."""
    mode = {1: "mono", 2: "stereo"}.get(channels, f"{channels}ch")
    word = f",W={bits}" if bits else ""
    clean = text.replace("\r", " ").replace("\n", " ")
    return f"A={algorithm},F={sample_rate}{word},M={mode},T={clean}"
