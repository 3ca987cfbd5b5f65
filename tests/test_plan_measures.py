"""Plan rules read measures from the right finding: the step's own, else the measure's owner."""
from __future__ import annotations

from archtool.analyze.profile import Finding, Profile
from archtool.restore.plan import _MISSING, evaluate_rule


def profile_with(*findings: Finding) -> Profile:
    return Profile(path="x.wav", duration_s=10.0, sample_rate=44100, channels=1, findings=list(findings))


def test_cutoff_of_rumble_never_leaks_into_another_kind():
    rumble = Finding("rumble", True, 0.5, 0.9, {"cutoff_hz": 200.0, "level_db": -30.0})
    noise = Finding("noise", True, 0.4, 0.9, {"snr_db": 20.0})
    profile = profile_with(rumble, noise)
    assert evaluate_rule({"measure": "cutoff_hz"}, profile, noise) is _MISSING
    band = Finding("bandlimit", True, 0.3, 0.9, {"cutoff_hz": 6000.0})
    profile = profile_with(rumble, noise, band)
    assert evaluate_rule({"measure": "cutoff_hz"}, profile, noise) == 6000.0
    assert evaluate_rule({"measure": "cutoff_hz"}, profile, rumble) == 200.0


def test_shared_noise_spectrum_comes_from_the_noise_finding():
    noise = Finding("noise", True, 0.4, 0.9, {"snr_db": 18.0, "noise_psd": [1.0, 2.0], "noise_psd_n_fft": 2})
    surface = Finding("surface_noise", True, 0.5, 0.8, {"rotation_hz": 1.3})
    profile = profile_with(noise, surface)
    assert evaluate_rule({"measure": "noise_psd"}, profile, surface) == [1.0, 2.0]
    assert evaluate_rule({"measure": "snr_db", "map": [[0, 20], [30, 8]]}, profile, surface) == 20 + (8 - 20) * 18 / 30
