"""Small plotting helpers shared by the HTML reports (analysis and restore).

Every function draws with matplotlib's Agg backend (no display, no network) into an
in-memory PNG and returns its bytes; :func:`png_data_uri` turns those bytes into a
``data:image/png;base64,...`` URI to embed in a self-contained HTML page.

Stable API::

    spectrogram_png(audio, sample_rate, *, width_px=480, height_px=140, max_seconds=None,
                    title=None, fmax_hz=None) -> bytes
    spectrogram_pair_png(before, after, sample_rate, ...) -> bytes   # stacked, same colour scale
    bar_chart_png(labels, values, *, title="", xlabel="", ylabel="", ...) -> bytes
    histogram_png(values, *, bins=20, title="", xlabel="", ...) -> bytes
    png_data_uri(png: bytes) -> str

Audio is float32/float64 ``(channels, samples)`` or ``(samples,)``; it is mixed to mono.
"""
from __future__ import annotations

import base64
import io
from typing import Sequence

import numpy as np

import matplotlib

matplotlib.use("Agg", force=False)
from matplotlib.figure import Figure  # noqa: E402  (after choosing the backend)

_DPI = 100
_FLOOR_DB = -100.0


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for embedding ``png`` in HTML."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure(width_px: int, height_px: int) -> Figure:
    return Figure(figsize=(width_px / _DPI, height_px / _DPI), dpi=_DPI)


def _to_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # Agg canvas without pyplot: no global state, safe in worker processes.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return buf.getvalue()


def _mono(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 2:
        a = a.mean(axis=0)
    return a


def spectrogram_db(audio: np.ndarray, sample_rate: int, *, n_fft: int | None = None,
                   max_frames: int = 600) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Power spectrogram in dB (re full scale) for plotting.

    Returns ``(S_db (bins, frames), times_s (frames,), freqs_hz (bins,))``. The hop is
    chosen so that at most ``max_frames`` frames are computed (cheap on long files).
    """
    x = _mono(audio)
    if n_fft is None:
        n_fft = 512 if sample_rate <= 24000 else 1024
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    hop = max(n_fft // 4, int(np.ceil((x.size - n_fft) / max(1, max_frames - 1))))
    n_frames = 1 + (x.size - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    win = np.hanning(n_fft).astype(np.float32)
    spec = np.fft.rfft(x[idx] * win, axis=1)
    power = (np.abs(spec) ** 2) / (np.sum(win) ** 2 / 4.0)
    s_db = 10.0 * np.log10(np.maximum(power.T, 1e-12))
    times = (np.arange(n_frames) * hop + n_fft / 2) / sample_rate
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    return np.maximum(s_db, _FLOOR_DB), times, freqs


def _draw_spec(ax, audio, sample_rate, fmax_hz, vmin, vmax, title, max_frames):
    s_db, times, freqs = spectrogram_db(audio, sample_rate, max_frames=max_frames)
    if fmax_hz:
        keep = freqs <= fmax_hz
        s_db, freqs = s_db[keep], freqs[keep]
    t_end = times[-1] if times.size else 0.0
    im = ax.imshow(s_db, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                   extent=(0.0, max(t_end, 1e-3), 0.0, freqs[-1] / 1000.0), interpolation="nearest")
    ax.set_ylabel("kHz", fontsize=7)
    ax.tick_params(labelsize=6)
    if title:
        ax.set_title(title, fontsize=8, loc="left")
    return im


def spectrogram_png(audio: np.ndarray, sample_rate: int, *, width_px: int = 480,
                    height_px: int = 140, max_seconds: float | None = None,
                    title: str | None = None, fmax_hz: float | None = None,
                    vmin_db: float = -100.0, vmax_db: float = -10.0) -> bytes:
    """A spectrogram thumbnail (time in s, frequency in kHz, magma colour map) as PNG bytes.

    ``max_seconds`` crops the audio first (useful on long files); ``fmax_hz`` limits
    the frequency axis. The colour scale is fixed (``vmin_db``..``vmax_db`` dBFS per bin)
    so thumbnails of different files compare.
    """
    x = _mono(audio)
    if max_seconds is not None:
        x = x[: int(max_seconds * sample_rate)]
    fig = _figure(width_px, height_px)
    ax = fig.add_axes((0.09, 0.2 if title is None else 0.2, 0.89, 0.68 if title else 0.76))
    _draw_spec(ax, x, sample_rate, fmax_hz, vmin_db, vmax_db, title, max_frames=width_px)
    ax.set_xlabel("s", fontsize=7, labelpad=1)
    return _to_png(fig)


def spectrogram_pair_png(before: np.ndarray, after: np.ndarray, sample_rate: int, *,
                         width_px: int = 480, height_px: int = 260,
                         max_seconds: float | None = None, fmax_hz: float | None = None,
                         titles: tuple[str, str] = ("before", "after"),
                         vmin_db: float = -100.0, vmax_db: float = -10.0,
                         marks_s: Sequence[float] = ()) -> bytes:
    """Two spectrograms stacked (e.g. before/after restoration) on the same colour scale;
    ``marks_s``: times (s from the start of the audio) drawn as dashed lines on both, e.g. a
    filled gap's edges."""
    fig = _figure(width_px, height_px)
    axes = fig.subplots(2, 1, sharex=True)
    for ax, audio, title in zip(axes, (before, after), titles):
        x = _mono(audio)
        if max_seconds is not None:
            x = x[: int(max_seconds * sample_rate)]
        _draw_spec(ax, x, sample_rate, fmax_hz, vmin_db, vmax_db, title, max_frames=width_px)
        for t in marks_s:
            ax.axvline(float(t), color="#7fd4ff", linestyle="--", linewidth=0.8)
    axes[-1].set_xlabel("s", fontsize=7, labelpad=1)
    fig.subplots_adjust(left=0.09, right=0.98, top=0.92, bottom=0.12, hspace=0.35)
    return _to_png(fig)


def bar_chart_png(labels: Sequence[str], values: Sequence[float], *, title: str = "",
                  xlabel: str = "", ylabel: str = "", width_px: int = 520, height_px: int = 300,
                  color: str = "#3b6ea5", horizontal: bool = False) -> bytes:
    """A bar chart (one bar per label, value printed on each bar) as PNG bytes."""
    fig = _figure(width_px, height_px)
    ax = fig.add_subplot(1, 1, 1)
    vals = np.asarray(list(values), dtype=float)
    pos = np.arange(len(vals))
    if horizontal:
        bars = ax.barh(pos, vals, color=color)
        ax.set_yticks(pos, list(labels), fontsize=7)
        ax.invert_yaxis()
    else:
        bars = ax.bar(pos, vals, color=color)
        ax.set_xticks(pos, list(labels), rotation=45, ha="right", fontsize=7)
    for b, v in zip(bars, vals):
        text = f"{v:g}"
        if horizontal:
            ax.text(b.get_width(), b.get_y() + b.get_height() / 2, " " + text, va="center", fontsize=6)
        else:
            ax.text(b.get_x() + b.get_width() / 2, b.get_height(), text, ha="center", va="bottom", fontsize=6)
    return _finish(fig, ax, title, xlabel, ylabel)


def _finish(fig, ax, title: str, xlabel: str, ylabel: str) -> bytes:
    """Title and axis labels in the report's small type, then the figure as PNG bytes."""
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _to_png(fig)


def histogram_png(values: Sequence[float], *, bins: int | Sequence[float] = 20, title: str = "",
                  xlabel: str = "", ylabel: str = "files", width_px: int = 420,
                  height_px: int = 260, color: str = "#5a8f5a") -> bytes:
    """A histogram of ``values`` (non-finite values dropped) as PNG bytes."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    fig = _figure(width_px, height_px)
    ax = fig.add_subplot(1, 1, 1)
    if v.size:
        ax.hist(v, bins=bins, color=color, edgecolor="white")
    else:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
    return _finish(fig, ax, title, xlabel, ylabel)
