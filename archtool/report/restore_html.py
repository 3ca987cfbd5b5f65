"""OUT_DIR/report.html for ``archtool restore``: one self-contained page (inline images and
audio as data URIs) with, per file, the plan, measures before and after, before/after
spectrograms and players for a short excerpt of the input, the output and the residual
(what restoration removed).

Kept light: each file is decoded once, for at most ``ANALYSIS_S`` seconds of input and of
output. The "before" measures are the plan's own analysis (reused, not recomputed) when
the file is no longer than that; for longer files both sides are analysed on the same
first ``ANALYSIS_S`` seconds, so before and after compare like with like. Spectrograms are
JPEG; the excerpts are lossless FLAC (16-bit; WAV when ffmpeg cannot encode), so what is
heard is exactly what was written.

The residual is the ``--keep-residual`` file when it was written; otherwise it is
computed from the excerpts (input minus output with the loudness gain undone, so it is
exact wherever the limiter did not act).
"""
from __future__ import annotations

import base64
import html
import io
import wave
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["write_restore_report", "wav_data_uri", "flac_data_uri", "jpeg_data_uri"]

EXCERPT_S = 5.0
MAX_GAP_VIEWS = 6  # filled gaps shown up close per file (the first ones; all are listed in the plan)
ANALYSIS_S = 30.0
MAX_PLAYERS = 25
_SHOWN_MEASURES = ("snr_db", "noise_floor_dbfs", "rate_per_s", "fundamental_hz", "level_db", "cutoff_hz",
                   "clipped_fraction", "rt60_s", "drr_db", "count", "offset_db")


def wav_data_uri(audio: np.ndarray, sample_rate: int) -> str:
    """16-bit PCM WAV data URI of float ``(channels, n)`` audio (clipped to [-1, 1])."""
    a = np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0)
    pcm = (a.T * 32767.0).round().astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(a.shape[0])
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def flac_data_uri(audio: np.ndarray, sample_rate: int) -> str:
    """Lossless 16-bit FLAC data URI of float ``(channels, n)`` audio (clipped to [-1, 1]);
    a WAV data URI when ffmpeg cannot encode FLAC."""
    import subprocess

    from archtool.audio.ffmpeg import ffmpeg_executable

    a = np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0)
    pcm = (a.T * 32767.0).round().astype("<i2")
    cmd = [ffmpeg_executable(), "-nostdin", "-v", "error", "-f", "s16le", "-ar", str(int(sample_rate)),
           "-ac", str(a.shape[0]), "-i", "pipe:0", "-c:a", "flac", "-compression_level", "8", "-f", "flac", "pipe:1"]
    try:
        r = subprocess.run(cmd, input=pcm.tobytes(), capture_output=True, check=True, timeout=60)
        if r.stdout:
            return "data:audio/flac;base64," + base64.b64encode(r.stdout).decode("ascii")
    except (OSError, subprocess.SubprocessError):
        pass
    return wav_data_uri(audio, sample_rate)


def jpeg_data_uri(png: bytes, quality: int = 80) -> str:
    """Re-encode PNG bytes as a JPEG data URI (spectrograms are 5-10x smaller as JPEG)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        buf = io.BytesIO()
        im.convert("RGB").save(buf, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _read_excerpt(path: Path, seconds: float) -> tuple[np.ndarray, int, float] | None:
    """The first ``seconds`` of ``path``: ``(audio (C, n), rate, whole duration s)``."""
    from archtool.audio.io import probe, read_audio

    try:
        info = probe(path)
        audio, sr = read_audio(path, info=info, duration_s=seconds, check_finite=False)
        return audio, sr, float(info.duration_s or audio.shape[1] / sr)
    except Exception:  # the report must not fail a finished batch; the page says "unavailable"
        return None


def _findings_table(before: dict | None, after: dict | None) -> str:
    if not before:
        return "<p class=dim>no analysis</p>"
    after_by = {f["kind"]: f for f in (after or {}).get("findings", [])}
    rows = []
    for f in before.get("findings", []):
        a = after_by.get(f["kind"])
        if not f.get("detected") and not (a and a.get("detected")):
            continue
        mb = f.get("measures") or {}
        ma = (a or {}).get("measures") or {}
        shown = []
        for k in _SHOWN_MEASURES:
            if isinstance(mb.get(k), (int, float)) and not isinstance(mb.get(k), bool):
                va = ma.get(k)
                after_txt = f"{va:.4g}" if isinstance(va, (int, float)) and not isinstance(va, bool) else "–"
                shown.append(f"{k} {mb[k]:.4g} → {after_txt}")
        sev_a = f"{a['severity']:.2f}" if a else "–"
        det_a = ("yes" if a.get("detected") else "no") if a else "–"
        rows.append(f"<tr><td>{html.escape(f['kind'])}</td><td>{'yes' if f.get('detected') else 'no'} → {det_a}</td>"
                    f"<td>{f.get('severity', 0):.2f} → {sev_a}</td><td>{html.escape('; '.join(shown))}</td></tr>")
    if not rows:
        return "<p class=dim>no defect detected before or after</p>"
    return ("<table><tr><th>kind</th><th>detected</th><th>severity</th><th>measures (before → after)</th></tr>"
            + "".join(rows) + "</table>")


def _plan_list(steps: Sequence[dict]) -> str:
    if not steps:
        return "<p class=dim>no restoration step (loudness only)</p>"
    items = []
    for s in steps:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in s.get("params", {}).items() if not isinstance(v, (list, dict)))
        lists = [k for k, v in s.get("params", {}).items() if isinstance(v, (list, dict))]
        extra = f" <span class=dim>(+ {', '.join(lists)})</span>" if lists else ""
        items.append(f"<li><b>{html.escape(s['restorer'])}</b>({html.escape(params)}){extra}"
                     f"<br><span class=dim>{html.escape(s.get('reason', ''))}</span>{_fill_list(s.get('fills'))}</li>")
    return "<ol>" + "".join(items) + "</ol>"


def _fill_list(fills: Sequence[dict] | None) -> str:
    """The intervals an inpainting step fills, one line each: time, length, method and recipe."""
    if not fills:
        return ""
    rows = []
    for f in fills:
        a, b = float(f["start_s"]), float(f["end_s"])
        how = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in f.items()
                        if k not in ("start_s", "end_s", "method", "reason"))
        why = f" ({f['reason']})" if f.get("reason") else ""
        rows.append(f"<li>{a:.3f}-{b:.3f} s ({1000 * (b - a):.0f} ms): <b>{html.escape(str(f['method']))}</b>"
                    f"{html.escape(why)} <span class=dim>{html.escape(how)}</span></li>")
    return "<ul class=fills>" + "".join(rows) + "</ul>"


def _analyse(audio: np.ndarray, sr: int) -> dict | None:
    from archtool.analyze import analyze_audio

    try:
        return analyze_audio(audio, sr).to_dict()
    except Exception as exc:  # keep the page; say why the column is empty
        return {"findings": [], "error": str(exc)}


def _file_section(res: dict[str, Any], out_dir: Path, players: bool, excerpt_s: float,
                  analysis_s: float) -> str:
    from archtool.report.plots import spectrogram_pair_png

    name = html.escape(str(res.get("input", "?")))
    status = res.get("status")
    head = f"<h2>{name} <span class='st {html.escape(str(status))}'>{html.escape(str(status))}</span></h2>"
    if status not in ("ok", "done"):
        return f"<section>{head}<p class=err>{html.escape(str(res.get('error') or ''))}</p>" \
               f"{_plan_list(res.get('steps') or [])}</section>"
    out_path = out_dir / str(res.get("output"))
    parts = [head, f"<p class=dim>{res.get('duration_s', 0):.1f} s, {res.get('sample_rate')} Hz, "
                   f"{res.get('channels')} ch; loudness {res.get('loudness_before_lufs')} → "
                   f"{res.get('loudness_after_lufs')} LUFS (gain {res.get('gain_db')} dB"
                   f"{', limited' if res.get('limited') else ''}); {res.get('realtime_factor')}x real time</p>"]
    parts += [f"<p class=note>⚠ {html.escape(str(n))}</p>" for n in res.get("notes") or []]
    parts += ["<h3>Plan</h3>", _plan_list(res.get("steps") or [])]
    # One decode per side, at most analysis_s seconds; excerpts and spectrograms come from it.
    src = _read_excerpt(Path(str(res.get("path"))), analysis_s)
    out = _read_excerpt(out_path, analysis_s)
    gain = 10 ** (float(res.get("gain_db") or 0.0) / 20.0)
    before = res.get("profile")
    after = None
    span = ""
    if src is not None and out is not None and src[1] == out[1]:
        x, sr, whole_s = src
        y = out[0][:, : x.shape[1]]
        x = x[:, : y.shape[1]]
        if whole_s > analysis_s + 0.5 or not before:
            before = _analyse(x, sr)
            span = f" (first {x.shape[1] / sr:.0f} s)"
        after = _analyse(y / gain, sr)
    elif out is not None:
        after = _analyse(out[0] / gain, out[1])
    parts += [f"<h3>Measures before → after{span}</h3>", _findings_table(before, after)]
    if src is not None and out is not None and src[1] == out[1]:
        n = min(x.shape[1], int(round(excerpt_s * sr)))
        xe, ye = x[:, :n], y[:, :n]
        resid = None
        if res.get("residual"):
            r = _read_excerpt(out_dir / str(res["residual"]), excerpt_s)
            resid = r[0][:, :n] if r is not None and r[0].shape[1] >= n else None
        if resid is None:
            resid = xe - ye / gain
        png = spectrogram_pair_png(xe, ye / gain, sr, width_px=640, height_px=280,
                                   titles=("before", "after (before loudness gain)"))
        parts.append(f"<h3>Spectrograms (first {n / sr:.1f} s)</h3><img src='{jpeg_data_uri(png)}'>")
        if players:
            parts.append("<h3>Listen</h3><div class=players>" + "".join(
                f"<figure><figcaption>{label}</figcaption><audio controls preload=none src='{flac_data_uri(a, sr)}'>"
                f"</audio></figure>" for label, a in (("input", xe), ("output", ye), ("residual (removed)", resid)))
                + "</div>")
        else:
            parts.append(f"<p class=dim>players are included for the first {MAX_PLAYERS} files only</p>")
    else:
        parts.append("<p class=dim>excerpt unavailable</p>")
    parts.append(_gap_views(res, out_path, gain))
    return "<section>" + "".join(parts) + "</section>"


def _gap_views(res: dict[str, Any], out_path: Path, gain: float) -> str:
    """Before/after spectrograms around the first :data:`MAX_GAP_VIEWS` filled gaps, the gap's
    edges dashed, captioned with what was done (a copy names where it came from)."""
    from archtool.audio.io import probe, read_audio
    from archtool.report.plots import spectrogram_pair_png

    fills = [f for s in res.get("steps") or [] for f in s.get("fills") or [] if f.get("method") != "skipped"]
    if not fills:
        return ""
    views = []
    for f in fills[:MAX_GAP_VIEWS]:
        a, b = float(f["start_s"]), float(f["end_s"])
        pad = max(0.15, 0.5 * (b - a))
        t0 = max(0.0, a - pad)
        try:
            x, sr = read_audio(Path(str(res.get("path"))), start_s=t0, duration_s=b + pad - t0, check_finite=False)
            y, sr_out = read_audio(out_path, info=probe(out_path), start_s=t0, duration_s=b + pad - t0,
                                   check_finite=False)
        except Exception:  # the report must not fail a finished batch
            continue
        if sr_out != sr:
            continue
        n = min(x.shape[1], y.shape[1])
        png = spectrogram_pair_png(x[:, :n], y[:, :n] / gain, sr, width_px=300, height_px=190,
                                   titles=(f"before, from {t0:.2f} s", "after"), marks_s=(a - t0, b - t0))
        how = f["method"] + (f" from {float(f['source_s']):.2f} s" if "source_s" in f else "")
        views.append(f"<figure><img src='{jpeg_data_uri(png)}'><figcaption>{a:.3f}-{b:.3f} s: "
                     f"{html.escape(how)}</figcaption></figure>")
    more = f"<p class=dim>{len(fills) - MAX_GAP_VIEWS} more filled gaps are listed in the plan</p>" \
        if len(fills) > MAX_GAP_VIEWS else ""
    return "<h3>Filled gaps, up close</h3><div class=players>" + "".join(views) + "</div>" + more if views else ""


_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:1000px;color:#222}
.note{color:#8a5a00;margin:.2em 0}
section{border-top:1px solid #ccc;padding:.5em 0 1em}h2{font-size:1.1em}h3{font-size:.95em;margin:.8em 0 .3em}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left}
.dim{color:#777}.err{color:#b00}.st{font-size:.75em;padding:1px 6px;border-radius:3px;background:#eee}
.st.ok,.st.done{background:#d8f0d8}.st.failed{background:#f6d0d0}.players{display:flex;gap:1em;flex-wrap:wrap}
figure{margin:0}figcaption{font-size:.8em;color:#555}img{max-width:100%}"""


def write_restore_report(out_dir: str | Path, results: Sequence[dict[str, Any]], *, preset: str = "",
                         excerpt_s: float = EXCERPT_S, max_players: int = MAX_PLAYERS,
                         analysis_s: float = ANALYSIS_S) -> Path:
    """Write ``out_dir/report.html`` for a finished restore batch; returns its path.

    Args:
        out_dir: the restore output folder (outputs and residuals are read from it).
        results: the engine's per-file result records (``report.json``'s ``files``).
        preset: the preset used (shown in the header).
        excerpt_s: seconds of each file shown and playable.
        max_players: files beyond this many get spectrograms but no players (page size).
        analysis_s: seconds of input and output decoded and analysed per file (see the
            module docstring).
    """
    out_dir = Path(out_dir)
    ok = sum(1 for r in results if r.get("status") in ("ok", "done"))
    sections = [_file_section(r, out_dir, i < max_players, excerpt_s, analysis_s) for i, r in enumerate(results)]
    page = (f"<!doctype html><html><head><meta charset=utf-8><title>archtool restore report</title>"
            f"<style>{_CSS}</style></head><body><h1>archtool restore</h1>"
            f"<p>{ok} of {len(results)} file(s) restored{f' with preset {html.escape(preset)}' if preset else ''}. "
            "Each file: the plan (restorers in order, with parameters and the analysis behind them), "
            "the analysis of the input and of the output, spectrograms and an excerpt to listen to.</p>"
            + "".join(sections) + "</body></html>")
    path = out_dir / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path
