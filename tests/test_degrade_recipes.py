"""Recipes load, draw what they promise, and bad recipes are refused with the line at fault."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from archtool.degrade import Degrader, list_recipes, load_recipe, parse_recipe
from archtool.errors import RecipeError, UnknownNameError
from archtool.kinds import KINDS

SR = 16000
ROOT = Path(__file__).resolve().parents[1]
BUILTIN = ("rar", "78rpm", "cylinder", "tape", "gaps", "bandlimit", "phone", "mixed-archive")


def clip(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * 330 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t)) + 0.02 * rng.standard_normal(t.size)
    return x[None].astype(np.float32)


def test_all_builtin_recipes_ship_in_the_package_and_in_recipes_dir():
    assert set(BUILTIN) <= set(list_recipes())
    for name in BUILTIN:
        repo_copy = ROOT / "recipes" / "degrade" / f"{name}.toml"
        assert repo_copy.read_text() == (ROOT / "archtool" / "recipes" / "degrade" / f"{name}.toml").read_text()


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_recipe_runs_and_labels_are_consistent(name):
    deg = Degrader(name)
    x = clip()
    for seed in range(4):
        y, labels = deg(x, SR, np.random.default_rng(seed))
        assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
        text = json.dumps(labels, allow_nan=False)
        assert json.loads(text) == labels
        assert labels["recipe"] == name
        assert set(labels["kinds"]) <= set(KINDS)
        for u in labels["units"]:
            assert u["kind"] in KINDS and 0 <= u["severity"] <= 1
        if labels["snr_db"] is not None and "time_map" not in labels:
            ref = x.astype(np.float64)
            measured = 10 * np.log10(np.mean(ref ** 2) / np.mean((y - ref) ** 2))
            assert abs(measured - labels["snr_db"]) < 0.01
        for a, b in labels["gap_intervals_s"]:
            assert np.all(y[:, round(a * SR):round(b * SR)] == 0)


def test_same_rng_same_bytes():
    deg = Degrader("mixed-archive")
    x = clip()
    for seed in range(6):
        a, la = deg(x, SR, np.random.default_rng(seed))
        b, lb = deg(x, SR, np.random.default_rng(seed))
        assert a.tobytes() == b.tobytes() and la == lb


def test_rar_follows_seed_000_proportions_and_weights():
    recipe = load_recipe("rar")
    rng = np.random.default_rng(0)
    counts: dict[str, int] = {}
    for _ in range(3000):
        variant, chain = recipe.draw(rng)
        counts[variant] = counts.get(variant, 0) + 1
        units = [u for u, _ in chain]
        if variant == "blend":
            assert 2 <= len(units) <= 3 and len(set(units)) == len(units)
        else:
            assert len(units) == 1
        for unit, params in chain:
            weight = params.get("gain", params.get("wet"))
            assert 0.0 <= weight <= 1.0
        assert [u for u in ("reverb", "background", "noise") if u in units] == units  # chain order
    assert abs(counts["blend"] / 3000 - 0.5) < 0.04
    for single in ("awgn-only", "background-only", "reverb-only"):
        assert abs(counts[single] / 3000 - 1 / 6) < 0.03


def test_mixed_archive_is_mostly_one_to_three_identifiable_defects():
    deg = Degrader("mixed-archive")
    x = clip(0.5)
    n_kinds, clean = [], 0
    for seed in range(60):
        _, labels = deg(x, SR, np.random.default_rng(seed))
        if labels["variant"] == "clean":
            clean += 1
            assert labels["kinds"] == {} and labels["snr_db"] is None
        else:
            n_kinds.append(len(labels["units"]))
    assert 1 <= clean <= 15
    assert all(1 <= k <= 3 for k in n_kinds)
    assert len({k for k in n_kinds}) >= 2


def test_unknown_recipe_name_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="78rpm"):
        load_recipe("78rmp")


def _error(tmp_path: Path, text: str) -> RecipeError:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    err = info.value
    assert str(path) in str(err)
    return err


GOOD_HEAD = 'name = "t"\n\n[[units]]\nunit = "noise"\nsnr_db = 10.0\n\n'


def test_unknown_unit_names_its_line(tmp_path):
    err = _error(tmp_path, GOOD_HEAD + '[[units]]\nunit = "nosie"\n')
    assert err.line == 8 and "unknown unit 'nosie'" in str(err) and "noise" in str(err)


def test_out_of_range_parameter_names_its_line(tmp_path):
    err = _error(tmp_path, GOOD_HEAD + '[[units]]\nunit = "lowpass"\nprobability = 0.5\ncutoff_hz = { uniform = [50.0, 3000.0] }\n')
    assert err.line == 10 and "cutoff_hz" in str(err) and "below the allowed range" in str(err)


def test_wrong_type_names_its_line(tmp_path):
    err = _error(tmp_path, GOOD_HEAD + '[[units]]\nunit = "gaps"\ncount = "three"\n')
    assert err.line == 9 and "expected an integer" in str(err)
    err = _error(tmp_path, GOOD_HEAD + '[[units]]\nunit = "hum"\nharmonics = { uniform = [1, 5] }\n')
    assert err.line == 9 and "randint" in str(err)


def test_unknown_parameter_and_bad_choice_name_their_lines(tmp_path):
    err = _error(tmp_path, '[[variant]]\nweight = 1\n\n[[variant.units]]\nunit = "noise"\n\n'
                           '[[variant]]\nweight = 2\n[[variant.units]]\nunit = "clipping"\nmode = ["hard", "fuzzy"]\n')
    assert err.line == 11 and "'fuzzy' is not one of" in str(err)
    err = _error(tmp_path, GOOD_HEAD + '[[units]]\nunit = "noise"\nsnr = 3\n')
    assert err.line == 9 and "no parameter 'snr'" in str(err)


def test_toml_syntax_error_names_its_line(tmp_path):
    err = _error(tmp_path, GOOD_HEAD + '[[units]]\nunit = "noise"\nsnr_db = = 3\n')
    assert err.line == 9 and "TOML syntax" in str(err)


def test_bad_probability_and_pick(tmp_path):
    err = _error(tmp_path, GOOD_HEAD + '[[units]]\nunit = "noise"\nprobability = 1.5\n')
    assert err.line == 9 and "probability" in str(err)
    err = _error(tmp_path, '[[variant]]\npick = [3, 1]\n[[variant.units]]\nunit = "noise"\n')
    assert err.line == 2 and "pick" in str(err)


def test_user_recipe_written_order(tmp_path):
    recipe = parse_recipe('order = "written"\n[[units]]\nunit = "gaps"\ncount = 2\n[[units]]\nunit = "noise"\n'
                          'snr_db = { loguniform = [5.0, 10.0] }\n')
    _, chain = recipe.draw(np.random.default_rng(0))
    assert [u for u, _ in chain] == ["gaps", "noise"] and 5 <= chain[1][1]["snr_db"] <= 10
    chain_recipe = parse_recipe('[[units]]\nunit = "gaps"\n[[units]]\nunit = "noise"\n')
    assert [u for u, _ in chain_recipe.draw(np.random.default_rng(0))[1]] == ["noise", "gaps"]


def test_wow_labels_align_reference_and_gaps():
    x = clip(2.0)
    deg = Degrader(parse_recipe('[[units]]\nunit = "wow"\nwow_depth = 0.01\n[[units]]\nunit = "noise"\nsnr_db = 20.0\n'))
    y, labels = deg(x, SR, np.random.default_rng(3))
    assert "time_map" in labels and labels["snr_reference"] != "clean"
    assert abs(labels["snr_db"] - 20.0) < 0.05  # relative to the wow-warped clean reference
    deg = Degrader(parse_recipe('order = "written"\n[[units]]\nunit = "gaps"\ncount = 2\nmin_ms = 50.0\n'
                                'max_ms = 80.0\n[[units]]\nunit = "wow"\nwow_depth = 0.01\n'))
    y, labels = deg(x, SR, np.random.default_rng(3))
    gaps = labels["gap_intervals_s"]
    assert len(gaps) >= 1 and sum(b - a for a, b in gaps) > 0.05  # carried through the time map
    for a, b in gaps:
        assert np.all(y[:, round(a * SR):round(b * SR)] == 0)
