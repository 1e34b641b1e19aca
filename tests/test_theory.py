"""Eigenlearning: the kappa equation, closed forms, Bordelon-Canatar-Pehlevan form."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ntkspec import theory


def spectrum(seed, m, decay):
    rng = np.random.default_rng(seed)
    return np.sort(rng.random(m) + 0.1)[::-1] * np.arange(1, m + 1) ** (-decay)


@given(
    seed=st.integers(0, 2**16),
    m=st.integers(5, 400),
    decay=st.sampled_from([0.5, 1.0, 2.0, 4.0]),
    frac=st.floats(0.05, 0.95),
    ridge=st.sampled_from([0.0, 1e-8, 1e-3, 1.0, 100.0]),
)
def test_kappa_solves_equation(seed, m, decay, frac, ridge):
    lam = spectrum(seed, m, decay)
    n = max(1.0, frac * m)
    if ridge == 0.0 and n >= m:
        return
    kappa = theory.find_kappa(lam, n, ridge)
    assert kappa > 0
    lhs = np.sum(lam / (lam + kappa)) + ridge / kappa
    assert abs(lhs - n) <= 1e-12 * n
    assert abs(theory.kappa_equation_residual(lam, kappa, n, ridge)) <= 1e-12 * n


def test_flat_spectrum_closed_form():
    # M equal eigenvalues lam, ridge 0: M lam/(lam + kappa) = n -> kappa = lam (M - n)/n
    lam = np.full(50, 0.3)
    kappa = theory.find_kappa(lam, 20)
    assert kappa == pytest.approx(0.3 * 30 / 20, rel=1e-13)
    L = theory.learnabilities(lam, kappa)
    np.testing.assert_allclose(L, 0.4, rtol=1e-13)
    assert theory.overfitting_coefficient(lam, kappa, 20) == pytest.approx(
        20 / (20 - 50 * 0.16), rel=1e-13
    )


def test_conservation_law_and_bordelon_form():
    lam = spectrum(1, 200, 1.5)
    v = np.random.default_rng(2).standard_normal(200) * np.arange(1, 201) ** -0.7
    n, ridge, noise = 37.0, 1e-3, 0.01
    pred = theory.eigenlearning(lam, v, n, ridge, noise_var=noise)
    # sum of learnabilities = n - ridge/kappa
    assert np.sum(pred.learnabilities) == pytest.approx(
        n - ridge / pred.kappa, rel=1e-12
    )
    # Bordelon, Canatar & Pehlevan: kappa_B = ridge + kappa_B sum lam/(n lam + kappa_B)
    kb = n * pred.kappa
    assert kb == pytest.approx(ridge + kb * np.sum(lam / (n * lam + kb)), rel=1e-12)
    gamma = n * np.sum(lam**2 / (n * lam + kb) ** 2)
    e_g = (np.sum(v**2 * kb**2 / (n * lam + kb) ** 2) + noise) / (1 - gamma)
    assert pred.test_mse == pytest.approx(e_g, rel=1e-10)
    assert pred.train_mse == pytest.approx((ridge / (n * pred.kappa)) ** 2 * e_g)


def test_multi_output_and_complex_coefficients():
    lam = spectrum(3, 64, 1.0)
    v = np.random.default_rng(4).standard_normal((64, 2)) + 1j
    pred = theory.eigenlearning(lam, v, 10)
    single = [theory.eigenlearning(lam, np.abs(v[:, j]), 10).test_mse for j in range(2)]
    np.testing.assert_allclose(pred.test_mse, single, rtol=1e-13)
    curve = theory.eigenlearning_curve(lam, v[:, 0], [4, 8, 16])
    for i, n in enumerate([4, 8, 16]):
        ref = theory.eigenlearning(lam, v[:, 0], n)
        assert curve["test_mse"][i] == pytest.approx(ref.test_mse, rel=1e-14)
        assert curve["kappa"][i] == pytest.approx(ref.kappa, rel=1e-14)
    assert np.all(curve["train_mse"] == 0)


def test_bad_inputs():
    lam = spectrum(0, 10, 1.0)
    with pytest.raises(ValueError, match="smaller than the number of positive"):
        theory.find_kappa(lam, 10)
    with pytest.raises(ValueError, match="eigenvalues must be >= 0"):
        theory.find_kappa(np.array([1.0, -0.5]), 1)
    with pytest.raises(ValueError, match="ridge must be >= 0"):
        theory.find_kappa(lam, 3, -1.0)
    with pytest.raises(ValueError, match="n must be a positive"):
        theory.find_kappa(lam, 0)
    with pytest.raises(ValueError, match="target_coefficients must have shape"):
        theory.eigenlearning(lam, np.ones(9), 3)
