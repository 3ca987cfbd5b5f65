"""Analysis: what is wrong with a recording, how badly, and the numbers behind it.

Entry points::

    from archtool.analyze import analyze_file, analyze_audio
    profile = analyze_file("transfer.flac")          # streamed, bounded memory
    profile = analyze_audio(audio, sample_rate)      # (channels, samples) float32
    profile.finding("hum").measures["fundamental_hz"]

One pass of :class:`archtool.analyze.features.FeatureAccumulator` over the file gathers
compact features; one detector module per defect kind turns them into a
:class:`~archtool.analyze.profile.Finding` (``kind``, ``detected``, ``severity`` 0..1,
``confidence`` 0..1, ``measures``). The :class:`~archtool.analyze.profile.Profile` holds one
finding per kind of ``archtool.kinds.KINDS`` plus loudness (BS.1770, LUFS), true peak
(dBTP) and DC offset. A small learned layer (:mod:`archtool.analyze.learned`) then decides
``detected``/``confidence`` per kind from the detectors' measures, except where a detector's
verdict rests on an exact measurement (gaps, brick-wall band limits, hard clipping).

Measures contract (restore's planner reads these keys; units in the name):

==============  ==========================================================================
kind            measures
==============  ==========================================================================
noise           ``snr_db`` (the learned estimate where the decision layer is installed;
                the detector's as ``snr_db_detector``; None for a file of nothing but digital
                silence), ``noise_floor_dbfs`` (noise mean square, dB re full scale),
                ``noise_psd`` (list: expected ``|rfft(w * frame)|**2`` per bin of an
                ``noise_psd_n_fft``-point frame, ``w = scipy.signal.get_window("hann",
                n_fft)``, unnormalised rfft), ``noise_psd_n_fft``,
                ``noise_slope_db_per_octave``; the detector's figures are read away from
                digital-silence dropouts, and where a floor fitted across a missed low-pass's
                stop band was re-fitted, ``noise_band_top_hz`` and ``snr_db_collapsed_fit``
background      ``excess_db``, ``spread_db``, ``level_dbfs``
reverb          ``rt60_s``, ``drr_db`` (blind proxy), ``decays``, ``rt60_source``
                ("decays"/"slopes"), ``steepest_decay_db_per_s``, ``slope_p5_db_per_s``,
                ``slope_count``
clicks          ``rate_per_s``, ``count``, ``positions_s`` (first 500),
                ``positions_truncated``, ``median_ratio``
crackle         ``rate_per_s``, ``all_rate_per_s``, ``isolated_rate_per_s``
surface_noise   ``rotation_hz``, ``rpm``, ``periodicity`` (0..1), ``band_hz``
hum             ``fundamental_hz``, ``harmonics_hz`` (list), ``level_db`` (re signal),
                ``level_dbfs``, ``mains_hz``, ``speed_error_percent``, ``off_mains``,
                ``prominence_db``, ``score_db``
rumble          ``level_db`` (5-35 Hz power re signal), ``cutoff_hz``, ``level_dbfs``,
                ``lf_to_mid_db``
gaps            ``intervals_s`` ([[start, end], ...]), ``count``, ``total_s``, ``fraction``
bandlimit       ``cutoff_hz``, ``nyquist_hz``, ``edge_db``, ``ratio``
clipping        ``clipped_fraction``, ``clip_level``, ``flat_runs``,
                ``near_peak_fraction``, ``kind`` (hard/soft/none)
wow             ``rate_hz``, ``depth_cents``, ``depth_percent``, ``periodicity``,
                ``usable_fraction``, ``peak_db``, ``drift_cents``, ``flutter_rate_hz``,
                ``flutter_peak_db``
dc_offset       ``offset`` (list, per channel), ``offset_db``, ``offset_to_wander_db``
==============  ==========================================================================
"""
from __future__ import annotations

from archtool.analyze.analyzer import analyze_audio, analyze_file, restoration_need
from archtool.analyze.profile import PROFILE_VERSION, Finding, Profile

__all__ = ["analyze_audio", "analyze_file", "restoration_need", "Finding", "Profile", "PROFILE_VERSION"]
