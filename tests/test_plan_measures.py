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


def test_a_preset_without_a_noise_spectrum_still_gives_the_denoiser_the_files(tmp_path):
    """A custom preset that names only the restorer gets the analysis' noise spectrum filled in
    (the denoiser's ``file_measures``), so the engine's chunks all use the same one, and the
    output does not change with the block size."""
    import numpy as np

    from archtool.analyze import analyze_audio
    from archtool.restore.plan import make_plan
    from archtool.restore.presets import parse_preset
    from tests.conftest import run_in_engine_blocks, speech_like

    preset = parse_preset('name = "mine"\n[kinds.noise]\nrestorer = "denoise"\nmin_confidence = 0.0\n', "mine.toml")
    rate = 16000
    rng = np.random.default_rng(2)
    x = (speech_like(8.0, rate) * np.linspace(0.2, 1.0, 8 * rate) + 0.02 * rng.standard_normal((1, 8 * rate)))
    x = x.astype(np.float32)
    steps = make_plan(analyze_audio(x, rate), preset)
    assert [s.restorer for s in steps] == ["denoise"]
    assert steps[0].params["noise_psd"] and steps[0].params["noise_psd_n_fft"] > 0
    whole = run_in_engine_blocks(x, rate, steps, 20.0)
    chunked = run_in_engine_blocks(x, rate, steps, 1.3)
    diff_db = 10 * np.log10(np.sum((chunked - whole).astype(np.float64) ** 2) / np.sum(whole.astype(np.float64) ** 2))
    assert diff_db < -60, diff_db
    for s in steps:  # without the spectrum, each chunk estimates its own: the output depends on the blocks
        s.params.pop("noise_psd"), s.params.pop("noise_psd_n_fft")
    own_whole, own_chunked = run_in_engine_blocks(x, rate, steps, 20.0), run_in_engine_blocks(x, rate, steps, 1.3)
    d = (own_chunked - own_whole).astype(np.float64)
    assert 10 * np.log10(np.sum(d ** 2) / np.sum(own_whole.astype(np.float64) ** 2)) > -40


def test_a_preset_that_only_names_dehum_gets_the_files_hum_and_keeps_to_it():
    """Without the analysed fundamental, each chunk would estimate its own (50 or 60 Hz family);
    the plan fills it in (dehum's ``file_measures``) and the output is the same for any block."""
    import numpy as np

    from archtool.analyze import analyze_audio
    from archtool.restore.plan import make_plan
    from archtool.restore.presets import parse_preset
    from tests.conftest import run_in_engine_blocks

    preset = parse_preset('name = "mine"\n[kinds.hum]\nrestorer = "dehum"\n', "mine.toml")
    sr, n = 16000, 8 * 16000
    t = np.arange(n) / sr
    music = 0.2 * np.sin(2 * np.pi * 440 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t))
    hum = 0.03 * np.sin(2 * np.pi * 50 * t) + 0.015 * np.sin(2 * np.pi * 150 * t + 1.0)
    x = (music + hum + 0.003 * np.random.default_rng(5).standard_normal(n))[None].astype(np.float32)
    steps = make_plan(analyze_audio(x, sr), preset)
    assert [s.restorer for s in steps] == ["dehum"]
    assert abs(steps[0].params["fundamental_hz"] - 50.0) < 0.5 and steps[0].params["harmonics_hz"]
    assert np.array_equal(run_in_engine_blocks(x, sr, steps, 1.1), run_in_engine_blocks(x, sr, steps, 20.0))
