"""Audio I/O: decode every supported format, keep rate/channels/bit depth, stream in blocks."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from archtool.audio.ffmpeg import ffmpeg_executable
from archtool.audio.io import BlockReader, BlockWriter, OutputSpec, probe, read_audio, transcode_with_gain, write_audio
from archtool.errors import AudioReadError
from conftest import tone


def convert(src: Path, dst: Path, *args: str) -> Path:
    subprocess.run([ffmpeg_executable(), "-v", "error", "-y", "-i", str(src), *args, str(dst)], check=True)
    return dst


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, np.ndarray]:
    x = tone(440, 0.5, 44100, 2)
    p = tmp_path / "src.wav"
    write_audio(p, x, 44100, OutputSpec("wav", 32, True))
    return p, x


LOSSLESS = [
    ("pcm16.wav", ["-c:a", "pcm_s16le"], 16, 2 ** -15),
    ("pcm24.wav", ["-c:a", "pcm_s24le"], 24, 2 ** -23),
    ("pcm32.wav", ["-c:a", "pcm_s32le"], 32, 2 ** -23),
    ("f32.wav", ["-c:a", "pcm_f32le"], 32, 0.0),
    ("x.flac", ["-c:a", "flac", "-sample_fmt", "s16"], 16, 2 ** -15),
    ("x24.flac", ["-c:a", "flac", "-sample_fmt", "s32", "-bits_per_raw_sample", "24"], 24, 2 ** -23),
    ("x.aiff", ["-c:a", "pcm_s24be"], 24, 2 ** -23),
]


@pytest.mark.parametrize("name,args,bits,tol", LOSSLESS)
def test_lossless_formats_decode_to_the_same_samples(source, tmp_path, name, args, bits, tol):
    src, x = source
    p = convert(src, tmp_path / name, *args)
    info = probe(p)
    assert (info.sample_rate, info.channels, info.bits_per_sample) == (44100, 2, bits)
    assert info.lossless
    y, sr = read_audio(p)
    assert y.dtype == np.float32 and y.shape == x.shape and sr == 44100
    assert np.abs(y - x).max() <= tol + 1e-9


@pytest.mark.parametrize("name,args", [
    ("x.mp3", ["-c:a", "libmp3lame", "-b:a", "192k"]),
    ("x.ogg", ["-c:a", "libvorbis"]),
    ("x.opus", ["-c:a", "libopus", "-ar", "48000"]),
    ("x.m4a", ["-c:a", "aac", "-b:a", "192k"]),
])
def test_lossy_formats_decode_with_their_energy(source, tmp_path, name, args):
    src, x = source
    p = convert(src, tmp_path / name, *args)
    info = probe(p)
    assert not info.lossless and info.bits_per_sample is None and info.channels == 2
    y, sr = read_audio(p)
    assert abs(y.shape[1] / sr - 0.5) < 0.1
    rms = lambda a: 20 * np.log10(np.sqrt(np.mean(a.astype(np.float64) ** 2)))
    assert abs(rms(y) - rms(x)) < 1.0
    assert OutputSpec.for_input(info, "same") == OutputSpec("flac", 24)


@pytest.mark.parametrize("rate,channels", [(8000, 1), (16000, 1), (96000, 2), (192000, 2), (48000, 6)])
def test_rates_and_channel_counts_round_trip(tmp_path, rate, channels):
    x = tone(300, 0.2, rate, channels)
    p = tmp_path / "a.flac"
    write_audio(p, x, rate, OutputSpec("flac", 24))
    info = probe(p)
    assert (info.sample_rate, info.channels) == (rate, channels)
    y, _ = read_audio(p)
    assert y.shape == x.shape and np.abs(y - x).max() < 2 ** -22


def test_output_spec_keeps_the_input_bit_depth(source, tmp_path):
    src, _ = source
    p24 = convert(src, tmp_path / "a.wav", "-c:a", "pcm_s24le")
    assert OutputSpec.for_input(probe(p24), "same") == OutputSpec("wav", 24)
    assert OutputSpec.for_input(probe(p24), "flac") == OutputSpec("flac", 24)
    p16 = convert(src, tmp_path / "b.flac", "-c:a", "flac", "-sample_fmt", "s16")
    assert OutputSpec.for_input(probe(p16), "wav") == OutputSpec("wav", 16)
    assert OutputSpec.for_input(probe(src), "same") == OutputSpec("wav", 32, True)


def test_block_reader_and_writer_stream_the_same_samples(tmp_path):
    x = tone(1000, 1.3, 22050, 2)
    p = tmp_path / "a.wav"
    with BlockWriter(p, 22050, 2, OutputSpec("wav", 32, True)) as w:
        for s in range(0, x.shape[1], 1000):
            w.write(x[:, s:s + 1000])
    blocks = list(BlockReader(p, 777))
    assert all(b.shape[1] <= 777 for b in blocks)
    assert np.array_equal(np.concatenate(blocks, axis=1), x)


def test_encoding_is_deterministic(tmp_path):
    x = tone(440, 0.3, 44100, 2)
    for name in ("a.flac", "b.flac", "a.wav", "b.wav"):
        write_audio(tmp_path / name, x, 44100, OutputSpec(name.split(".")[1], 24))
    assert (tmp_path / "a.flac").read_bytes() == (tmp_path / "b.flac").read_bytes()
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()


def test_probe_refuses_non_audio_and_names_the_file(tmp_path):
    p = tmp_path / "notes.wav"
    p.write_text("this is not audio\n" * 20)
    with pytest.raises(AudioReadError) as err:
        probe(p)
    assert "notes.wav" in str(err.value) and "audio" in str(err.value)


@pytest.mark.parametrize("spec", [OutputSpec("flac", 24), OutputSpec("wav", 16), OutputSpec("wav", 32, True),
                                  OutputSpec("aiff", 24)])
def test_transcode_with_gain_equals_blocks_times_gain_through_the_writer(tmp_path, rng, spec):
    x = (rng.standard_normal((2, 30_000)) * 0.25).astype(np.float32)
    x[0, 100] = 0.99  # saturates at +4 dB in integer formats, stays above 1 in float
    src = tmp_path / f"src{spec.extension}"
    write_audio(src, x, 44100, spec)
    raw = tmp_path / "raw.f32"
    x.T.astype("<f4").tofile(raw)
    for gain_db in (-3.3, 4.0):
        python_path = tmp_path / f"a{spec.extension}"
        with BlockWriter(python_path, 44100, 2, spec) as w:
            for block in BlockReader(src, 7000):
                w.write(block * np.float32(10 ** (gain_db / 20)))
        expected, _ = read_audio(python_path)
        for source, is_raw in ((src, False), (raw, True)):
            out = tmp_path / f"b{spec.extension}"
            transcode_with_gain(source, out, 44100, 2, gain_db, spec, raw_float32=is_raw)
            got, rate = read_audio(out)
            assert rate == 44100 and probe(out).bits_per_sample == probe(python_path).bits_per_sample
            if is_raw:  # the raw source was not quantised by the source's format
                assert np.abs(got - np.clip(x * 10 ** (gain_db / 20), -1, 1) if not spec.float
                              else got - x * 10 ** (gain_db / 20)).max() <= 2.0 ** -(spec.bits - 1) + 1e-7
            else:
                assert np.array_equal(got, expected)


# -- in-process decoding (libsndfile) against ffmpeg ---------------------------------------------
NATIVE = [
    ("u8.wav", ["-c:a", "pcm_u8"]),
    ("s16.wav", ["-c:a", "pcm_s16le"]),
    ("s24.wav", ["-c:a", "pcm_s24le"]),
    ("s32.wav", ["-c:a", "pcm_s32le"]),
    ("f32.wav", ["-c:a", "pcm_f32le"]),
    ("f64.wav", ["-c:a", "pcm_f64le"]),
    ("rf64.wav", ["-c:a", "pcm_s24le", "-rf64", "always"]),
    ("s8.aiff", ["-c:a", "pcm_s8"]),
    ("s16.aiff", ["-c:a", "pcm_s16be"]),
    ("s24.aiff", ["-c:a", "pcm_s24be"]),
    ("s32.aiff", ["-c:a", "pcm_s32be"]),
    ("s16.flac", ["-c:a", "flac", "-sample_fmt", "s16"]),
    ("s24.flac", ["-c:a", "flac", "-sample_fmt", "s32", "-bits_per_raw_sample", "24"]),
]


def decoded_both_ways(monkeypatch, fn):
    """``fn()`` with the in-process decoder turned off (ffmpeg), then on."""
    monkeypatch.setenv("ARCHTOOL_DECODER", "ffmpeg")
    by_ffmpeg = fn()
    monkeypatch.delenv("ARCHTOOL_DECODER")
    return by_ffmpeg, fn()


@pytest.fixture
def full_scale_source(tmp_path: Path, rng) -> Path:
    """Float WAV of full-scale noise plus a tone (every bit of a 32-bit integer is used once
    converted), odd length, 3 channels, 22.05 kHz."""
    x = np.clip(rng.standard_normal((3, 12_345)) * 0.4, -1, 1).astype(np.float32)
    x[:, ::101] = tone(500, 12_345 / 22050, 22050, 3)[:, ::101]
    p = tmp_path / "full.wav"
    write_audio(p, x, 22050, OutputSpec("wav", 32, True))
    return p


@pytest.mark.parametrize("name,args", NATIVE)
def test_in_process_decoding_gives_ffmpegs_samples_and_probe(monkeypatch, full_scale_source, tmp_path, name, args):
    from archtool.audio.io import _native

    p = convert(full_scale_source, tmp_path / name, *args)
    assert _native(p) is not None  # this format is decoded in-process
    info_ff, info_sf = decoded_both_ways(monkeypatch, lambda: probe(p))
    assert info_sf == info_ff
    (a, sr_a), (b, sr_b) = decoded_both_ways(monkeypatch, lambda: read_audio(p))
    assert sr_a == sr_b == 22050 and a.dtype == b.dtype == np.float32
    assert a.shape == b.shape == (3, 12_345) and np.array_equal(a, b)
    assert len(np.unique(a)) >= (250 if info_ff.bits_per_sample == 8 else 10_000)  # fine enough to show rounding
    blocks_ff, blocks_sf = decoded_both_ways(monkeypatch, lambda: list(BlockReader(p, 1000, info=info_ff)))
    assert [x.shape for x in blocks_sf] == [x.shape for x in blocks_ff]
    assert all(np.array_equal(x, y) and y.flags.c_contiguous for x, y in zip(blocks_ff, blocks_sf))


def test_reader_is_in_process_only_for_the_native_formats(full_scale_source, tmp_path):
    flac = convert(full_scale_source, tmp_path / "a.flac", "-c:a", "flac", "-sample_fmt", "s16")
    with BlockReader(flac, 4096) as r:
        assert r.in_process
    ogg = convert(full_scale_source, tmp_path / "a.ogg", "-c:a", "libvorbis")
    with BlockReader(ogg, 4096) as r:
        assert not r.in_process


@pytest.mark.parametrize("frames,rate", [(54_444, 44100), (1, 8000), (479_999, 48000), (96_000 * 3723 + 7, 96000)])
def test_probed_duration_is_the_one_ffmpeg_prints(frames, rate):
    from archtool.audio.io import _ffmpeg_duration

    us = round(frames * 1_000_000 / rate)
    cs = (us + 5000) // 10000
    h, m, s = cs // 360000, cs // 6000 % 60, cs % 6000 / 100
    assert abs(_ffmpeg_duration(frames, rate) - (h * 3600 + m * 60 + s)) < 1e-9
    if frames == 54_444:
        assert _ffmpeg_duration(frames, rate) == 1.23  # ffmpeg: "Duration: 00:00:01.23"


def test_a_flac_truncated_mid_frame_decodes_as_ffmpeg_decodes_it(monkeypatch, tmp_path, rng):
    x = (rng.standard_normal((2, 3 * 44100)) * 0.3).astype(np.float32)
    p = tmp_path / "whole.flac"
    write_audio(p, x, 44100, OutputSpec("flac", 16))
    cut = tmp_path / "cut.flac"
    cut.write_bytes(p.read_bytes()[: p.stat().st_size * 3 // 4])  # libsndfile stops at the cut, ffmpeg goes on
    info = probe(cut)
    (a, _), (b, _) = decoded_both_ways(monkeypatch, lambda: read_audio(cut, info=info))
    assert np.array_equal(a, b) and 0 < a.shape[1] < x.shape[1]
    blocks_ff, blocks_sf = decoded_both_ways(monkeypatch, lambda: list(BlockReader(cut, 10_000, info=info)))
    assert [x.shape for x in blocks_sf] == [x.shape for x in blocks_ff]
    assert np.array_equal(np.concatenate(blocks_ff, axis=1), np.concatenate(blocks_sf, axis=1))


def test_in_process_reader_refuses_nan_samples(tmp_path):
    from archtool.errors import InvalidAudioError

    x = np.zeros((1, 5000), np.float32)
    x[0, 4321] = np.nan
    p = tmp_path / "nan.wav"
    write_audio(p, x, 16000, OutputSpec("wav", 32, True))
    with pytest.raises(InvalidAudioError, match="nan.wav"):
        list(BlockReader(p, 1024))
    with pytest.raises(InvalidAudioError, match="nan.wav"):
        read_audio(p)
