"""The self-contained HTML report of ``archtool analyze`` (REPORT_DIR/report.html).

One page, no network: images are PNG data URIs (see :mod:`archtool.report.plots`), styles
are inline. It shows the collection overview (files per defect kind, SNR and bandwidth
distributions, failures) and one row per file, ranked by restoration need, with a
spectrogram thumbnail of its first seconds and its findings.
"""
from __future__ import annotations

import html
from typing import Any, Sequence

from archtool.kinds import KINDS

MAX_THUMBNAILS = 300

# the headline measure shown for each kind, with its unit
_HEADLINE = {
    "noise": ("snr_db", "SNR {:.1f} dB"),
    "background": ("excess_db", "+{:.1f} dB over floor"),
    "reverb": ("rt60_s", "RT60 {:.2f} s"),
    "clicks": ("rate_per_s", "{:.2f}/s"),
    "crackle": ("rate_per_s", "{:.1f}/s"),
    "surface_noise": ("rpm", "{:.1f} rpm"),
    "hum": ("fundamental_hz", "{:.2f} Hz"),
    "rumble": ("level_db", "{:.1f} dB"),
    "gaps": ("count", "{:d} gaps"),
    "bandlimit": ("cutoff_hz", "cutoff {:.0f} Hz"),
    "clipping": ("clipped_fraction", "{:.3%} clipped"),
    "wow": ("depth_cents", "{:.1f} cents"),
    "dc_offset": ("offset_db", "{:.1f} dBFS"),
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1d232a;background:#fafafa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#5b6670;font-size:13px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.card{background:#fff;border:1px solid #dde2e7;border-radius:6px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:20px}
.charts{display:flex;gap:12px;flex-wrap:wrap}
.charts img{background:#fff;border:1px solid #dde2e7;border-radius:6px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border-bottom:1px solid #e3e7eb;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#eef1f4;position:sticky;top:0}
.tag{display:inline-block;margin:1px 3px 1px 0;padding:1px 6px;border-radius:10px;font-size:12px;white-space:nowrap}
.sev0{background:#e8f3e8}.sev1{background:#fff2cc}.sev2{background:#ffd9b3}.sev3{background:#f8c0c0}
.none{color:#8a949c;font-size:12px}
.need{font-weight:600}
.fail{color:#a01818}
.warn{color:#8a5a00;font-size:12px;margin-top:3px}
code{font-size:12px}
"""


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _headline(f) -> str:
    key, fmt = _HEADLINE.get(f.kind, (None, ""))
    v = f.measures.get(key) if key else None
    if v is None:
        return ""
    try:
        return fmt.format(v)
    except (ValueError, TypeError):
        return str(v)


def _tag(f) -> str:
    cls = "sev" + str(min(3, int(f.severity * 4)))
    head = _headline(f)
    title = f"severity {f.severity:.2f}, confidence {f.confidence:.2f}"
    return (f'<span class="tag {cls}" title="{_esc(title)}"><b>{_esc(f.kind)}</b> '
            f'{f.severity:.2f}{" · " + _esc(head) if head else ""}</span>')


def _charts(results) -> str:
    from archtool.report.plots import bar_chart_png, histogram_png, png_data_uri

    ok = [r for r in results if r.ok]
    counts = [sum(1 for r in ok if r.profile.detected(k)) for k in KINDS]
    snr = [r.profile.finding("noise").measures.get("snr_db") for r in ok]
    snr = [min(v, 80.0) for v in snr if v is not None]
    bw = [r.profile.finding("bandlimit").measures.get("cutoff_hz") for r in ok]
    bw = [v / 1000.0 for v in bw if v is not None]
    imgs = [
        (bar_chart_png(list(KINDS), counts, title="files per defect kind", ylabel="files",
                       width_px=520, height_px=300), "files per defect kind"),
        (histogram_png(snr, bins=16, title="estimated SNR (capped at 80 dB)", xlabel="dB",
                       width_px=380, height_px=300), "SNR distribution"),
        (histogram_png(bw, bins=16, title="effective bandwidth", xlabel="kHz", width_px=380,
                       height_px=300, color="#8a6bb0"), "bandwidth distribution"),
    ]
    return '<div class="charts">' + "".join(
        f'<img alt="{_esc(alt)}" src="{png_data_uri(png)}">' for png, alt in imgs) + "</div>"


def render_html(results: Sequence[Any], *, title: str = "archtool analysis") -> str:
    """The report page for a list of :class:`archtool.analyze.collection.FileResult`."""
    from archtool import __version__
    from archtool.report.plots import png_data_uri

    ok = sorted([r for r in results if r.ok], key=lambda r: (-r.need, r.path))
    failed = [r for r in results if not r.ok]
    hours = sum(r.profile.duration_s for r in ok) / 3600.0
    counts = {k: sum(1 for r in ok if r.profile.detected(k)) for k in KINDS}
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        f'<div class="sub">archtool {__version__} · files ranked by restoration need · '
        "severity 0..1 per defect (hover a tag for its confidence)</div>",
        '<div class="cards">',
        f'<div class="card">files<b>{len(results)}</b></div>',
        f'<div class="card">analysed<b>{len(ok)}</b></div>',
        f'<div class="card">failed<b class="{"fail" if failed else ""}">{len(failed)}</b></div>',
        f'<div class="card">audio<b>{hours:.2f} h</b></div>',
        f'<div class="card">clean (no defect)<b>{sum(1 for r in ok if not any(f.detected for f in r.profile.findings))}</b></div>',
        "</div>",
        "<h2>Collection overview</h2>",
        _charts(results) if ok else '<p class="none">no file could be analysed</p>',
        "<p>" + " ".join(f'<span class="tag sev0"><b>{_esc(k)}</b> {n}</span>' for k, n in counts.items()) + "</p>",
    ]
    if failed:
        parts.append("<h2>Failed files</h2><table><tr><th>file</th><th>reason</th></tr>")
        for r in failed:
            parts.append(f'<tr><td><code>{_esc(r.path)}</code></td><td class="fail">{_esc(r.error)}</td></tr>')
        parts.append("</table>")
    parts.append("<h2>Files</h2>")
    if len(ok) > MAX_THUMBNAILS:
        parts.append(f'<p class="sub">spectrograms shown for the {MAX_THUMBNAILS} files that need '
                     "restoration most</p>")
    parts.append("<table><tr><th>#</th><th>spectrogram (first 30 s)</th><th>file</th><th>need</th>"
                 "<th>findings</th></tr>")
    for i, r in enumerate(ok):
        p = r.profile
        thumb = ""
        if r.thumbnail_png and i < MAX_THUMBNAILS:
            thumb = f'<img alt="spectrogram" width="360" height="110" src="{png_data_uri(r.thumbnail_png)}">'
        det = [f for f in p.findings if f.detected]
        det.sort(key=lambda f: -f.severity)
        tags = "".join(_tag(f) for f in det) or '<span class="none">no defect detected</span>'
        tags += "".join(f'<div class="warn">⚠ {_esc(w)}</div>' for w in p.warnings)
        lufs = "–" if p.loudness_lufs is None else f"{p.loudness_lufs:.1f} LUFS"
        tp = "–" if p.true_peak_dbtp is None else f"{p.true_peak_dbtp:.1f} dBTP"
        info = (f"<code>{_esc(r.path)}</code><br><span class=\"sub\">{p.duration_s:.1f} s · "
                f"{p.sample_rate} Hz · {p.channels} ch · {lufs} · {tp}</span>")
        parts.append(f"<tr><td>{i + 1}</td><td>{thumb}</td><td>{info}</td>"
                     f'<td class="need">{r.need:.2f}</td><td>{tags}</td></tr>')
    parts.append("</table></body></html>")
    return "\n".join(parts)
