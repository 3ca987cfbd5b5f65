"""Planning: presets load, rules evaluate against measures, steps are ordered, bad preset
files raise RecipeError naming the line."""
from __future__ import annotations

import pytest

from archtool.analyze.profile import Finding, Profile
from archtool.errors import RecipeError, UnknownNameError
from archtool.restore.plan import make_plan
from archtool.restore.presets import builtin_presets, load_preset, parse_preset


def profile(**findings: Finding) -> Profile:
    return Profile("x.flac", 10.0, 44100, 1, findings=list(findings.values()))


FULL = profile(
    noise=Finding("noise", True, 0.6, 0.9, {"snr_db": 12.0, "noise_psd": [1e-6] * 1025, "noise_psd_n_fft": 2048}),
    hum=Finding("hum", True, 0.4, 0.9, {"fundamental_hz": 50.1, "harmonics_hz": [50.1, 100.2]}),
    clicks=Finding("clicks", True, 0.5, 0.9, {"rate_per_s": 4.0}),
    crackle=Finding("crackle", True, 0.3, 0.8, {"rate_per_s": 200.0}),
    rumble=Finding("rumble", True, 0.3, 0.8, {"cutoff_hz": 35.0, "level_db": -20.0}),
    clipping=Finding("clipping", True, 0.2, 0.9, {"clip_level": 0.7, "clipped_fraction": 0.01}),
    gaps=Finding("gaps", True, 0.2, 0.9, {"intervals_s": [[1.0, 1.01]]}),
    reverb=Finding("reverb", False, 0.0, 0.9, {"rt60_s": 0.3}),
)


def test_builtin_presets_load():
    assert {"auto", "conservative", "speech", "78rpm"} <= set(builtin_presets())
    for name in builtin_presets():
        assert load_preset(name).kinds


def test_auto_plan_order_and_parameters():
    steps = make_plan(FULL, "auto")
    names = [s.restorer for s in steps]
    assert names == ["declip", "derumble", "decrackle", "declick", "inpaint", "dehum", "denoise"]
    by = {s.restorer: s.params for s in steps}
    assert by["declick"]["threshold"] == pytest.approx(10.0)  # lerp [12, 8] at severity 0.5
    assert by["dehum"]["fundamental_hz"] == 50.1
    assert by["denoise"]["noise_psd_n_fft"] == 2048 and len(by["denoise"]["noise_psd"]) == 1025
    assert by["denoise"]["max_reduction_db"] == pytest.approx(15.0 - 7.0 * (12.0 - 15.0) / 20.0 * 0, abs=2.0)
    assert by["derumble"]["cutoff_hz"] == 35.0
    assert by["inpaint"]["intervals_s"] == [[1.0, 1.01]]
    assert all(s.reason for s in steps)


def test_conservative_caps_reduction_and_drops_dereverb():
    loud = profile(noise=Finding("noise", True, 1.0, 1.0, {"snr_db": 0.0}),
                   reverb=Finding("reverb", True, 0.9, 0.9, {"rt60_s": 1.2}))
    steps = make_plan(loud, "conservative")
    assert [s.restorer for s in steps] == ["denoise"]
    assert steps[0].params["max_reduction_db"] <= 12.0
    assert "dereverb" in [s.restorer for s in make_plan(loud, "speech")]


def test_if_detected_rule_ignores_measures_of_undetected_kinds():
    from archtool.restore.plan import evaluate_rule

    rule = load_preset("auto").kinds["reverb"].params["rt60_s"]
    dry = profile(reverb=Finding("reverb", False, 0.0, 0.9, {"rt60_s": 0.47}))
    wet = profile(reverb=Finding("reverb", True, 0.4, 0.9, {"rt60_s": 0.6}))
    assert evaluate_rule(rule, dry, dry.finding("reverb")) == 0.0
    assert evaluate_rule(rule, wet, wet.finding("reverb")) == 0.6


def test_clean_profile_plans_nothing():
    clean = profile(noise=Finding("noise", False, 0.0, 0.9, {"snr_db": 60.0}))
    assert make_plan(clean, "auto") == []


def test_user_preset_extends_and_overrides(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text('extends = "auto"\n\n[kinds.hum]\nrestorer = ""\n\n[kinds.clicks]\nrestorer = "declick"\n'
                 '[kinds.clicks.params]\nthreshold = 20.0\n', encoding="utf-8")
    steps = make_plan(FULL, str(f))
    names = [s.restorer for s in steps]
    assert "dehum" not in names
    assert {s.restorer: s.params for s in steps}["declick"]["threshold"] == 20.0


@pytest.mark.parametrize("text,line,words", [
    ('name = "x"\n[kinds.clicks]\nrestorer = "declik"\n', 3, "unknown restorer 'declik'"),
    ('name = "x"\n\n[kinds.clics]\nrestorer = "declick"\n', 3, "unknown defect kind 'clics'"),
    ('[kinds.clicks]\nrestorer = "declick"\n[kinds.clicks.params]\nthreshold = { lerp = [1] }\n', 4, "lerp"),
    ('[kinds.noise]\nrestorer = "denoise"\nmin_severity = 3\n', 3, "min_severity"),
    ('[kinds.noise]\nrestorer = "denoise"\nthreshold = 2\n', 3, "unknown key 'threshold'"),
    ('[kinds.noise\nrestorer = "denoise"\n', 1, "invalid TOML"),
    ('[kinds.reverb]\nrestorer = "dereverb"\n[kinds.reverb.params]\nrt60_s = { measure = "rt60_s", if_detected = 1 }\n',
     4, "if_detected"),
])
def test_bad_preset_names_the_line(tmp_path, text, line, words):
    f = tmp_path / "bad.toml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(RecipeError) as exc:
        load_preset(str(f))
    assert exc.value.line == line
    assert words in str(exc.value) and str(f) in str(exc.value)


def test_unknown_preset_name():
    with pytest.raises(UnknownNameError, match="auto"):
        load_preset("autoo")
    with pytest.raises(RecipeError, match="not found"):
        load_preset("/nonexistent/p.toml")


def test_parse_preset_requires_restorer():
    with pytest.raises(RecipeError, match="needs restorer"):
        parse_preset("[kinds.noise]\norder = 3\n", "p.toml")
