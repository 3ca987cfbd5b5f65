"""AR estimation and LSAR interpolation (archtool.dsp.ar) on generated signals."""
import numpy as np
import pytest

from archtool.dsp.ar import ar_estimate, ar_interpolate, ar_residual, missing_runs


def _ar2(n: int, rng: np.random.Generator) -> np.ndarray:
    """A resonant AR(2) process (pole radius 0.99 at 0.05 cycles/sample)."""
    from scipy.signal import lfilter

    r, f = 0.99, 0.05
    a = [1.0, -2 * r * np.cos(2 * np.pi * f), r * r]
    return lfilter([1.0], a, rng.standard_normal(n))


def test_ar_estimate_recovers_known_coefficients():
    rng = np.random.default_rng(1)
    x = _ar2(20000, rng)
    a, sigma2 = ar_estimate(x, 2, window=False)
    r, f = 0.99, 0.05
    assert np.allclose(a, [2 * r * np.cos(2 * np.pi * f), -r * r], atol=0.01)
    assert sigma2 == pytest.approx(1.0, rel=0.1)
    e = ar_residual(x, a)
    assert np.var(e[10:]) == pytest.approx(1.0, rel=0.1)


def test_ar_interpolate_fills_gaps_accurately_and_keeps_known_samples():
    rng = np.random.default_rng(2)
    t = np.arange(16000) / 16000
    x = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 1230 * t + 1) + 0.01 * rng.standard_normal(t.size)
    missing = np.zeros(t.size, dtype=bool)
    for s in rng.integers(100, t.size - 100, 40):
        missing[s : s + rng.integers(1, 20)] = True
    damaged = np.where(missing, 0.0, x)
    y = ar_interpolate(damaged, missing, order=24)
    err_db = 10 * np.log10(np.sum((y - x)[missing] ** 2) / np.sum(x[missing] ** 2))
    assert err_db < -25
    assert np.array_equal(y[~missing], damaged[~missing])
    # Input untouched.
    assert np.all(damaged[missing] == 0.0)


def test_ar_interpolate_with_given_coefficients_and_edges():
    rng = np.random.default_rng(3)
    x = _ar2(8000, rng)
    a, _ = ar_estimate(x, 8)
    missing = np.zeros(x.size, dtype=bool)
    missing[[3, 4, 4000, 4001, 4002, 7998]] = True
    y = ar_interpolate(x, missing, coeffs=a)
    assert np.all(np.isfinite(y))
    mid = np.array([4000, 4001, 4002])
    assert np.sqrt(np.mean((y[mid] - x[mid]) ** 2)) < 0.5 * np.std(x)


def test_missing_runs():
    m = np.array([0, 1, 1, 0, 0, 1, 0, 1], dtype=bool)
    assert missing_runs(m).tolist() == [[1, 3], [5, 6], [7, 8]]
    assert missing_runs(np.zeros(4, bool)).shape == (0, 2)
