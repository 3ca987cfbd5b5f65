"""Audio in and out: ffmpeg decode/encode/probe, block streaming, loudness."""
from archtool.audio.io import (
    AudioInfo,
    BlockReader,
    BlockWriter,
    OutputSpec,
    probe,
    read_audio,
    write_audio,
)

__all__ = ["AudioInfo", "BlockReader", "BlockWriter", "OutputSpec", "probe", "read_audio", "write_audio"]
